#!/usr/bin/env bash
# One frames run of docs/spectral-recipe.md (sections 3, 5, 6): the spectral preset's encoder
# and frame networks alone (--render-batch-size 0), snapshots every 500 steps, joined at step
# AT with the recipe's renderers (renderers.sh) and scored by `umt evaluate` on the val split.
#   experiments/spectral-recipe/frames.sh NAME [umt train flags...]
# Env: STEPS (run length, 2500), AT (the step scored, STEPS), CLIPS (per source, 6),
# SPLIT (val), FROM (a run folder whose step<FROM_STEP>.pt this run continues: section 6's rows).
# A stopped run resumes; a scored one is skipped. Writes $W/runs/frames-NAME and
# $W/reports/recipe-NAME/; about 54 minutes of training per 2,500 steps on one core.
source "$(dirname "$0")/../sound/common.sh"
name=$1; shift
STEPS=${STEPS:-2500}; AT=${AT:-$STEPS}; CLIPS=${CLIPS:-6}; SPLIT=${SPLIT:-val}
run=$W/runs/frames-$name
report=$W/reports/recipe-$name
[ -f "$report/metrics.json" ] && exit 0
if [ ! -f "$run/step$AT.pt" ]; then
  if [ -n "${FROM:-}" ] && [ ! -f "$run/last.pt" ]; then  # a branch of another run at one of its snapshots
    mkdir -p "$run" && cp "$W/runs/frames-$FROM/step$FROM_STEP.pt" "$run/last.pt"
  fi
  if [ -f "$run/last.pt" ]; then
    OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --resume --steps "$STEPS" --keep-every 500 "$@"
  else
    OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --render-batch-size 0 --steps "$STEPS" \
      --val-every 500 --log-every 100 --keep-every 500 --workers 1 "$@"
  fi
fi
$UMT export "$run/step$AT.pt" "$W/runs/e2e-$name.pt" --renderers-from "$W/runs/render-residual/best.pt"
$UMT evaluate --model "$W/runs/e2e-$name.pt" --data "$(corpus tim)" --judge "$W/judge" --out "$report" \
  --clips "$CLIPS" --seconds 4 --split "$SPLIT" --figures 0
