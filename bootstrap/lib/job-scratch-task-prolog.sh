#!/bin/sh
# hpctool Slurm TaskProlog: points TMPDIR at the job's scratch folder when the node has one.
# Slurm reads "export NAME=VALUE" lines from a TaskProlog's output into the task's environment.
scratch="${HPCTOOL_SCRATCH_DIR:-/scratch}"
case "${SLURM_JOB_ID:-}" in
  '' | *[!0-9]*) exit 0 ;;
esac
dir="${scratch}/slurm-job-${SLURM_JOB_ID}"
if [ -d "${dir}" ] && [ -w "${dir}" ]; then
  echo "export TMPDIR=${dir}"
fi
exit 0
