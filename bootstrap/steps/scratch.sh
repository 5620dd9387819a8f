#!/usr/bin/env bash
# Step scratch. Compute nodes: the free instance-store NVMe disks as one XFS at /scratch (RAID0
# when there are several, a plain filesystem on one), skipped cleanly where there are none. A
# /scratch that ParallelCluster already mounted from the same disks is kept as it is.
# Head node: the Slurm prolog/epilog/task-prolog hooks (on the shared /opt/slurm/etc) that give
# each job a private /scratch/slurm-job-ID folder as TMPDIR and remove it after the job.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

mount_point="${R}/scratch"
md_device="${R}/dev/md/hpctool-scratch"
instance_store_model="Amazon EC2 NVMe Instance Storage"

install_job_hooks() {
  local scripts="${R}/opt/slurm/etc/scripts"
  if [[ ! -d "${scripts}/prolog.d" || ! -d "${scripts}/epilog.d" ]]; then
    log "no ${scripts#"${R}"}/prolog.d and epilog.d (ParallelCluster before 3.6?): per-job scratch hooks not installed"
    return 0
  fi
  log "prolog.d/80-hpctool-scratch: $(install_if_changed "${HPCTOOL_LIB}/job-scratch-prolog.sh" "${scripts}/prolog.d/80-hpctool-scratch" 0755)"
  log "epilog.d/80-hpctool-scratch: $(install_if_changed "${HPCTOOL_LIB}/job-scratch-epilog.sh" "${scripts}/epilog.d/80-hpctool-scratch" 0755)"
  log "hpctool-task-prolog.sh: $(install_if_changed "${HPCTOOL_LIB}/job-scratch-task-prolog.sh" "${scripts}/hpctool-task-prolog.sh" 0755)"
  log "TMPDIR per job needs 'TaskProlog: /opt/slurm/etc/scripts/hpctool-task-prolog.sh' in SlurmSettings.CustomSlurmSettings"
}

# Instance-store NVMe disks nobody uses yet: no holders (RAID, LVM), no partitions, not
# mounted, and no filesystem or RAID signature.
free_instance_store_disks() {
  local block name model
  for block in "${R}"/sys/block/nvme*n*; do
    [[ -e "${block}" ]] || continue
    name="${block##*/}"
    model="$(tr -s ' ' <"${block}/device/model" 2>/dev/null || true)"
    model="${model%"${model##*[! ]}"}"
    [[ "${model}" == "${instance_store_model}" ]] || continue
    if compgen -G "${block}/holders/*" >/dev/null || compgen -G "${block}/${name}p*" >/dev/null; then
      log "disk /dev/${name}: in use (holders or partitions), left alone" >&2
      continue
    fi
    if awk -v d="/dev/${name}" '$1 == d { found = 1 } END { exit !found }' "${R}/proc/mounts" 2>/dev/null; then
      log "disk /dev/${name}: mounted, left alone" >&2
      continue
    fi
    if [[ -n "$(node_blkid_type "${R}/dev/${name}")" ]]; then
      log "disk /dev/${name}: has a filesystem or RAID signature, left alone" >&2
      continue
    fi
    printf '%s\n' "${R}/dev/${name}"
  done
}

mark_ready() {
  chmod 1777 "${mount_point}"
  if [[ ! -f "${mount_point}/.hpctool-scratch" ]]; then
    printf 'hpctool scratch\n' >"${mount_point}/.hpctool-scratch"
  fi
}

if [[ "${HPCTOOL_NODE_TYPE:?}" == HeadNode ]]; then
  install_job_hooks
  exit 0
fi

if is_mounted "${mount_point}"; then
  log "${mount_point#"${R}"} is already mounted; keeping it"
  mark_ready
  exit 0
fi

if [[ -e "${md_device}" ]]; then
  device="${md_device}"
  log "array ${md_device#"${R}"} exists from an earlier run; mounting it"
else
  mapfile -t disks < <(free_instance_store_disks)
  case ${#disks[@]} in
    0)
      log "no free instance-store NVMe disks on this ${HPCTOOL_INSTANCE_TYPE:-instance}; /scratch skipped"
      exit 0
      ;;
    1)
      device="${disks[0]}"
      log "one instance-store disk (${device#"${R}"}): a plain XFS filesystem"
      ;;
    *)
      device="${md_device}"
      log "${#disks[@]} instance-store disks (${disks[*]#"${R}"}): RAID0 ${md_device#"${R}"}"
      node_mdadm --create "${md_device}" --run --level=0 --name=hpctool-scratch \
        --raid-devices="${#disks[@]}" "${disks[@]}" || die "mdadm could not create ${md_device#"${R}"}" \
        "see mdadm's message above; 'cat /proc/mdstat' shows existing arrays"
      ;;
  esac
  node_mkfs_xfs -L scratch "${device}" || die "mkfs.xfs failed on ${device#"${R}"}"
fi

mkdir -p "${mount_point}"
node_mount -o noatime "${device}" "${mount_point}" ||
  die "mounting ${device#"${R}"} at ${mount_point#"${R}"} failed" "see 'dmesg | tail' on the node"
mark_ready
log "${mount_point#"${R}"} mounted from ${device#"${R}"}"
