#!/bin/sh
# hpctool Slurm Prolog (prolog.d): a private scratch folder for the job on nodes whose local NVMe
# is mounted at /scratch. Runs as root on the compute node; a failure here drains the node, which
# is right when the local disk cannot take a folder.
scratch="${HPCTOOL_SCRATCH_DIR:-/scratch}"
case "${SLURM_JOB_ID:-}" in
  '' | *[!0-9]*) exit 0 ;;
esac
[ -f "${scratch}/.hpctool-scratch" ] || exit 0
dir="${scratch}/slurm-job-${SLURM_JOB_ID}"
mkdir -p "${dir}"
chown "${SLURM_JOB_UID:?}:${SLURM_JOB_GID:-${SLURM_JOB_UID}}" "${dir}"
chmod 0700 "${dir}"
