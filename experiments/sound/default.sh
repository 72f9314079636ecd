#!/usr/bin/env bash
# The shipped default model (README, "The default model"; docs/sound.md, section 10). Its base is
# the default of commit e6c3780 (flutter heads, logistic renderers, sampling chosen on val; made
# by that commit's experiments/sound/default.sh from the one before). Here its frame networks are
# fine-tuned on their own translation path with the translation-chroma term at weight 3
# (envelopes.sh chroma3: --frames-only, so encoder, tokenizer, token LMs and renderers stay as
# they were), each domain's sampling is chosen again on val (sampling.sh, flutter 0.25 added to
# the grid), and the result is exported with e6c3780's token LMs to $W/default-chroma3.pt (the
# default of commit 03f1434), organ keeping e6c3780's decoder (the heavier chroma term cost organ's
# timbre on val: docs/sound.md, section 10). Then piano's decoder comes from a second frames-only
# fine-tuning of that model, with the envelope critic on piano and the chroma term at 10
# (envelopes.sh default-envelope-piano-chroma10: translations into piano strike and decay), its
# sampling kept: $W/default.pt. Each step resumes or skips what is done; about 70 minutes on one core.
# Then: experiments/sound/evaluate.sh "$W/default.pt" default.
source "$(dirname "$0")/common.sh"
VARIANT=chroma3
STEP=200
STEPS=$STEP bash experiments/sound/envelopes.sh "$VARIANT"
$UMT export "$W/runs/envelopes-$VARIANT/step$STEP.pt" "$W/joined-$VARIANT.pt" --lm "$W/flutter-default.pt"
[ -f "$W/sampling/$VARIANT.json" ] || bash experiments/sound/sampling.sh "$W/joined-$VARIANT.pt" "$VARIANT"
[ -f "$W/default-chroma3.pt" ] || $UMT export "$W/joined-$VARIANT.pt" "$W/default-chroma3.pt" --lm "$W/flutter-default.pt" \
  --sampling "$W/sampling/$VARIANT.json" --decoder-from organ="$W/flutter-default.pt"
PIANO=default-envelope-piano-chroma10
STEPS=$STEP bash experiments/sound/envelopes.sh "$PIANO"
$UMT export "$W/default-chroma3.pt" "$W/default.pt" --lm "$W/default-chroma3.pt" --sampling "$W/sampling/$VARIANT.json" \
  --decoder-from piano="$W/runs/envelopes-$PIANO/step$STEP.pt"
