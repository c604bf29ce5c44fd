#!/usr/bin/env bash
# What a session lent the GPU machine runs there, one stage per call (each fits in a 10-minute call).
#
#   here:  bash bench/fetch_device_wheels.sh          (once; .whl/ then travels with `carry: [".whl"]`)
#   there: bash bench/gpu_session.sh STAGE [OUTDIR]   (OUTDIR defaults to $OUT, else bench/results)
#
# Stages:
#   tests    the GPU tests (pytest -m gpu), then the whole suite, on the machine's torch
#   synth    synthesis of the published model: eager, autocast and the fast engine per precision,
#            batch 1 and 16, 1 s and 10 s utterances
#   compile  torch.compile + CUDA graphs against eager, batch 16 x 10 s
#   train    training steps of the default and small models per precision, batch 1 and 8
# Every stage writes its log and, for benchmarks, JSON and a markdown table after each measured case, so a
# call cut off by its time limit still brings back what it measured.
set -uo pipefail
stage=${1:?usage: bash bench/gpu_session.sh tests|synth|compile|train [OUTDIR]}
out=${2:-${OUT:-bench/results}}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | awk '{print tolower($2)}')"
tag="${name:-gpu}-$(date +%F)"
bench=(python3 -m waveglow.bench --device cuda)
case "$stage" in
    tests)
        nvidia-smi 2>&1 | tee "$out/$tag-nvidia-smi.txt"
        python3 -m pytest -q -m gpu -rs 2>&1 | tee "$out/$tag-gpu-tests.log"
        python3 -m pytest -q -x 2>&1 | tee "$out/$tag-all-tests.log"
        ;;
    synth)
        variants=eager,eager-inference-mode,eager-autocast-bf16,eager-autocast-fp16
        variants+=,fast-fp32,fast-bf16,fast-fp16,fast-bf16-all-flows,fast-bf16-fold,fast-fp16-fold
        variants+=,fast-bf16-fold-graphs,fast-fp16-fold-graphs
        "${bench[@]}" --model default --precision fp32,bf16,fp16 --batch-sizes 16,1 --lengths 10.0,1.0 \
            --variants "$variants" --rounds 3 \
            --json "$out/$tag-synthesis.json" --markdown "$out/$tag-synthesis.md" 2>&1 | tee "$out/$tag-synth.log"
        ;;
    compile)
        "${bench[@]}" --model default --precision bf16,fp16 --batch-sizes 16 --lengths 10.0 \
            --variants eager,fast-bf16-fold-graphs,fast-bf16-fold-compile-graphs,fast-fp16-fold-compile-graphs \
            --rounds 3 --json "$out/$tag-compile.json" --markdown "$out/$tag-compile.md" 2>&1 \
            | tee "$out/$tag-compile.log"
        ;;
    train)
        "${bench[@]}" --model default,small --precision fp32,bf16,fp16 --batch-sizes 8,1 --train-only \
            --train-segment 16000 --train-steps 3 \
            --json "$out/$tag-training.json" --markdown "$out/$tag-training.md" 2>&1 | tee "$out/$tag-train.log"
        ;;
    *)
        echo "unknown stage $stage (tests, synth, compile, train)" >&2
        exit 2
        ;;
esac
