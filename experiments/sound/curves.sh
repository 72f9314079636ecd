#!/usr/bin/env bash
# Free-running curves of each renderer variant over training time (docs/sound.md): every kept
# snapshot renders val clips from the real spectrum (bench/renderer_curve.py), at temperatures
# 1, 0.7 and 0; the shipped default's renderers first, as the baseline. Needs corpora.sh,
# judge.sh and (some of) renderers.sh. Writes $W/curves/<variant>.txt.
source "$(dirname "$0")/common.sh"
mkdir -p "$W/curves"
args=(--judge "$W/judge" --clips 4 --seconds 2 --temperature 1 0.7 0)
$PY bench/renderer_curve.py "$(corpus tim)" umt/assets/default.pt "${args[@]}" | tee "$W/curves/default.txt"
for run in "$W"/runs/render-*; do
  snapshots=$(ls "$run"/step*.pt 2>/dev/null | sort -V)
  [ -n "$snapshots" ] || continue
  $PY bench/renderer_curve.py "$(corpus tim)" $snapshots "${args[@]}" | tee "$W/curves/$(basename "$run").txt"
done
