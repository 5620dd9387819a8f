#!/usr/bin/env bats
# Step scratch against a fake node root with fake NVMe disks.

load helpers

setup() {
  make_node ComputeFleet storage-dy-i4i4xl-1
  FAKE_INSTANCE_TYPE=i4i.4xlarge
}

@test "scratch: two instance-store disks become RAID0, XFS, mounted at /scratch" {
  add_nvme nvme0n1 "Amazon Elastic Block Store"
  add_nvme nvme1n1
  add_nvme nvme2n1
  run_step scratch
  [ "$status" -eq 0 ]
  [ "$(calls_of node_mdadm)" = "node_mdadm --create ${HPCTOOL_ROOT}/dev/md/hpctool-scratch --run --level=0 --name=hpctool-scratch --raid-devices=2 ${HPCTOOL_ROOT}/dev/nvme1n1 ${HPCTOOL_ROOT}/dev/nvme2n1" ]
  [ "$(calls_of node_mkfs_xfs)" = "node_mkfs_xfs -L scratch ${HPCTOOL_ROOT}/dev/md/hpctool-scratch" ]
  [ "$(calls_of node_mount)" = "node_mount -o noatime ${HPCTOOL_ROOT}/dev/md/hpctool-scratch ${HPCTOOL_ROOT}/scratch" ]
  [ "$(stat -c %a "${HPCTOOL_ROOT}/scratch")" = 1777 ]
  [ -f "${HPCTOOL_ROOT}/scratch/.hpctool-scratch" ]
}

@test "scratch: one disk gets a plain filesystem, no RAID" {
  add_nvme nvme1n1
  run_step scratch
  [ "$status" -eq 0 ]
  [ -z "$(calls_of node_mdadm)" ]
  [ "$(calls_of node_mkfs_xfs)" = "node_mkfs_xfs -L scratch ${HPCTOOL_ROOT}/dev/nvme1n1" ]
  [[ "$output" == *"one instance-store disk"* ]]
}

@test "scratch: a second run changes nothing and touches no disk" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  run_twice scratch
  [ ! -s "${FAKE_CALLS}" ]
  [[ "$output" == *"already mounted; keeping it"* ]]
}

@test "scratch: no instance store (only EBS) is skipped cleanly" {
  add_nvme nvme0n1 "Amazon Elastic Block Store"
  run_step scratch
  [ "$status" -eq 0 ]
  [[ "$output" == *"no free instance-store NVMe disks"* ]]
  [ ! -s "${FAKE_CALLS}" ]
  [ ! -e "${HPCTOOL_ROOT}/scratch" ]
}

@test "scratch: disks in use (LVM holder, signature, mounted) are left alone" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  add_nvme nvme3n1
  add_nvme nvme4n1
  : >"${HPCTOOL_ROOT}/sys/block/nvme1n1/holders/dm-0"
  mkdir -p "${HPCTOOL_ROOT}/fake-blkid"
  echo xfs >"${HPCTOOL_ROOT}/fake-blkid/nvme2n1"
  echo "/dev/nvme3n1 /data xfs rw 0 0" >>"${HPCTOOL_ROOT}/proc/mounts"
  run_step scratch
  [ "$status" -eq 0 ]
  [ -z "$(calls_of node_mdadm)" ]
  [ "$(calls_of node_mkfs_xfs)" = "node_mkfs_xfs -L scratch ${HPCTOOL_ROOT}/dev/nvme4n1" ]
  [[ "$output" == *"/dev/nvme1n1: in use"* ]]
  [[ "$output" == *"/dev/nvme2n1: has a filesystem or RAID signature"* ]]
  [[ "$output" == *"/dev/nvme3n1: mounted"* ]]
}

@test "scratch: a /scratch ParallelCluster already mounted is kept" {
  add_nvme nvme1n1
  mkdir -p "${HPCTOOL_ROOT}/scratch"
  echo "/dev/mapper/vg.01-lv_ephemeral ${HPCTOOL_ROOT}/scratch ext4 rw 0 0" >>"${HPCTOOL_ROOT}/proc/mounts"
  run_step scratch
  [ "$status" -eq 0 ]
  [ ! -s "${FAKE_CALLS}" ]
  [ -f "${HPCTOOL_ROOT}/scratch/.hpctool-scratch" ]
}

@test "scratch: an mdadm failure names the array and exits non-zero" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  FAKE_MDADM_FAIL=1 run_step scratch
  [ "$status" -ne 0 ]
  [[ "$output" == *"mdadm could not create /dev/md/hpctool-scratch"* ]]
  [[ "$output" == *"Device or resource busy"* ]]
  [ -z "$(calls_of node_mount)" ]
}

@test "scratch: the head node installs the per-job hooks into the shared Slurm scripts" {
  HPCTOOL_NODE_TYPE=HeadNode run_step scratch
  [ "$status" -eq 0 ]
  scripts="${HPCTOOL_ROOT}/opt/slurm/etc/scripts"
  [ "$(stat -c %a "${scripts}/prolog.d/80-hpctool-scratch")" = 755 ]
  [ "$(stat -c %a "${scripts}/epilog.d/80-hpctool-scratch")" = 755 ]
  [ -x "${scripts}/hpctool-task-prolog.sh" ]
  [ ! -s "${FAKE_CALLS}" ]
  before="$(tree_state)"
  HPCTOOL_NODE_TYPE=HeadNode run_step scratch
  [ "$(tree_state)" = "${before}" ]
}

@test "scratch hooks: prolog makes a private job folder, task prolog sets TMPDIR, epilog removes it" {
  scratch="${BATS_TEST_TMPDIR}/scratch"
  mkdir -p "${scratch}"
  lib="${BUNDLE}/bootstrap/lib"
  hook_env=(env HPCTOOL_SCRATCH_DIR="${scratch}" SLURM_JOB_ID=42 SLURM_JOB_UID="$(id -u)" SLURM_JOB_GID="$(id -g)")
  # no marker: the node has no hpctool scratch, nothing happens
  run "${hook_env[@]}" sh "${lib}/job-scratch-prolog.sh"
  [ "$status" -eq 0 ]
  [ ! -e "${scratch}/slurm-job-42" ]
  : >"${scratch}/.hpctool-scratch"
  run "${hook_env[@]}" sh "${lib}/job-scratch-prolog.sh"
  [ "$status" -eq 0 ]
  [ "$(stat -c %a "${scratch}/slurm-job-42")" = 700 ]
  run "${hook_env[@]}" sh "${lib}/job-scratch-task-prolog.sh"
  [ "$output" = "export TMPDIR=${scratch}/slurm-job-42" ]
  run "${hook_env[@]}" sh "${lib}/job-scratch-epilog.sh"
  [ "$status" -eq 0 ]
  [ ! -e "${scratch}/slurm-job-42" ]
  [ -f "${scratch}/.hpctool-scratch" ]
  # a job id that is not a number never reaches rm
  run env HPCTOOL_SCRATCH_DIR="${scratch}" SLURM_JOB_ID="../" sh "${lib}/job-scratch-epilog.sh"
  [ "$status" -eq 0 ]
  [ -d "${scratch}" ]
}

# reboot: the mounts are gone, the disks (and an assembled array) keep their data.
reboot_node() {
  : >"${HPCTOOL_ROOT}/proc/mounts"
  : >"${FAKE_CALLS}"
}

@test "scratch: an array left without a filesystem (crash between mdadm and mkfs) gets one on rerun" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  mkdir -p "${HPCTOOL_ROOT}/dev/md" "${HPCTOOL_ROOT}/fake-blkid"
  : >"${HPCTOOL_ROOT}/dev/md/hpctool-scratch"  # mdadm --create ran, then the node died
  echo linux_raid_member >"${HPCTOOL_ROOT}/fake-blkid/nvme1n1"
  echo linux_raid_member >"${HPCTOOL_ROOT}/fake-blkid/nvme2n1"
  run_step scratch
  [ "$status" -eq 0 ]
  [[ "$output" == *"exists without a filesystem"* ]]
  [ -z "$(calls_of node_mdadm)" ]
  [ "$(calls_of node_mkfs_xfs)" = "node_mkfs_xfs -L scratch ${HPCTOOL_ROOT}/dev/md/hpctool-scratch" ]
  [ "$(calls_of node_mount)" = "node_mount -o noatime ${HPCTOOL_ROOT}/dev/md/hpctool-scratch ${HPCTOOL_ROOT}/scratch" ]
}

@test "scratch: an array with someone else's filesystem is refused, not formatted" {
  add_nvme nvme1n1
  mkdir -p "${HPCTOOL_ROOT}/dev/md" "${HPCTOOL_ROOT}/fake-blkid"
  : >"${HPCTOOL_ROOT}/dev/md/hpctool-scratch"
  echo ext4 >"${HPCTOOL_ROOT}/fake-blkid/hpctool-scratch"
  run_step scratch
  [ "$status" -ne 0 ]
  [[ "$output" == *"holds a ext4 filesystem, not hpctool's XFS"* ]]
  [ -z "$(calls_of node_mkfs_xfs)" ]
  [ -z "$(calls_of node_mount)" ]
}

@test "scratch: after a reboot the array is mounted again as it is (no mdadm, no mkfs)" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  run_step scratch
  [ "$status" -eq 0 ]
  reboot_node
  run_step scratch
  [ "$status" -eq 0 ]
  [ -z "$(calls_of node_mdadm)" ]
  [ -z "$(calls_of node_mkfs_xfs)" ]
  [ "$(calls_of node_mount)" = "node_mount -o noatime ${HPCTOOL_ROOT}/dev/md/hpctool-scratch ${HPCTOOL_ROOT}/scratch" ]
}

@test "scratch: after a reboot a single disk's XFS (label scratch) is mounted again, not skipped" {
  add_nvme nvme1n1
  run_step scratch
  [ "$status" -eq 0 ]
  reboot_node
  run_step scratch
  [ "$status" -eq 0 ]
  [[ "$output" == *"holds the XFS labelled scratch from an earlier boot"* ]]
  [ -z "$(calls_of node_mkfs_xfs)" ]
  [ "$(calls_of node_mount)" = "node_mount -o noatime ${HPCTOOL_ROOT}/dev/nvme1n1 ${HPCTOOL_ROOT}/scratch" ]
}

@test "scratch: a boot unit runs the step before slurmd; after a stop/start it builds /scratch on the new disks" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  run_step scratch
  [ "$status" -eq 0 ]
  unit="${HPCTOOL_ROOT}/etc/systemd/system/hpctool-scratch.service"
  grep -qx "Before=slurmd.service" "${unit}"
  grep -qx "WantedBy=multi-user.target" "${unit}"
  [ "$(calls_of node_systemctl)" = "$(printf 'node_systemctl daemon-reload\nnode_systemctl enable hpctool-scratch.service')" ]
  # stop/start: new instance-store disks, empty; no array, no mounts.
  rm -rf "${HPCTOOL_ROOT}/dev/md" "${HPCTOOL_ROOT}/fake-blkid"
  reboot_node
  # what systemd runs at boot: the unit's own Environment and ExecStart
  read -r -a unit_env <<<"$(sed -n 's/^Environment=//p' "${unit}")"
  read -r -a exec_start <<<"$(sed -n 's/^ExecStart=//p' "${unit}")"
  run env "${unit_env[@]}" "${exec_start[@]}"
  [ "$status" -eq 0 ]
  [ "$(calls_of node_mdadm | wc -l)" -eq 1 ]
  [ "$(calls_of node_mkfs_xfs)" = "node_mkfs_xfs -L scratch ${HPCTOOL_ROOT}/dev/md/hpctool-scratch" ]
  is_mounted_at="$(awk '{ print $2 }' "${HPCTOOL_ROOT}/proc/mounts")"
  [ "${is_mounted_at}" = "${HPCTOOL_ROOT}/scratch" ]
  [ -z "$(calls_of node_systemctl)" ]  # the unit is already in place: nothing to reload
}

@test "scratch: after a reboot that did not assemble the array, the step assembles ours by name and mounts it" {
  add_nvme nvme1n1
  add_nvme nvme2n1
  run_step scratch
  [ "$status" -eq 0 ]
  reboot_node
  rm "${HPCTOOL_ROOT}/dev/md/hpctool-scratch"  # udev has not assembled it
  echo linux_raid_member >"${HPCTOOL_ROOT}/fake-blkid/nvme1n1"
  echo linux_raid_member >"${HPCTOOL_ROOT}/fake-blkid/nvme2n1"
  run_step scratch
  [ "$status" -eq 0 ]
  [ "$(calls_of node_mdadm)" = "node_mdadm --assemble ${HPCTOOL_ROOT}/dev/md/hpctool-scratch --name=hpctool-scratch ${HPCTOOL_ROOT}/dev/nvme1n1 ${HPCTOOL_ROOT}/dev/nvme2n1" ]
  [ -z "$(calls_of node_mkfs_xfs)" ]
  [ "$(calls_of node_mount)" = "node_mount -o noatime ${HPCTOOL_ROOT}/dev/md/hpctool-scratch ${HPCTOOL_ROOT}/scratch" ]
}
