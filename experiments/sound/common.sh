# Shared by the scripts of this folder: where the long runs write (outside the work tree) and
# how they call umt. Source it; do not run it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W=${UMT_WORK:-$HOME/umt-work}
UMT=${UMT:-.venv/bin/umt}  # where umt is not installed (a GPU machine): UMT='python3 -m umt'
PY=.venv/bin/python
DOMAINS=piano,violin,flute,organ
PREVIOUS_DEFAULT=1d58b16  # the last commit that shipped the default without flutter (8-bit mu-law renderers)
# The soundfonts: TimGM6mb (pretty_midi's, the model's corpus), Debian's csound-soundfont and
# opl3-soundfont (the judge's other two). fluid-soundfont-gm is the acceptance check only: nothing
# is trained, tuned or chosen on it.
declare -A SOUNDFONT=([tim]="" [gm]=/usr/share/sounds/sf2/sf_GMbank.sf2 [opl]=/usr/share/sounds/sf2/OPL-3_FM_128M.sf2
                      [fluid]=/usr/share/sounds/sf2/FluidR3_GM.sf2)
raw() {  # the rendered corpus of a soundfont key
  if [ "$1" = tim ]; then echo "$W/bench4"; else echo "$W/bench4-$1"; fi
}
corpus() {  # the prepared corpus of a soundfont key
  echo "$(raw "$1")-prepared"
}
finished() {  # whether the run in $1 has reached $2 steps
  [ -f "$1/last.pt" ] && [ "$($PY -c "import sys, torch; print(torch.load(sys.argv[1], weights_only=True)['step'])" \
    "$1/last.pt")" -ge "$2" ]
}
