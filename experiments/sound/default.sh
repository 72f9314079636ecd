#!/usr/bin/env bash
# The shipped default model (README, "The default model"; docs/sound.md, section 10). Its base is
# the default of commit e6c3780 (flutter heads, logistic renderers, sampling chosen on val; made
# by that commit's experiments/sound/default.sh from the one before). Here its frame networks are
# fine-tuned on their own translation path with the translation-chroma term at weight 3
# (envelopes.sh chroma3: --frames-only, so encoder, tokenizer, token LMs and renderers stay as
# they were), each domain's sampling is chosen again on val (sampling.sh, flutter 0.25 added to
# the grid), and the result is exported with e6c3780's token LMs to $W/default.pt, organ keeping
# e6c3780's decoder (the heavier chroma term cost organ's timbre on val: docs/sound.md, section
# 10). Each step resumes or skips what is done; about 40 minutes on one core.
# Then: experiments/sound/evaluate.sh "$W/default.pt" default.
source "$(dirname "$0")/common.sh"
VARIANT=chroma3
STEP=200
STEPS=$STEP bash experiments/sound/envelopes.sh "$VARIANT"
$UMT export "$W/runs/envelopes-$VARIANT/step$STEP.pt" "$W/joined-$VARIANT.pt" --lm "$W/flutter-default.pt"
[ -f "$W/sampling/$VARIANT.json" ] || bash experiments/sound/sampling.sh "$W/joined-$VARIANT.pt" "$VARIANT"
$UMT export "$W/joined-$VARIANT.pt" "$W/default.pt" --lm "$W/flutter-default.pt" --sampling "$W/sampling/$VARIANT.json" \
  --decoder-from organ="$W/flutter-default.pt"
