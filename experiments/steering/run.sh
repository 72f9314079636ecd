#!/usr/bin/env bash
# docs/steering.md from nothing: for each trait, the probes' trait pairs (seed 7) and the unseen
# pairs of other pieces (seed 11), the probes on MODEL, the translation and generation sweeps
# (sweep.py), then the tables and the figure (report.py) into docs/steering/.
#   experiments/steering/run.sh [TRAIT ...]      (default: articulation register density)
# Env: MODEL (the shipped one), PIECES (per source domain, 6), RENDERER (wavenet; sines for a
# quick look), MODE (parallel: the token LM whose heads are probed and steered in generation;
# joint: the joint LM's probes in $W/traits/probes-joint and only its generation sweeps, in
# $W/traits/sweeps-joint), FIGURES (where the figure goes: docs/steering, or docs/steering/smitin-MODE
# for another MODE). Each step keeps what is done.
# Hours on one core with the WaveNet renderers; `UMT_WORK=/tmp/s PIECES=2 RENDERER=sines
# experiments/steering/run.sh register` took 25 minutes beside other work.
source "$(dirname "$0")/../sound/common.sh"
MODEL=${MODEL:-umt/assets/default.pt}
T=$W/traits
MODE=${MODE:-parallel}
probes=$T/probes sweeps=$T/sweeps tasks="translate generate"
figures=docs/steering
[ "$MODE" = parallel ] || { probes=$T/probes-$MODE sweeps=$T/sweeps-$MODE tasks=generate figures=docs/steering/smitin-$MODE; }
for trait in "${@:-articulation register density}"; do
  for t in $trait; do
    [ -d "$T/$t" ] || $UMT make-bench "$T/$t" --domains $DOMAINS --minutes 2 --clip-seconds 10 --seed 7 --trait "$t"
    [ -d "$T/$t-unseen" ] || $UMT make-bench "$T/$t-unseen" --domains $DOMAINS --minutes 1 --clip-seconds 10 \
      --seed 11 --trait "$t"
    [ -f "$probes/$t.pt" ] || $UMT probe train --with "$T/$t/with" --without "$T/$t/without" --trait "$t" \
      --model "$MODEL" --mode "$MODE" -o "$probes/$t.pt"
    for task in $tasks; do
      [ -f "$sweeps/$t-$task/results.json" ] || $PY experiments/steering/sweep.py "$task" --trait "$t" \
        --probe "$probes/$t.pt" --unseen "$T/$t-unseen" --out "$sweeps/$t-$task" --model "$MODEL" --mode "$MODE" \
        --pieces "${PIECES:-6}" --renderer "${RENDERER:-wavenet}"
    done
  done
done
$PY experiments/steering/report.py "$sweeps" "${FIGURES:-$figures}"
