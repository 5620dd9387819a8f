#!/usr/bin/env bash
# demo: one job in every queue, final states from accounting (sacct)
set -euo pipefail
: "${HPCTOOL_DEMO_DIR:=$HOME/hpctool-demo}"; mkdir -p "$HPCTOOL_DEMO_DIR"
work=$(mktemp -d "$HPCTOOL_DEMO_DIR"/queues.XXXXXX)
ids=()
for partition in $(sinfo -h -o %R | sort -u); do
  # shellcheck disable=SC2016  # expanded by the job, not here
  ids+=("$(sbatch --parsable --partition="$partition" --job-name="demo-$partition" \
    --output="$work/%x-%j.out" --wrap 'echo "hello from $SLURMD_NODENAME in $SLURM_JOB_PARTITION"')")
done
joined=$(IFS=,; echo "${ids[*]}")
echo "submitted jobs $joined; waiting for them to finish"
# Wait for accounting, not squeue: slurmdbd records a job shortly after it leaves the queue.
for _ in $(seq 1 360); do  # dynamic nodes boot first (up to ~30 s on Slurm 22.05)
  finished=$(sacct -X -n -P -j "$joined" -o Partition,State | grep -cE '^[a-z].*\|(COMPLETED|FAILED|CANCELLED|TIMEOUT)' || true)
  [[ $finished -eq ${#ids[@]} ]] && break
  sleep 0.5
done
sacct -X -j "$joined" -o JobID,JobName%14,Partition,NodeList%20,State,ExitCode
cat "$work"/*.out
