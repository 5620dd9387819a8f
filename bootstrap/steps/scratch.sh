#!/usr/bin/env bash
# Step scratch. Compute nodes: the free instance-store NVMe disks as one XFS at /scratch (RAID0
# when there are several, a plain filesystem on one), skipped cleanly where there are none. A
# /scratch that ParallelCluster already mounted from the same disks is kept as it is. Rerun-safe:
# an array left without a filesystem (a crash between mdadm and mkfs) gets one, and an array or
# disk that already holds our XFS is mounted as it is. A boot-time unit (hpctool-scratch.service)
# runs this step again on every boot, before slurmd: a reboot mounts the disks again, and a
# stop/start, which wipes instance store, builds /scratch again on the new, empty disks.
# Head node: the Slurm prolog/epilog/task-prolog hooks (on the shared /opt/slurm/etc) that give
# each job a private /scratch/slurm-job-ID folder as TMPDIR and remove it after the job.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

mount_point="${R}/scratch"
md_device="${R}/dev/md/hpctool-scratch"
instance_store_model="Amazon EC2 NVMe Instance Storage"
label="scratch"
unit_name="hpctool-scratch.service"

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

# The instance-store NVMe disks of this instance (not EBS volumes, which show up as NVMe too).
instance_store_disks() {
  local block model
  for block in "${R}"/sys/block/nvme*n*; do
    [[ -e "${block}" ]] || continue
    model="$(tr -s ' ' <"${block}/device/model" 2>/dev/null || true)"
    model="${model%"${model##*[! ]}"}"
    [[ "${model}" != "${instance_store_model}" ]] || printf '%s\n' "${block}"
  done
}

# A single instance-store disk that already holds our XFS (label scratch): what a reboot leaves.
own_scratch_disk() {
  local block name
  while read -r block; do
    name="${block##*/}"
    if [[ "$(node_blkid_type "${R}/dev/${name}")" == xfs && "$(node_blkid_label "${R}/dev/${name}")" == "${label}" ]]; then
      printf '%s\n' "${R}/dev/${name}"
      return 0
    fi
  done < <(instance_store_disks)
}

# Instance-store disks that are members of an md array the boot did not assemble (yet).
raid_members() {
  local block name
  while read -r block; do
    name="${block##*/}"
    if [[ "$(node_blkid_type "${R}/dev/${name}")" == linux_raid_member ]]; then
      printf '%s\n' "${R}/dev/${name}"
    fi
  done < <(instance_store_disks)
}

# Instance-store NVMe disks nobody uses yet: no holders (RAID, LVM), no partitions, not
# mounted, and no filesystem or RAID signature.
free_instance_store_disks() {
  local block name
  while read -r block; do
    name="${block##*/}"
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
  done < <(instance_store_disks)
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

# The unit that runs this step at every boot, from the bundle this run came from.
install_boot_unit() {
  local result
  result="$(write_if_changed "${R}/etc/systemd/system/${unit_name}" 0644 <<UNIT
# hpctool: /scratch on instance-store NVMe at every boot, before slurmd. A reboot keeps the disks
# (mounted again); a stop/start gives new, empty ones (built again). Written by the bootstrap step scratch.
[Unit]
Description=hpctool /scratch on instance-store NVMe (RAID0 + XFS)
After=local-fs.target
Before=slurmd.service
ConditionPathExists=${HPCTOOL_BUNDLE#"${R}"}/bootstrap/steps/scratch.sh

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=HPCTOOL_NODE_TYPE=ComputeFleet HPCTOOL_STEP=scratch HPCTOOL_BUNDLE=${HPCTOOL_BUNDLE#"${R}"}
ExecStart=/bin/bash ${HPCTOOL_BUNDLE#"${R}"}/bootstrap/steps/scratch.sh

[Install]
WantedBy=multi-user.target
UNIT
)"
  log "${unit_name}: ${result}"
  if [[ "${result}" == changed ]]; then
    node_systemctl daemon-reload || die "systemctl daemon-reload failed"
    node_systemctl enable "${unit_name}" || die "systemctl enable ${unit_name} failed"
  fi
}

own_disk=""
if [[ ! -e "${md_device}" ]]; then
  # After a reboot udev usually assembles the array before this runs; if it has not, assemble
  # ours (by its name, so a foreign array on these disks is never taken for it).
  mapfile -t members < <(raid_members)
  if ((${#members[@]})); then
    log "array members ${members[*]#"${R}"} found, array not assembled: assembling ${md_device#"${R}"}"
    node_mdadm --assemble "${md_device}" --name=hpctool-scratch "${members[@]}" ||
      die "mdadm could not assemble ${md_device#"${R}"} from ${members[*]#"${R}"}" \
        "see 'mdadm --examine ${members[0]#"${R}"}'; if they belong to another array, stop it or wipe them by hand"
  else
    own_disk="$(own_scratch_disk)"
  fi
fi
if [[ -e "${md_device}" ]]; then
  device="${md_device}"
  case "$(node_blkid_type "${md_device}")" in
    xfs) log "array ${md_device#"${R}"} exists from an earlier run or boot; mounting it" ;;
    "")
      # mdadm finished, mkfs never ran (or did not finish): the array is ours and empty.
      log "array ${md_device#"${R}"} exists without a filesystem (a run stopped between mdadm and mkfs); making it"
      node_mkfs_xfs -L "${label}" "${md_device}" || die "mkfs.xfs failed on ${md_device#"${R}"}"
      ;;
    *) die "array ${md_device#"${R}"} holds a $(node_blkid_type "${md_device}") filesystem, not hpctool's XFS" \
      "look at it with 'blkid ${md_device#"${R}"}'; stop it with 'mdadm --stop' only if its data is not needed" ;;
  esac
elif [[ -n "${own_disk}" ]]; then
  device="${own_disk}"
  log "disk ${device#"${R}"} holds the XFS labelled ${label} from an earlier boot; mounting it"
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
  node_mkfs_xfs -L "${label}" "${device}" || die "mkfs.xfs failed on ${device#"${R}"}"
fi

mkdir -p "${mount_point}"
node_mount -o noatime "${device}" "${mount_point}" ||
  die "mounting ${device#"${R}"} at ${mount_point#"${R}"} failed" "see 'dmesg | tail' on the node"
mark_ready
log "${mount_point#"${R}"} mounted from ${device#"${R}"}"
install_boot_unit
