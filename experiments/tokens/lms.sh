#!/usr/bin/env bash
# docs/tokens.md, "The LMs until they stop improving": for each tokenizer arm of mmd.sh (its
# name: the MMD weight, then -lLAYERS if it has blocks, e.g. 0 or 1000-l2), a parallel and a joint token LM trained until the val NLL has not fallen for
# PATIENCE validations (every 250 steps; at most MAX_STEPS), then the comparison: test NLL per
# frame (stored in best.pt), generation speed with and without the key-value cache
# (bench/token_lm.py) and the continuations' sound and music (bench/continuations.py: 8 test
# prompts of 2 s continued by 4 s into violin, judge, noise floor, note statistics).
#   experiments/tokens/lms.sh [ARM ...]      (default: 0)
# Env: LAYERS HEADS DIM CONTEXT DROPOUT (the LM's size: 4 4 128 128 0.1), PATIENCE (4),
# MAX_STEPS (20000), BATCH (8). Runs resume where they stopped.
source "$(dirname "$0")/../sound/common.sh"
LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} DIM=${DIM:-128} CONTEXT=${CONTEXT:-128} DROPOUT=${DROPOUT:-0.1}
PATIENCE=${PATIENCE:-4} MAX_STEPS=${MAX_STEPS:-20000} BATCH=${BATCH:-8}
SIZE=l${LAYERS}h${HEADS}d${DIM}c${CONTEXT}p${DROPOUT}
for weight in ${@:-0}; do
  tok=$W/runs/tokmmd-$weight/best.pt
  [ -f "$tok" ] || { echo "no tokenizer for arm $weight: run experiments/tokens/mmd.sh first" >&2; exit 1; }
  lms=()
  for mode in parallel joint; do
    lm=$W/runs/lm-$weight-$mode-$SIZE
    if [ -f "$lm/last.pt" ]; then
      $UMT lm train "$(corpus tim)" --model "$tok" --out "$lm" --resume --steps "$MAX_STEPS" --patience "$PATIENCE"
    else
      $UMT lm train "$(corpus tim)" --model "$tok" --out "$lm" --mode $mode --layers "$LAYERS" --heads "$HEADS" \
        --dim "$DIM" --context "$CONTEXT" --dropout "$DROPOUT" --batch-size "$BATCH" --steps "$MAX_STEPS" \
        --val-every 250 --patience "$PATIENCE"
    fi
    lms+=(--lm "$lm")
  done
  $UMT export "$tok" "$W/tokens-$weight-$SIZE.pt" "${lms[@]}"
  $PY bench/token_lm.py "$W/tokens-$weight-$SIZE.pt" | tee "$W/reports/lm-speed-$weight-$SIZE.txt"
  [ -f "$W/reports/continuations-$weight-$SIZE.json" ] || $PY bench/continuations.py "$W/tokens-$weight-$SIZE.pt" \
    --data "$(corpus tim)" --judge "$W/judge" --json "$W/reports/continuations-$weight-$SIZE.json"
done
