#!/usr/bin/env bash
# The shipped default model (README, "The default model"), from the previous default: flutter
# heads (flutter.sh), logistic renderers (renderers.sh logistic; best.pt = step 2,500), joined
# by export with the previous default's token LMs, each domain's sampling chosen on val
# (sampling.sh), exported to $W/default.pt. Each step resumes or skips what is done; about 3
# hours on one core. Then: experiments/sound/evaluate.sh "$W/default.pt" default.
source "$(dirname "$0")/common.sh"
bash experiments/sound/flutter.sh
bash experiments/sound/renderers.sh logistic
$UMT export "$W/runs/flutter/last.pt" "$W/joined.pt" --renderers-from "$W/runs/render-logistic/best.pt" \
  --lm "$W/previous-default.pt"
[ -f "$W/sampling/default.json" ] || bash experiments/sound/sampling.sh "$W/joined.pt" default
$UMT export "$W/joined.pt" "$W/default.pt" --lm "$W/previous-default.pt" --sampling "$W/sampling/default.json"
