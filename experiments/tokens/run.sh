#!/usr/bin/env bash
# docs/tokens.md's table: on MODEL (a model without a tokenizer, or one whose tokenizer is
# replaced), a tokenizer without and one with the codebook independence loss; for each, the
# mutual information between its codebooks on the test split, both token LMs, and the
# reconstruction through the tokens (umt evaluate --tokens); then the LM benchmark.
#   experiments/tokens/run.sh [ARM ...]      (default: nommd mmd)
# Env: MODEL (the frames-and-renderers model the tokenizers are fitted onto; default: the
# shipped one), LM_STEPS (1500). Each step keeps what is done and resumes what was stopped;
# about 3 hours an arm on one core.
source "$(dirname "$0")/../sound/common.sh"
MODEL=${MODEL:-umt/assets/default.pt}
LM_STEPS=${LM_STEPS:-1500}
declare -A ARM=(
  [nommd]=""
  [mmd]="--mmd-weight 10 --no-mmd-delays"
)
for arm in "${@:-nommd mmd}"; do
  for a in $arm; do
    tok=$W/runs/tok-$a
    if ! finished "$tok" 1000; then
      if [ -f "$tok/last.pt" ]; then
        $UMT tokenizer train "$(corpus tim)" --out "$tok" --resume
      else
        $UMT tokenizer train "$(corpus tim)" --from "$MODEL" --out "$tok" --codebooks 4 --codebook-size 256 \
          --steps 1000 ${ARM[$a]}
      fi
    fi
    [ -f "$W/reports/tok-$a-mi.json" ] || $UMT tokenizer measure --model "$tok/best.pt" --data "$(corpus tim)" \
      --json "$W/reports/tok-$a-mi.json"
    for mode in parallel joint; do
      lm=$W/runs/lm-$a-$mode
      if ! finished "$lm" "$LM_STEPS"; then
        if [ -f "$lm/last.pt" ]; then
          $UMT lm train "$(corpus tim)" --model "$tok/best.pt" --out "$lm" --resume --steps "$LM_STEPS"
        else
          $UMT lm train "$(corpus tim)" --model "$tok/best.pt" --out "$lm" --mode $mode --context 128 \
            --batch-size 8 --steps "$LM_STEPS" --val-every 250
        fi
      fi
    done
    [ -f "$W/reports/tok-$a-tokens/metrics.json" ] || $UMT evaluate --model "$tok/best.pt" --data "$(corpus tim)" \
      --judge "$W/judge" --out "$W/reports/tok-$a-tokens" --clips 6 --seconds 4 --figures 0 --tokens
    $UMT export "$tok/best.pt" "$W/tokens-$a.pt" --lm "$W/runs/lm-$a-parallel" --lm "$W/runs/lm-$a-joint"
    $PY bench/token_lm.py "$W/tokens-$a.pt"
  done
done
