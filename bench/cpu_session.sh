#!/usr/bin/env bash
# Issue 19's CPU measurements on the machine at hand, one stage per call; run every stage on each new CPU kind
# (the kind in the file names: xeon-amx, epyc-avx512bf16, core-avx2, ..., from /proc/cpuinfo), with
# nothing else running (pause a training run with kill -STOP PID, resume it with kill -CONT PID).
#
#   bash bench/cpu_session.sh STAGE [OUTDIR]   (OUTDIR defaults to bench/results; the venv's python)
#
# Stages (minutes on a 2-core machine):
#   synth-default  the published model, batch 1 and 8 x 1 s: eager, fast engine, autocast, and the
#                  Vocoder's default path (engine="auto") in fp32, bf16 and auto (~10)
#   synth-light    the light flow and the bundled voice's (MDCT) flow, batch 1 and 8 x 1 s and 10 s:
#                  eager, autocast bf16 and the Vocoder's default path in fp32, bf16 and auto (~5)
#   train          the bundled voice's training step: fp32, bf16, each eager and compiled, on the same
#                  replayed batches (speed and curve), then the data-wait share (~15): the first 150 steps
#                  of configs/allison_light.yaml, likelihood only (its sample loss starts at step 14,500)
#   train-sample-loss  the same with the sample loss from step 0 (the voice's late steps; ~15)
#   memory         peak memory of the light flow's synthesis from 10 s to 10 min, with and without
#                  max_frames (~5)
#   quality        the shipped voice's synthesis in fp32 against bf16 on its 38 validation prompts (~5; needs
#                  data/allison: python -m waveglow.data voice data/allison)
#   all            every stage in turn
# Every benchmark writes its JSON and markdown table after each measured case, so a stopped stage keeps
# what it measured. Files: OUTDIR/cpu-DATE-KIND-STAGE.{json,md,log}.
set -uo pipefail
stage=${1:?usage: bash bench/cpu_session.sh synth-default|synth-light|train|train-sample-loss|memory|quality|all [OUTDIR]}
out=${2:-bench/results}
python=${PYTHON:-.venv/bin/python}
threads=${THREADS:-2}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$threads
kind="$("$python" -c 'from waveglow.bench.machine import cpu_record; print(cpu_record()["kind"])')" || exit 1
tag="cpu-$(date +%F)-$kind"
bench=("$python" -m waveglow.bench --device cpu --threads "$threads")

run_stage() {
    local name=$1 prefix="$out/$tag-$1"
    echo "== $name -> $prefix.{json,md,log}  (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    case "$name" in
        synth-default)
            "${bench[@]}" --model default --precision fp32,bf16 --batch-sizes 1,8 --lengths 1.0 \
                --variants eager,fast-fp32,fast-bf16,eager-autocast-bf16,vocoder-fp32,vocoder-bf16,vocoder-auto --rounds 3 \
                --json "$prefix.json" --markdown "$prefix.md" 2>&1 | tee "$prefix.log"
            ;;
        synth-light)
            "${bench[@]}" --model light-mdct,light --precision fp32,bf16 --batch-sizes 1,8 --lengths 1.0,10.0 \
                --variants eager,eager-autocast-bf16,vocoder-fp32,vocoder-bf16,vocoder-auto --rounds 5 \
                --json "$prefix.json" --markdown "$prefix.md" 2>&1 | tee "$prefix.log"
            ;;
        train)
            "$python" bench/train_bf16_replay.py --threads "$threads" \
                --config allison_light:configs/allison_light.yaml --variants fp32,bf16,fp32+compile,bf16+compile \
                --set data.training_files=data/allison/train.txt --steps 150 --chunk-steps 10 --skip 5 \
                --window 50 --output "$prefix" 2>&1 | tee "$prefix.log"
            ;;
        train-sample-loss)
            "$python" bench/train_bf16_replay.py --threads "$threads" \
                --config allison_light:configs/allison_light.yaml --variants fp32,bf16,fp32+compile,bf16+compile \
                --set data.training_files=data/allison/train.txt --set train.stft_loss_start_step=0 \
                --steps 150 --chunk-steps 10 --skip 5 --window 50 --data-wait-steps 0 --output "$prefix" \
                2>&1 | tee "$prefix.log"
            ;;
        memory)
            "${bench[@]}" --memory --model light-mdct --precision fp32,bf16 --lengths 10,60,300,600 \
                --max-frames 0,4000 --json "$prefix.json" --markdown "$prefix.md" 2>&1 | tee "$prefix.log"
            ;;
        quality)
            OMP_NUM_THREADS=1 "$python" bench/bf16_quality.py --output "$prefix" 2>&1 | tee "$prefix.log"
            ;;
        *)
            echo "unknown stage $name (synth-default, synth-light, train, train-sample-loss, memory, quality, all)" >&2
            return 2
            ;;
    esac
}

if [ "$stage" = all ]; then
    for name in synth-default synth-light train train-sample-loss memory quality; do run_stage "$name"; done
else
    run_stage "$stage"
fi
