#!/usr/bin/env bash
# Every row of docs/spectral-recipe.md's tables in sections 5 and 6, one frames.sh run each, then
# the tables (table.py). The rows are relative to today's spectral preset: flags undo what the
# preset has since gained (the chroma term of section 6, then section 5's three changes).
#   experiments/spectral-recipe/ablations.sh [ROW ...]     (default: every row, one after the other)
# About an hour a row on one core (two 5,000-step rows: two hours). Needs renderers.sh first.
source "$(dirname "$0")/../sound/common.sh"
D=experiments/spectral-recipe
bash $D/renderers.sh
no_chroma=(--chroma-weight 0)
declare -A ROW=(
  # section 5: where the timbre was lost (5,000 steps for the first default's row)
  [maximize]="--confusion maximize --timbre-augment 0 --model-set classifier.context=0"
  [uniform]="--timbre-augment 0 --model-set classifier.context=0"
  [timbre]="--model-set classifier.context=0"
  [context]=""                                 # + classifier_context 6: the preset without the chroma term
  [confusion0005]="--confusion-weight 0.005"
  [confusion002]="--confusion-weight 0.02"
  [context3]="--model-set classifier.context=3"
  [stride5]="--model-set latent_stride=5"
  [stride2]="--model-set latent_stride=2"
)
rows=("${@:-maximize uniform timbre context confusion0005 confusion002 context3 stride5 stride2 control chroma03 preset}")
for row in ${rows[*]}; do
  case $row in
    maximize) STEPS=5000 bash $D/frames.sh "$row" "${no_chroma[@]}" ${ROW[$row]} ;;
    # section 6: step 2,500 of the `context` row continued 1,000 steps without and with the term
    control) FROM=context FROM_STEP=2500 STEPS=3500 bash $D/frames.sh control ;;
    chroma03) FROM=context FROM_STEP=2500 STEPS=3500 bash $D/frames.sh chroma03 --chroma-weight 0.3 ;;
    preset) bash $D/frames.sh preset ;;           # the term from the first step: the default's frames
    *) bash $D/frames.sh "$row" "${no_chroma[@]}" ${ROW[$row]} ;;
  esac
done
$PY $D/table.py "$W/reports" ${rows[*]}
