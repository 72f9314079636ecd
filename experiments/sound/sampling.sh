#!/usr/bin/env bash
# Each domain's sampling (WaveNet temperature, flutter) of a model, chosen on the val split of its
# own corpus (bench/sampling_sweep.py): a noise floor within 6 dB of the real audio's, then the
# judge, then the MR-STFT distance. Writes $W/sampling/<name>.json and .txt, for `umt export --sampling`.
#   experiments/sound/sampling.sh MODEL NAME      About 20 minutes on one core.
# The grid: temperature 0, 0.2, 0.4 and flutter $FLUTTER (default 0.25 0.5 1; the default of
# commit e6c3780 was chosen from 0.5 and 1).
source "$(dirname "$0")/common.sh"
mkdir -p "$W/sampling"
$PY bench/sampling_sweep.py "$1" "$(corpus tim)" --judge "$W/judge" --temperature 0 0.2 0.4 --flutter ${FLUTTER:-0.25 0.5 1} \
  --out "$W/sampling/$2.json" | tee "$W/sampling/$2.txt"
