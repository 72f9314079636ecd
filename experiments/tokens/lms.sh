#!/usr/bin/env bash
# docs/tokens.md, "The LMs until they stop improving": for each tokenizer ARM, a parallel and a
# joint token LM trained until the val NLL has not fallen for PATIENCE validations (every 250
# steps; at most MAX_STEPS), then the comparison: test NLL per frame (stored in best.pt),
# generation speed with and without the key-value cache (bench/token_lm.py) and the
# continuations' sound and music (bench/continuations.py: 8 test prompts of 2 s continued by 4 s
# into violin, sines rendering, judge, noise floor, note statistics). Needs corpora.sh and judge.sh.
#   experiments/tokens/lms.sh [ARM ...]      (default: default)
# ARM: "default", the shipped model's own tokenizer, or an arm of mmd.sh (its name: the MMD
# weight, then -lLAYERS if it has blocks, e.g. 0 or 1000-l2).
# Env: LAYERS HEADS DIM CONTEXT DROPOUT (the LM's size: 4 4 128 128 0.1), PATIENCE (4),
# MAX_STEPS (20000), BATCH (8), JOINT_FROM (a commit, for the default arm: its joint LM starts
# from the one the default model of that commit carries (umt lm train --from, 1,500 steps
# without dropout), a joint step costing about 10x a parallel one; empty: from scratch).
# Runs resume where they stopped.
source "$(dirname "$0")/../sound/common.sh"
LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} DIM=${DIM:-128} CONTEXT=${CONTEXT:-128} DROPOUT=${DROPOUT:-0.1}
PATIENCE=${PATIENCE:-4} MAX_STEPS=${MAX_STEPS:-20000} BATCH=${BATCH:-8} JOINT_FROM=${JOINT_FROM-dc5c0c1}
SIZE=l${LAYERS}h${HEADS}d${DIM}c${CONTEXT}p${DROPOUT}
for weight in ${@:-default}; do
  tok=$W/runs/tokmmd-$weight/best.pt
  start=()
  if [ "$weight" = default ]; then
    tok=umt/assets/default.pt  # its tokenizer has not changed since dc5c0c1
    if [ -n "$JOINT_FROM" ]; then
      [ -f "$W/default-$JOINT_FROM.pt" ] || git show "$JOINT_FROM:umt/assets/default.pt" > "$W/default-$JOINT_FROM.pt"
      start=(--from "$W/default-$JOINT_FROM.pt")
    fi
  fi
  [ -f "$tok" ] || { echo "no tokenizer for arm $weight: run experiments/tokens/mmd.sh first" >&2; exit 1; }
  lms=()
  mkdir -p "$W/reports"
  for mode in parallel joint; do
    lm=$W/runs/lm-$weight-$mode-$SIZE
    from=()
    [ $mode = parallel ] || { from=("${start[@]}"); [ ${#from[@]} = 0 ] || lm=$lm-from-$JOINT_FROM; }
    if [ -f "$lm/last.pt" ]; then
      $UMT lm train "$(corpus tim)" --model "$tok" --out "$lm" --resume --steps "$MAX_STEPS" --patience "$PATIENCE"
    else
      $UMT lm train "$(corpus tim)" --model "$tok" --out "$lm" --mode $mode --layers "$LAYERS" --heads "$HEADS" \
        --dim "$DIM" --context "$CONTEXT" --dropout "$DROPOUT" --batch-size "$BATCH" --steps "$MAX_STEPS" \
        --val-every 250 --patience "$PATIENCE" "${from[@]}"
    fi
    lms+=(--lm "$lm")
  done
  $UMT export "$tok" "$W/tokens-$weight-$SIZE.pt" "${lms[@]}"
  $PY bench/token_lm.py "$W/tokens-$weight-$SIZE.pt" | tee "$W/reports/lm-speed-$weight-$SIZE.txt"
  [ -f "$W/reports/continuations-$weight-$SIZE.json" ] || $PY bench/continuations.py "$W/tokens-$weight-$SIZE.pt" \
    --data "$(corpus tim)" --judge "$W/judge" --renderer sines --json "$W/reports/continuations-$weight-$SIZE.json"
done
