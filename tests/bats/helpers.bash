# shellcheck shell=bash
# Shared setup of the bootstrap bats tests: a fake node root (a temporary folder standing in for
# /) with ParallelCluster's node files, a bundle copied from the repo, and fake-node.sh in place
# of the commands that need root, devices, the network or AWS.

REPO="$(cd "${BATS_TEST_DIRNAME}/../.." && pwd)"

# make_node TYPE [SLURM_NODE_NAME]: a fresh node root and bundle for one test.
make_node() {
  local type="$1" node_name="${2:-}"
  export HPCTOOL_ROOT="${BATS_TEST_TMPDIR}/root"
  export BUNDLE="${BATS_TEST_TMPDIR}/bundle"
  export HPCTOOL_TEST_WRAPPERS="${BATS_TEST_DIRNAME}/fake-node.sh"
  export FAKE_CALLS="${BATS_TEST_TMPDIR}/calls.log"
  export FAKE_S3="${BATS_TEST_TMPDIR}/s3"
  export FAKE_INSTANCE_TYPE="${FAKE_INSTANCE_TYPE:-c7i.4xlarge}"
  export FAKE_LIFECYCLE="${FAKE_LIFECYCLE:-on-demand}"
  local root="${HPCTOOL_ROOT}"
  mkdir -p "${root}/etc/parallelcluster/slurm_plugin" "${root}/proc" "${root}/dev" "${root}/sys/block" \
    "${root}/opt/slurm/etc/scripts/prolog.d" "${root}/opt/slurm/etc/scripts/epilog.d" "${FAKE_S3}"
  : >"${root}/proc/mounts"
  : >"${FAKE_CALLS}"
  cat >"${root}/etc/parallelcluster/cfnconfig" <<CFN
stack_name=hpctool-test
cfn_region=eu-west-1
cfn_scheduler=slurm
cfn_ephemeral_dir=/scratch
cfn_shared_dir=/shared
cfn_postinstall_args=(--apps /shared/apps)
cfn_node_type=${type}
cfn_cluster_user=ec2-user
CFN
  if [[ -n "${node_name}" ]]; then
    printf '%s\n' "${node_name}" >"${root}/etc/parallelcluster/slurm_plugin/slurm_nodename"
  fi
  mkdir -p "${BUNDLE}/envs"
  cp -r "${REPO}/bootstrap" "${BUNDLE}/bootstrap"
  cp "${BATS_TEST_DIRNAME}"/fixtures/envs/* "${BUNDLE}/envs/"
  # Stand-ins for the spot engineer's files, when the repo does not have them yet.
  if [[ ! -f "${BUNDLE}/bootstrap/spot-interruption-handler" ]]; then
    printf '#!/usr/bin/env python3\nprint("stand-in spot handler")\n' >"${BUNDLE}/bootstrap/spot-interruption-handler"
  fi
  if [[ ! -f "${BUNDLE}/bootstrap/systemd/hpctool-spot-handler.service" ]]; then
    mkdir -p "${BUNDLE}/bootstrap/systemd"
    printf '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/opt/hpctool/bin/spot-interruption-handler\n' \
      >"${BUNDLE}/bootstrap/systemd/hpctool-spot-handler.service"
  fi
}

# add_nvme NAME [MODEL]: a fake NVMe disk in /sys/block and /dev.
add_nvme() {
  local name="$1" model="${2:-Amazon EC2 NVMe Instance Storage}"
  mkdir -p "${HPCTOOL_ROOT}/sys/block/${name}/device" "${HPCTOOL_ROOT}/sys/block/${name}/holders"
  printf '%-40s\n' "${model}" >"${HPCTOOL_ROOT}/sys/block/${name}/device/model"
  : >"${HPCTOOL_ROOT}/dev/${name}"
}

# add_fpga: an AWS FPGA slot on the fake PCI bus (next to an ENA device with the same vendor).
add_fpga() {
  local bus="${HPCTOOL_ROOT}/sys/bus/pci/devices"
  mkdir -p "${bus}/0000:00:1d.0" "${bus}/0000:00:05.0"
  printf '0x1d0f\n' >"${bus}/0000:00:1d.0/vendor"
  printf '0x120000\n' >"${bus}/0000:00:1d.0/class"
  printf '0x1d0f\n' >"${bus}/0000:00:05.0/vendor"
  printf '0x020000\n' >"${bus}/0000:00:05.0/class"
}

# run_step STEP: one step, as the entry script runs it, with its output in $output.
run_step() {
  local step="$1"
  export HPCTOOL_BUNDLE="${BUNDLE}" HPCTOOL_APPS="${HPCTOOL_APPS:-/shared/apps}"
  export HPCTOOL_NODE_TYPE="${HPCTOOL_NODE_TYPE:-ComputeFleet}" HPCTOOL_QUEUE="${HPCTOOL_QUEUE:-compute}"
  export HPCTOOL_INSTANCE_TYPE="${FAKE_INSTANCE_TYPE}" HPCTOOL_LIFECYCLE="${FAKE_LIFECYCLE}"
  export HPCTOOL_MINIFORGE_VERSION="${HPCTOOL_MINIFORGE_VERSION:-25.3.0-3}"
  export HPCTOOL_FPGA_QUEUES="${HPCTOOL_FPGA_QUEUES:-fpga}" HPCTOOL_FPGA_MIN_SCRATCH_GB="${HPCTOOL_FPGA_MIN_SCRATCH_GB:-100}"
  run env HPCTOOL_STEP="${step}" bash "${BUNDLE}/bootstrap/steps/${step}.sh"
}

# tree_state: every file under the node root with its content hash and mode, logs excluded, so
# two runs can be compared.
tree_state() {
  (cd "${HPCTOOL_ROOT}" && find . -path ./var/log -prune -o -path ./run -prune -o -type f -print0 |
    sort -z | xargs -0 -r stat -c '%n %a' && find . -path ./var/log -prune -o -path ./run -prune -o -type f -print0 |
    sort -z | xargs -0 -r sha256sum)
}

# calls_of NAME: the fake commands called, one per line ("node_mdadm --create ...").
calls_of() {
  grep -E "^$1( |$)" "${FAKE_CALLS}" || true
}

# run_twice STEP: runs the step, then again; fails unless both succeed and the second run
# changes no file. $FAKE_CALLS then holds the second run's calls only, and $output its output.
# shellcheck disable=SC2154  # status and output are set by bats' run
run_twice() {
  run_step "$1"
  [ "$status" -eq 0 ] || { echo "first run failed: $output"; return 1; }
  local before
  before="$(tree_state)"
  : >"${FAKE_CALLS}"
  run_step "$1"
  [ "$status" -eq 0 ] || { echo "second run failed: $output"; return 1; }
  [ "$(tree_state)" = "${before}" ] || { echo "the second run changed files"; return 1; }
}

# upload_to_fake_s3 BUCKET PREFIX: what `hpctool bootstrap upload` puts in S3, made by its own code
# (bundle, digest, manifest.json) from $BUNDLE, under $FAKE_S3/BUCKET/PREFIX/<digest>/. Prints the digest.
upload_to_fake_s3() {
  local bucket="$1" prefix="$2"
  "${REPO}/.venv/bin/python" - "${BUNDLE}" "${FAKE_S3}/${bucket}/${prefix}" <<'PY'
import sys
from pathlib import Path
from hpctool.bootstrap_upload import bundle_digest, collect_bundle, manifest_of

bundle, target = Path(sys.argv[1]), Path(sys.argv[2])
files = collect_bundle(bundle)
digest = bundle_digest(files)
for item in files:
    (target / digest / item.path).parent.mkdir(parents=True, exist_ok=True)
    (target / digest / item.path).write_bytes(item.data)
(target / digest / "manifest.json").write_bytes(manifest_of(files, digest))
print(digest)
PY
}
