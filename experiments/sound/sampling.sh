#!/usr/bin/env bash
# Each domain's sampling (WaveNet temperature, flutter) of a model, chosen on the val split of its
# own corpus (bench/sampling_sweep.py): the judge within 0.05 of its best, then the noise floor
# closest to the real audio's. Writes $W/sampling/<name>.json and .txt, for `umt export --sampling`.
#   experiments/sound/sampling.sh MODEL NAME      About 15 minutes on one core.
source "$(dirname "$0")/common.sh"
mkdir -p "$W/sampling"
$PY bench/sampling_sweep.py "$1" "$(corpus tim)" --judge "$W/judge" --temperature 0 0.2 0.4 --flutter 0.5 1 \
  --out "$W/sampling/$2.json" | tee "$W/sampling/$2.txt"
