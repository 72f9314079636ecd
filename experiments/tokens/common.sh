# Shared by lms.sh and lms-gpu.sh: one token LM of docs/tokens.md. Source it after
# ../sound/common.sh; do not run it.
# Env: LAYERS HEADS DIM CONTEXT DROPOUT (the LM's size: 4 4 128 128 0.1), PATIENCE (4), MAX_STEPS
# (20000), BATCH (8), DEVICE (auto), JOINT_FROM (a commit: the default arm's joint LM starts from
# the one the default model of that commit carries, $W/default-COMMIT.pt, 1,500 steps without
# dropout; a joint step costs about 10x a parallel one; empty: from scratch; default dc5c0c1).
LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} DIM=${DIM:-128} CONTEXT=${CONTEXT:-128} DROPOUT=${DROPOUT:-0.1}
PATIENCE=${PATIENCE:-4} MAX_STEPS=${MAX_STEPS:-20000} BATCH=${BATCH:-8} DEVICE=${DEVICE:-auto}
JOINT_FROM=${JOINT_FROM-dc5c0c1}
lm_start() {  # ARM MODE: the model whose LM a new run starts from (nothing: from scratch)
  if [ "$1/$2" = default/joint ] && [ -n "$JOINT_FROM" ]; then echo "$W/default-$JOINT_FROM.pt"; fi
}
lm_folder() {  # ARM MODE: the run of that LM (one that starts from a model ends in -from-ITS-NAME)
  local name=$W/runs/lm-$1-$2-l${LAYERS}h${HEADS}d${DIM}c${CONTEXT}p${DROPOUT} start
  start=$(lm_start "$1" "$2")
  if [ -n "$start" ]; then echo "$name-from-$(basename "$start" .pt)"; else echo "$name"; fi
}
lm_train() {  # ARM MODE: train (or resume) the LM of MODE on the tokens of ARM ($W/tokens/ARM.pt)
  # until the val NLL has not fallen for PATIENCE validations (every 250 steps; at most MAX_STEPS)
  local lm start tokens=$W/tokens/$1.pt
  lm=$(lm_folder "$1" "$2") start=$(lm_start "$1" "$2")
  [ -f "$tokens" ] || { echo "$tokens: no tokens for arm $1 (lms.sh writes them)" >&2; return 1; }
  if [ -f "$lm/best.pt" ] && [ ! -f "$lm/last.pt" ]; then  # brought back from elsewhere without its last.pt
    echo "$lm: kept as it is (best.pt alone: a run that ended elsewhere)"
  elif [ -f "$lm/last.pt" ]; then
    $UMT lm train --tokens "$tokens" --out "$lm" --resume --steps "$MAX_STEPS" --patience "$PATIENCE" \
      --batch-size "$BATCH" --val-every 250 --device "$DEVICE"
  else
    $UMT lm train --tokens "$tokens" --out "$lm" --mode "$2" --layers "$LAYERS" --heads "$HEADS" --dim "$DIM" \
      --context "$CONTEXT" --dropout "$DROPOUT" --batch-size "$BATCH" --steps "$MAX_STEPS" --val-every 250 \
      --patience "$PATIENCE" --device "$DEVICE" ${start:+--from "$start"}
  fi
}
