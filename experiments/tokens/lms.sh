#!/usr/bin/env bash
# docs/tokens.md, "The LMs until they stop improving": for each tokenizer ARM, its tokens of the
# corpus (umt tokenizer tokens: $W/tokens/ARM.pt), a parallel and a joint token LM trained until
# the val NLL stops falling (common.sh), then the comparison: test NLL per frame (stored in best.pt),
# generation speed with and without the key-value cache (bench/token_lm.py) and the
# continuations' sound and music (bench/continuations.py: 8 test prompts of 2 s continued by 4 s
# into violin, sines rendering, judge, noise floor, note statistics). Needs corpora.sh and judge.sh.
#   experiments/tokens/lms.sh [ARM ...]      (default: default)
# ARM: "default", the shipped model's own tokenizer, or an arm of mmd.sh (its name: the MMD
# weight, then -lLAYERS if it has blocks, e.g. 0 or 1000-l2). The LMs may have been trained on a
# GPU machine instead (lms-gpu.sh): what is done is kept, what was stopped resumes.
# Env: common.sh's (the LM's size, PATIENCE, MAX_STEPS, BATCH, JOINT_FROM).
source "$(dirname "$0")/../sound/common.sh"
source experiments/tokens/common.sh
mkdir -p "$W/reports" "$W/tokens"
for arm in ${@:-default}; do
  model=$W/runs/tokmmd-$arm/last.pt  # where mmd.sh measured it (its best.pt is chosen on reconstruction alone)
  if [ "$arm" = default ]; then
    model=umt/assets/default.pt  # its tokenizer has not changed since dc5c0c1
    start=$(lm_start default joint)
    if [ -n "$start" ] && [ ! -f "$start" ]; then
      git show "$JOINT_FROM:umt/assets/default.pt" > "$start.tmp" && mv "$start.tmp" "$start"
    fi
  fi
  [ -f "$model" ] || { echo "no tokenizer for arm $arm: run experiments/tokens/mmd.sh first" >&2; exit 1; }
  [ -f "$W/tokens/$arm.pt" ] || $UMT tokenizer tokens --model "$model" --data "$(corpus tim)" -o "$W/tokens/$arm.pt"
  lm_train "$arm" parallel
  lm_train "$arm" joint
  parallel=$(lm_folder "$arm" parallel) joint=$(lm_folder "$arm" joint)
  name=$(basename "$parallel" | sed "s/^lm-$arm-parallel-//")
  $UMT export "$model" "$W/tokens-$arm-$name.pt" --lm "$parallel" --lm "$joint"
  $PY bench/token_lm.py "$W/tokens-$arm-$name.pt" | tee "$W/reports/lm-speed-$arm-$name.txt"
  [ -f "$W/reports/continuations-$arm-$name.json" ] || $PY bench/continuations.py "$W/tokens-$arm-$name.pt" \
    --data "$(corpus tim)" --judge "$W/judge" --renderer sines --json "$W/reports/continuations-$arm-$name.json"
done
