#!/usr/bin/env bash
# docs/tokens.md, "The independence loss as the paper's code runs it": tokenizers fitted onto
# MODEL (its own tokenizer replaced) with the loss at each WEIGHT (0: without it, still measured
# every macro-batch), at the parallel LM's delays, macro-batches of 32 steps; for each, the
# mutual information between its codebooks and their usage on the test split (umt tokenizer
# measure) and the translations through its tokens (umt evaluate --tokens, test split, 6 clips
# of 4 s per source). The frame networks' val spectrum L1 through the tokens is in each run's log.
# Every arm fits the same way: 8 crops of 2 s per domain, reconstruction and commitment only (the
# base run's translation-chroma term off: it doubled a step's cost and is not the tokenizer's job).
#   experiments/tokens/mmd.sh [WEIGHT ...]      (default: 0 1000 10000)
# Env: MODEL (default: the shipped one), STEPS (1000: about 31 macro-batches), LAYERS (2: the
# tokenizer's residual blocks each side, what the loss can reshape beside a linear map, with the
# encoder frozen; 0 for none, the arms of tokmmd-WEIGHT, blocks in tokmmd-WEIGHT-lLAYERS). Each
# step keeps what is done and resumes what was stopped; about an hour a weight on one core (3-4 s
# a step), 1.5 hours with two runs beside it.
source "$(dirname "$0")/../sound/common.sh"
MODEL=${MODEL:-umt/assets/default.pt}
STEPS=${STEPS:-1000}
LAYERS=${LAYERS:-2}
for weight in ${@:-0 1000 10000}; do
  arm=$weight
  [ "$LAYERS" = 0 ] || arm=$weight-l$LAYERS
  tok=$W/runs/tokmmd-$arm
  if ! finished "$tok" "$STEPS"; then
    if [ -f "$tok/last.pt" ]; then
      $UMT tokenizer train "$(corpus tim)" --out "$tok" --resume
    else
      $UMT tokenizer train "$(corpus tim)" --from "$MODEL" --out "$tok" --codebooks 4 --codebook-size 256 \
        --layers "$LAYERS" --steps "$STEPS" --mmd-weight "$weight" --precision fp32 --batch-size 8 --loss-weight translation_chroma=0
    fi
  fi
  # the arms are compared where each ended (best.pt is chosen on reconstruction alone: with the
  # loss weighted, it is an early step that the loss has hardly touched)
  [ -f "$W/reports/tokmmd-$arm-mi.json" ] || $UMT tokenizer measure --model "$tok/last.pt" --data "$(corpus tim)" \
    --json "$W/reports/tokmmd-$arm-mi.json"
  [ -f "$W/reports/tokmmd-$arm-tokens/metrics.json" ] || $UMT evaluate --model "$tok/last.pt" \
    --data "$(corpus tim)" --judge "$W/judge" --out "$W/reports/tokmmd-$arm-tokens" --clips 6 --seconds 4 \
    --renderer sines --figures 0 --tokens
done
