#!/usr/bin/env bash
# What a session lent the GPU machine runs there, one stage per call (each fits in a 10-minute call).
#
#   here:  bash bench/fetch_device_wheels.sh          (once; .whl/ then travels with `carry: [".whl"]`)
#   there: bash bench/gpu_session.sh STAGE [OUTDIR]   (OUTDIR defaults to $OUT, else bench/results)
#
# Stages:
#   tests    the GPU tests (pytest -m gpu), then all the others (-m "not gpu"), on the machine's torch
#   synth    synthesis of the published model: eager, autocast and the fast engine per precision,
#            batch 1 and 16, 1 s and 10 s utterances
#   compile-bf16, compile-fp16
#            torch.compile + CUDA graphs against eager, batch 16 x 10 s (one precision per call: compiling
#            the published model takes minutes; the table's "first call s" column shows how many)
#   train    training steps of the default and small models per precision, batch 1 and 8
# Every stage writes its log and, for benchmarks, JSON and a markdown table after each measured case, so a
# call cut off by its time limit still brings back what it measured.
set -uo pipefail
stage=${1:?usage: bash bench/gpu_session.sh tests|synth|compile-bf16|compile-fp16|train [OUTDIR]}
out=${2:-${OUT:-bench/results}}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
python3 -c "import librosa.filters, soundfile, torch; print('torch', torch.__version__, torch.cuda.is_available())" \
    || exit 1
name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | awk '{print tolower($2)}')"
tag="${name:-gpu}-$(date +%F)"
bench=(python3 -m waveglow.bench --device cuda)
case "$stage" in
    tests)
        nvidia-smi 2>&1 | tee "$out/$tag-nvidia-smi.txt"
        python3 -m pytest -q -m gpu -rs 2>&1 | tee "$out/$tag-gpu-tests.log"
        python3 -m pytest -q -m "not gpu" 2>&1 | tee "$out/$tag-cpu-tests.log"
        ;;
    synth)
        variants=eager,eager-inference-mode,eager-tf32,eager-autocast-bf16,eager-autocast-fp16
        variants+=,fast-fp32,fast-bf16,fast-fp16,fast-bf16-all-flows,fast-bf16-fold,fast-fp16-fold
        variants+=,fast-bf16-fold-graphs,fast-fp16-fold-graphs
        "${bench[@]}" --model default --precision fp32,bf16,fp16 --batch-sizes 16,1 --lengths 10.0,1.0 \
            --variants "$variants" --rounds 3 \
            --json "$out/$tag-synthesis.json" --markdown "$out/$tag-synthesis.md" 2>&1 | tee "$out/$tag-synth.log"
        ;;
    compile-bf16 | compile-fp16)
        precision=${stage#compile-}
        "${bench[@]}" --model default --precision "$precision" --batch-sizes 16 --lengths 10.0 \
            --variants "eager,fast-$precision-fold-graphs,fast-$precision-fold-compile-graphs" --rounds 3 \
            --json "$out/$tag-$stage.json" --markdown "$out/$tag-$stage.md" 2>&1 | tee "$out/$tag-$stage.log"
        ;;
    train)
        "${bench[@]}" --model default,small --precision fp32,bf16,fp16 --batch-sizes 8,1 --train-only \
            --train-segment 16000 --train-steps 3 \
            --json "$out/$tag-training.json" --markdown "$out/$tag-training.md" 2>&1 | tee "$out/$tag-train.log"
        ;;
    *)
        echo "unknown stage $stage (tests, synth, compile-bf16, compile-fp16, train)" >&2
        exit 2
        ;;
esac
