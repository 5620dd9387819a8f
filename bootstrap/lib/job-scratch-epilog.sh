#!/bin/sh
# hpctool Slurm Epilog (epilog.d): removes the job's scratch folder. Never fails the node: a
# folder that cannot be removed is left for the next boot, which starts with an empty disk.
scratch="${HPCTOOL_SCRATCH_DIR:-/scratch}"
case "${SLURM_JOB_ID:-}" in
  '' | *[!0-9]*) exit 0 ;;
esac
rm -rf -- "${scratch}/slurm-job-${SLURM_JOB_ID}" || true
exit 0
