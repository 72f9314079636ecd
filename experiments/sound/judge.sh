#!/usr/bin/env bash
# The judge that scores translations (docs/sound.md, "The judge"). First the recipe, chosen on
# soundfonts it never heard: for each of the three training soundfonts, a judge trained on the
# other two and scored on it (leave one soundfont out), with and without the random spectral tilt.
# Then the judge itself, on all three, scored on fluid-soundfont-gm (the acceptance check).
# Then the hiss judge (docs/sound.md, section 9): the same, with a class "hiss" learnt from crops
# under noise 45 to 20 dB below them (umt judge train --hiss-db). About 40 minutes a judge on one core.
source "$(dirname "$0")/common.sh"
TILT=${TILT:-0}  # the recipe the sweep chose (docs/sound.md)
out=$W/judge-sweep
for tilt in 0 12; do
  for held in tim gm opl; do
    [ "$tilt$held" = 12tim ] && continue  # not run: TimGM6mb held out is 1.000 without the tilt
    train=(); for key in tim gm opl; do [ "$key" = "$held" ] || train+=("$(corpus "$key")"); done
    [ -f "$out/tilt$tilt-no-$held/judge.pt" ] && continue
    $UMT judge train "${train[@]}" --holdout "$(corpus "$held")" --out "$out/tilt$tilt-no-$held" --tilt-db $tilt | grep accuracy
  done
done
[ -f "$W/judge/judge.pt" ] || $UMT judge train "$(corpus tim)" "$(corpus gm)" "$(corpus opl)" --holdout "$(corpus fluid)" \
  --out "$W/judge" --tilt-db "$TILT" | grep accuracy
[ -f "$W/judge-hiss/judge.pt" ] || $UMT judge train "$(corpus tim)" "$(corpus gm)" "$(corpus opl)" --holdout "$(corpus fluid)" \
  --out "$W/judge-hiss" --tilt-db "$TILT" --hiss-db 45 | grep accuracy
