#!/usr/bin/env bash
# The renderer ablation (docs/sound.md, "The renderer"): the spectral preset's WaveNet renderers
# trained alone (--batch-size 0) with each output, snapshots every 500 steps for the curves.
#   experiments/sound/renderers.sh [VARIANT ...]     (default: all, one after the other)
# A variant that was stopped resumes where it stopped; a finished one is skipped. fp32: on a CPU
# without AVX-512 bf16, bf16 autocast runs about 5x slower than fp32. About 2.4 hours a variant
# on one core of this project's CPU.
source "$(dirname "$0")/common.sh"
declare -A VARIANT=(
  [mulaw8]=""                                                   # the paper's output, targets quantised once
  [mulaw10]="--model-set wavenet.mulaw_bits=10"
  [logistic]="--model-set wavenet.output=logistic"                # 10 logistics over the 16-bit value
)
STEPS=${STEPS:-3000}
for name in "${@:-mulaw8 logistic mulaw10}"; do
  for v in $name; do
    run=$W/runs/render-$v
    if [ -f "$run/step$STEPS.pt" ]; then continue; fi
    if [ -f "$run/last.pt" ]; then
      OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --resume
    else
      OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --batch-size 0 --steps "$STEPS" --precision fp32 \
        --val-every 500 --keep-every 500 ${VARIANT[$v]}
    fi
  done
done
