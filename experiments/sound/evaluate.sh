#!/usr/bin/env bash
# A model through the evaluation that can hear (docs/sound.md): the test split of the model's own
# corpus (TimGM6mb) and, as the acceptance check, the same test pieces rendered through
# fluid-soundfont-gm, which neither the model nor the judge heard. WaveNet and sines preview side
# by side; reports in $W/reports/<name>-{tim,fluid}/report.md.
#   experiments/sound/evaluate.sh [MODEL [NAME [umt evaluate flags...]]]   (default: the shipped model)
# The two corpora run side by side, one core each: about 15-20 minutes.
source "$(dirname "$0")/common.sh"
model=${1:-umt/assets/default.pt}
name=${2:-default}
shift $(( $# > 2 ? 2 : $# ))
mkdir -p "$W/reports"
pids=()
for key in tim fluid; do
  OMP_NUM_THREADS=1 $UMT evaluate --model "$model" --data "$(corpus "$key")" --judge "$W/judge" --clips 6 --seconds 4 \
    --out "$W/reports/$name-$key" "$@" > "$W/reports/$name-$key.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed evaluation stops the script
tail -n 3 "$W/reports/$name"-{tim,fluid}.log
