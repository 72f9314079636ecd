#!/usr/bin/env bash
# The recipe's renderers (docs/spectral-recipe.md, section 2; the spectral preset's residual
# WaveNets on real spectra, --batch-size 0), 3,000 steps; $W/runs/render-residual/best.pt is what
# frames.sh joins every frames run with. Resumes when stopped; about 44 minutes on two cores.
source "$(dirname "$0")/../sound/common.sh"
run=$W/runs/render-residual
[ -f "$run/step3000.pt" ] && exit 0
if [ -f "$run/last.pt" ]; then
  $UMT train "$(corpus tim)" --out "$run" --resume
else
  $UMT train "$(corpus tim)" --out "$run" --batch-size 0 --render-batch-size 8 --steps 3000 --precision bf16 \
    --val-every 500 --log-every 100 --keep-every 500
fi
