#!/usr/bin/env bash
# The LM runs of lms.sh on a GPU machine, all side by side on its one card: for each ARM whose
# tokens are in $W/tokens (lms.sh or `umt tokenizer tokens` writes them; nothing else is needed,
# neither the audio nor the model), the parallel and the joint LM of common.sh, each resumed if
# its run holds a last.pt, for at most SECONDS (then stopped as by Ctrl-C: last.pt kept, to
# resume). Back on the machine with the corpus, lms.sh takes the runs as they are.
#   experiments/tokens/lms-gpu.sh SECONDS ARM[/MODE] ...     (an ARM alone: both of its LMs)
# Env: common.sh's (DEVICE defaults to cuda here), JOINT_FROM_FILE (a model whose joint LM a new
# run of the default arm starts from, as lms.sh's JOINT_FROM). Logs: $W/logs/lm-ARM-MODE.log.
source "$(dirname "$0")/../sound/common.sh"
DEVICE=${DEVICE:-cuda}
source experiments/tokens/common.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
seconds=$1
shift
mkdir -p "$W/logs"
runs=()
for spec in "$@"; do
  arm=${spec%%/*} modes="parallel joint"
  [ "$spec" = "$arm" ] || modes=${spec#*/}
  for mode in $modes; do
    start=""
    [ "$arm/$mode" != default/joint ] || start=${JOINT_FROM_FILE:-}
    lm_train "$arm" "$mode" $start > "$W/logs/lm-$arm-$mode.log" 2>&1 &
    runs+=($!)
  done
done
running() { local run; for run in "${runs[@]}"; do kill -0 "$run" 2> /dev/null && return 0; done; return 1; }
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ] && running; do sleep 2; done
for run in "${runs[@]}"; do pkill -TERM -P "$run" || true; done  # the umt processes (children of the subshells)
wait
