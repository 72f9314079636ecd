#!/usr/bin/env bash
# Flutter heads for the previous default model's frame networks (docs/sound.md, section 5):
# `train --from` it with spectrum_flutter; only the new heads train (the model translates as
# before, plus flutter; its tokenizer and token LMs stay valid). Writes $W/runs/flutter. The
# previous default (without flutter) comes from the git history.
# The shipped run was stopped at step 525 of 1000 (about 30 minutes on one core, beside a renderer
# run); `--resume` continues it.
source "$(dirname "$0")/common.sh"
run=$W/runs/flutter
if [ -f "$run/last.pt" ]; then
  OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --resume
else
  git show "$PREVIOUS_DEFAULT:umt/assets/default.pt" > "$W/previous-default.pt"
  OMP_NUM_THREADS=1 $UMT train "$(corpus tim)" --out "$run" --from "$W/previous-default.pt" --model-set frames.flutter=true \
    --render-batch-size 0 --steps 1000 --val-items 16 --precision fp32
fi
