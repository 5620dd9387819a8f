#!/usr/bin/env bash
# demo: one job in every queue, final states from accounting (sacct)
set -euo pipefail
ids=()
for partition in $(sinfo -h -o %R | sort -u); do
  ids+=("$(sbatch --parsable --partition="$partition" --job-name="demo-$partition" \
    --wrap 'echo "hello from $SLURMD_NODENAME in $SLURM_JOB_PARTITION"')")
done
joined=$(IFS=,; echo "${ids[*]}")
echo "submitted jobs $joined; waiting for them to finish"
for _ in $(seq 1 60); do
  [[ -z $(squeue -h -j "$joined" 2>/dev/null) ]] && break
  sleep 1
done
sacct -X -j "$joined" -o JobID,JobName%14,Partition,NodeList%20,State,ExitCode
