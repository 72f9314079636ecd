#!/usr/bin/env bash
# The LM runs of lms.sh on a GPU machine, all side by side on its one card: for each ARM whose
# tokens are in $W/tokens (lms.sh or `umt tokenizer tokens` writes them; nothing else is needed,
# neither the audio nor the model; a new default/joint run also needs $W/default-JOINT_FROM.pt),
# the parallel and the joint LM of common.sh, each resumed if its run holds a last.pt, for at
# most SECONDS (then stopped as by Ctrl-C: last.pt kept, to resume). Back on the machine with the
# corpus, lms.sh takes the runs as they are (a run folder with best.pt alone counts as done).
#   experiments/tokens/lms-gpu.sh SECONDS ARM[/MODE] ...     (an ARM alone: both of its LMs)
# Env: common.sh's (DEVICE defaults to cuda here). Logs: $W/logs/lm-ARM-MODE.log. Exits non-zero
# if a run failed.
source "$(dirname "$0")/../sound/common.sh"
DEVICE=${DEVICE:-cuda}
source experiments/tokens/common.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
seconds=$1
shift
mkdir -p "$W/logs"
runs=()
stop() { local run; for run in "${runs[@]}"; do pkill -TERM -P "$run" || true; done; }  # the umt processes
trap 'stop; wait; exit 130' INT TERM
for spec in "$@"; do
  arm=${spec%%/*} modes="parallel joint"
  [ "$spec" = "$arm" ] || modes=${spec#*/}
  for mode in $modes; do
    lm_train "$arm" "$mode" > "$W/logs/lm-$arm-$mode.log" 2>&1 &
    runs+=($!)
  done
done
running() { local run; for run in "${runs[@]}"; do kill -0 "$run" 2> /dev/null && return 0; done; return 1; }
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ] && running; do sleep 2; done
stop
status=0
for run in "${runs[@]}"; do
  wait "$run" || [ $? = 130 ] || { echo "a run failed: see $W/logs" >&2; status=1; }  # 130: stopped for time
done
exit $status
