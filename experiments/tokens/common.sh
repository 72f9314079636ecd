# Shared by lms.sh and lms-gpu.sh: one token LM of docs/tokens.md. Source it after
# ../sound/common.sh; do not run it.
# Env: LAYERS HEADS DIM CONTEXT DROPOUT (the LM's size: 4 4 128 128 0.1), PATIENCE (4), MAX_STEPS
# (20000), BATCH (8), DEVICE (auto).
LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} DIM=${DIM:-128} CONTEXT=${CONTEXT:-128} DROPOUT=${DROPOUT:-0.1}
PATIENCE=${PATIENCE:-4} MAX_STEPS=${MAX_STEPS:-20000} BATCH=${BATCH:-8} DEVICE=${DEVICE:-auto}
lm_folder() {  # ARM MODE [FROM]: the run of that LM (FROM: a model file, its name ends the run's)
  local name=$W/runs/lm-$1-$2-l${LAYERS}h${HEADS}d${DIM}c${CONTEXT}p${DROPOUT}
  if [ -n "${3:-}" ]; then echo "$name-from-$(basename "$3" .pt)"; else echo "$name"; fi
}
lm_train() {  # ARM MODE [FROM]: train (or resume) the LM of MODE on the tokens of ARM ($W/tokens/ARM.pt)
  # until the val NLL has not fallen for PATIENCE validations (every 250 steps; at most MAX_STEPS);
  # a new run starts from FROM's LM of MODE (umt lm train --from) if given
  local lm tokens=$W/tokens/$1.pt start=()
  lm=$(lm_folder "$@")
  [ -z "${3:-}" ] || start=(--from "$3")
  [ -f "$tokens" ] || { echo "$tokens: no tokens for arm $1 (lms.sh writes them)" >&2; return 1; }
  if [ -f "$lm/last.pt" ]; then
    $UMT lm train --tokens "$tokens" --out "$lm" --resume --steps "$MAX_STEPS" --patience "$PATIENCE" --device "$DEVICE"
  else
    $UMT lm train --tokens "$tokens" --out "$lm" --mode "$2" --layers "$LAYERS" --heads "$HEADS" --dim "$DIM" \
      --context "$CONTEXT" --dropout "$DROPOUT" --batch-size "$BATCH" --steps "$MAX_STEPS" --val-every 250 \
      --patience "$PATIENCE" --device "$DEVICE" "${start[@]}"
  fi
}
