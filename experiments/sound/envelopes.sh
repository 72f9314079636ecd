#!/usr/bin/env bash
# Envelopes that belong to the target (docs/sound.md, section 8): the frame networks of the
# default of commit e6c3780 fine-tuned with the realism term (a critic per domain, real against
# translated spectra; umt/modules/critic.py), everything else frozen (--frames-only), so its
# renderers, tokenizer and token LMs stay valid. One run per variant in $W/runs/envelopes-VARIANT,
# snapshots every 100 steps; then the base and each variant's snapshot at step $EVAL_STEP through
# the val split with the sines preview (quick; what the frame networks changed):
# $W/reports/envelopes-VARIANT-stepN-val.
#   experiments/sound/envelopes.sh [VARIANT ...]      (default: all, one after the other)
# About 3-6 s a step on one core; runs are resumed where they stopped.
source "$(dirname "$0")/common.sh"
BASE_DEFAULT=e6c3780
declare -A VARIANT=(
  [control]=""                                                    # the same fine-tuning without the critics
  [spectrum-0.1]="--realism-weight 0.1"
  [spectrum-0.3]="--realism-weight 0.3"
  [spectrum-0.1-chroma1]="--realism-weight 0.1 --chroma-weight 1"
  [envelope-0.3]="--critic envelope --realism-weight 0.3"
  [envelope-0.3-piano-organ]="--critic envelope --realism-weight 0.3 --critic-domains piano,organ"
  [chroma1]="--chroma-weight 1"                                   # the control with the notes weighed more
  [chroma3]="--chroma-weight 3"
  [chroma10]="--chroma-weight 10"
  [default-envelope-piano]="--chroma-weight 3 --critic envelope --realism-weight 0.3 --critic-domains piano"
  [default-envelope-piano-chroma10]="--chroma-weight 10 --critic envelope --realism-weight 0.3 --critic-domains piano"
)
# Variants named default-* start from the default of commit 03f1434 ($W/default-chroma3.pt, made by
# default.sh's first stage) instead of e6c3780's: its frames already carry chroma3's fine-tuning.
STEPS=${STEPS:-200}
EVAL_STEP=${EVAL_STEP:-$STEPS}
[ -f "$W/flutter-default.pt" ] || git show "$BASE_DEFAULT:umt/assets/default.pt" > "$W/flutter-default.pt"
val() {  # MODEL NAME
  [ -f "$W/reports/$2-val/metrics.json" ] || nice $UMT evaluate --model "$1" --data "$(corpus tim)" --split val \
    --renderer sines --clips 3 --seconds 4 --judge "$W/judge" --figures 0 --out "$W/reports/$2-val"
}
base() {  # VARIANT -> the model it fine-tunes
  if [[ $1 == default-* ]]; then echo "$W/default-chroma3.pt"; else echo "$W/flutter-default.pt"; fi
}
val "$W/flutter-default.pt" envelopes-base
for name in "${@:-${!VARIANT[*]}}"; do
  for v in $name; do
    run=$W/runs/envelopes-$v
    if [ ! -f "$run/step$STEPS.pt" ]; then
      if [ -f "$run/last.pt" ]; then
        OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --resume
      else
        OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --from "$(base "$v")" --frames-only \
          --lr 2e-4 --render-batch-size 0 --steps "$STEPS" --val-every 100 --keep-every 100 --val-items 16 \
          --precision fp32 --workers 0 ${VARIANT[$v]}
      fi
    fi
    val "$run/step$EVAL_STEP.pt" "envelopes-$v-step$EVAL_STEP"
  done
done
