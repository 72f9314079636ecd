#!/usr/bin/env bash
# The benchmark corpus (20 minutes of Bach chorales on piano, violin, flute and organ) rendered
# through each soundfont and prepared. Needs: apt-get install csound-soundfont opl3-soundfont
# fluid-soundfont-gm. About 6 minutes on the 2-core CPU; finished corpora are kept.
source "$(dirname "$0")/common.sh"
for key in tim gm opl fluid; do
  [ -f "$(corpus "$key")/manifest.json" ] && continue
  font=${SOUNDFONT[$key]}
  $UMT make-bench "$(raw "$key")" --domains $DOMAINS --minutes 20 ${font:+--soundfont "$font"}
  $UMT prepare "$(raw "$key")" "$(corpus "$key")"
done
