#!/usr/bin/env bats
# The entry script on-node-configured.sh: node detection, which steps run where, the logs, the
# failure message ParallelCluster shows, and fetching the bundle from S3.

load helpers

bootstrap() {
  run bash "${BUNDLE}/bootstrap/on-node-configured.sh" "$@"
}

steps_run() {  # the steps that started, in order, from the main log
  sed -n -E 's/.*\[bootstrap\] step ([a-z]+): started.*/\1/p' "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log" | paste -sd' '
}

@test "entry: the head node runs lmod, conda, scratch, head; one timestamped line per step and a final line" {
  make_node HeadNode
  bootstrap
  [ "$status" -eq 0 ]
  [ "$(steps_run)" = "lmod conda scratch head" ]
  log="${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
  [ "$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \[bootstrap\] step [a-z]+: ok in [0-9]+ s$' "${log}")" -eq 4 ]
  tail -n 1 "${log}" | grep -qE '\[bootstrap\] finished: ok, HeadNode, steps lmod conda scratch head in [0-9]+ s$'
  grep -q "environment aligners/1.0: created" "${HPCTOOL_ROOT}/var/log/hpctool/conda.log"
}

@test "entry: a login node runs lmod and conda only" {
  make_node LoginNode
  bootstrap
  [ "$status" -eq 0 ]
  [ "$(steps_run)" = "lmod conda" ]
}

@test "entry: a compute node finds its queue from the Slurm node name and runs the compute steps" {
  FAKE_LIFECYCLE=spot make_node ComputeFleet spot-dy-mixed16-3
  add_nvme nvme1n1
  bootstrap
  [ "$status" -eq 0 ]
  [ "$(steps_run)" = "lmod conda scratch spot fpga" ]
  grep -q "node ComputeFleet spot-dy-mixed16-3 (queue spot, c7i.4xlarge, spot)" "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
  [ -x "${HPCTOOL_ROOT}/opt/hpctool/bin/spot-interruption-handler" ]
  grep -q "not an FPGA node" "${HPCTOOL_ROOT}/var/log/hpctool/fpga.log"
}

@test "entry: queue names with dashes and static nodes are parsed" {
  make_node ComputeFleet gpu-big-st-p5-48xl-12
  bootstrap --only lmod
  [ "$status" -eq 0 ]
  grep -q "(queue gpu-big," "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
}

@test "entry: a second run changes nothing on the node" {
  FAKE_LIFECYCLE=spot make_node ComputeFleet spot-dy-mixed16-3
  add_nvme nvme1n1
  add_nvme nvme2n1
  bootstrap
  [ "$status" -eq 0 ]
  before="$(tree_state)"
  bootstrap
  [ "$status" -eq 0 ]
  [ "$(tree_state)" = "${before}" ]
}

@test "entry: a failing step names itself, its log and the rerun command, and exits non-zero" {
  make_node HeadNode
  FAKE_BAD_CHECKSUM=1 bootstrap --apps /shared/apps
  [ "$status" -ne 0 ]
  [[ "$output" == *"step conda failed (exit 1); its log is /var/log/hpctool/conda.log"* ]]
  [[ "$output" == *"Miniforge installer checksum mismatch"* ]]
  [[ "$output" == *"rerun it: sudo ${BUNDLE#"${HPCTOOL_ROOT}"}/bootstrap/on-node-configured.sh --only conda --apps /shared/apps"* ]]
  [[ "$output" == *"hpctool bootstrap FAILED: step conda (exit 1); see /var/log/hpctool/conda.log"* ]]
  [ "$(steps_run)" = "lmod conda" ]
  tail -n 1 "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log" | grep -q "FAILED: step conda"
}

@test "entry: --only reruns one step; --skip leaves one out" {
  make_node HeadNode
  bootstrap --only lmod
  [ "$status" -eq 0 ]
  [ "$(steps_run)" = "lmod" ]
  bootstrap --skip conda,head
  [ "$status" -eq 0 ]
  [ "$(steps_run)" = "lmod lmod scratch" ]
}

@test "entry: bad arguments and missing node files fail with a clear message" {
  make_node HeadNode
  bootstrap --frobnicate
  [ "$status" -ne 0 ]
  [[ "$output" == *"unknown argument '--frobnicate'"* ]]
  bootstrap --only spaceship
  [ "$status" -ne 0 ]
  [[ "$output" == *"unknown step 'spaceship'"* ]]
  bootstrap --apps
  [ "$status" -ne 0 ]
  [[ "$output" == *"option --apps needs a value"* ]]
  rm "${HPCTOOL_ROOT}/etc/parallelcluster/cfnconfig"
  bootstrap
  [ "$status" -ne 0 ]
  [[ "$output" == *"cfnconfig has no cfn_node_type"* ]]
}

@test "entry: a compute node without its Slurm node name fails before any step" {
  make_node ComputeFleet
  bootstrap
  [ "$status" -ne 0 ]
  [[ "$output" == *"slurm_nodename is missing, so the queue is unknown"* ]]
  [ -z "$(steps_run)" ]
}

@test "entry: without IMDS the bootstrap fails and says so" {
  make_node HeadNode
  FAKE_IMDS_DOWN=1 bootstrap
  [ "$status" -ne 0 ]
  [[ "$output" == *"instance metadata service (IMDSv2)"* ]]
}

@test "entry: run alone as ParallelCluster does, it fetches the bundle from the S3 prefix of its own URL" {
  make_node HeadNode
  digest="$(upload_to_fake_s3 bucket hpctool)"
  lonely="${BATS_TEST_TMPDIR}/tmp.XYZ"
  cp "${BUNDLE}/bootstrap/on-node-configured.sh" "${lonely}"
  # Before the bundle is here, the entry calls the aws CLI itself: a stand-in on PATH.
  mkdir -p "${BATS_TEST_TMPDIR}/bin"
  printf '#!/usr/bin/env bash\n. "%s"\nnode_aws "$@"\n' "${HPCTOOL_TEST_WRAPPERS}" >"${BATS_TEST_TMPDIR}/bin/aws"
  chmod +x "${BATS_TEST_TMPDIR}/bin/aws"
  PATH="${BATS_TEST_TMPDIR}/bin:${PATH}" \
    cfn_postinstall="s3://bucket/hpctool/${digest}/bootstrap/on-node-configured.sh" run bash "${lonely}" --only lmod
  [ "$status" -eq 0 ]
  grep -qx "node_aws s3 sync --only-show-errors --delete s3://bucket/hpctool/${digest}/ ${HPCTOOL_ROOT}/opt/hpctool/bundle/" "${FAKE_CALLS}"
  grep -qE "\[bootstrap\] bundle ${digest}: [0-9]+ files match manifest.json$" "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
  [ -f "${HPCTOOL_ROOT}/opt/hpctool/bundle/envs/aligners.yaml" ]
  [ "$(steps_run)" = "lmod" ]
}

@test "entry: an unreadable S3 bundle fails with the IAM hint" {
  make_node HeadNode
  cp "${BUNDLE}/bootstrap/on-node-configured.sh" "${BATS_TEST_TMPDIR}/lonely.sh"
  mkdir -p "${BATS_TEST_TMPDIR}/bin"
  printf '#!/bin/sh\necho "fatal error: An error occurred (AccessDenied)" >&2\nexit 1\n' >"${BATS_TEST_TMPDIR}/bin/aws"
  chmod +x "${BATS_TEST_TMPDIR}/bin/aws"
  PATH="${BATS_TEST_TMPDIR}/bin:${PATH}" run bash "${BATS_TEST_TMPDIR}/lonely.sh" --source s3://bucket/nope
  [ "$status" -ne 0 ]
  [[ "$output" == *"cannot fetch the bundle from s3://bucket/nope"* ]]
  [[ "$output" == *"Iam.S3Access"* ]]
  grep -q "AccessDenied" "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
}

@test "entry: --bucket must be the bundle's bucket" {
  make_node HeadNode
  bootstrap --source s3://other-bucket/hpctool/0123456789ab --bucket hpctool-dev-artifacts
  [ "$status" -ne 0 ]
  [[ "$output" == *"is not in --bucket hpctool-dev-artifacts"* ]]
}

# run_from_s3 URI_PREFIX: the entry script alone, as ParallelCluster runs it, fetching from $FAKE_S3.
run_from_s3() {
  cp "${BUNDLE}/bootstrap/on-node-configured.sh" "${BATS_TEST_TMPDIR}/lonely.sh"
  mkdir -p "${BATS_TEST_TMPDIR}/bin"
  printf '#!/usr/bin/env bash\n. "%s"\nnode_aws "$@"\n' "${HPCTOOL_TEST_WRAPPERS}" >"${BATS_TEST_TMPDIR}/bin/aws"
  chmod +x "${BATS_TEST_TMPDIR}/bin/aws"
  PATH="${BATS_TEST_TMPDIR}/bin:${PATH}" run bash "${BATS_TEST_TMPDIR}/lonely.sh" --source "$1" --only lmod
}

@test "entry: a bundle file changed in S3 after the upload stops the bootstrap and names the file" {
  make_node HeadNode
  digest="$(upload_to_fake_s3 bucket hpctool)"
  printf 'echo injected\n' >>"${FAKE_S3}/bucket/hpctool/${digest}/bootstrap/steps/lmod.sh"
  run_from_s3 "s3://bucket/hpctool/${digest}"
  [ "$status" -ne 0 ]
  [[ "$output" == *"files differ from the uploaded bundle ${digest}: bootstrap/steps/lmod.sh"* ]]
  [ -z "$(steps_run)" ]
  [ -z "$(calls_of node_pkg_install)" ]
}

@test "entry: a file missing from, or added to, the synced bundle is named" {
  make_node HeadNode
  digest="$(upload_to_fake_s3 bucket hpctool)"
  rm "${FAKE_S3}/bucket/hpctool/${digest}/envs/aligners.yaml"
  run_from_s3 "s3://bucket/hpctool/${digest}"
  [ "$status" -ne 0 ]
  [[ "$output" == *"files differ from the uploaded bundle ${digest}: envs/aligners.yaml (missing)"* ]]
  make_node HeadNode
  digest="$(upload_to_fake_s3 bucket hpctool)"
  printf '#!/bin/sh\n' >"${FAKE_S3}/bucket/hpctool/${digest}/bootstrap/steps/extra.sh"
  run_from_s3 "s3://bucket/hpctool/${digest}"
  [ "$status" -ne 0 ]
  [[ "$output" == *"files not in the uploaded bundle ${digest}: bootstrap/steps/extra.sh"* ]]
}

@test "entry: an S3 bundle without manifest.json, or under another bundle's prefix, is refused" {
  make_node HeadNode
  digest="$(upload_to_fake_s3 bucket hpctool)"
  mv "${FAKE_S3}/bucket/hpctool/${digest}" "${FAKE_S3}/bucket/hpctool/0123456789ab"
  run_from_s3 "s3://bucket/hpctool/0123456789ab"
  [ "$status" -ne 0 ]
  [[ "$output" == *"the prefix names bundle 0123456789ab, its manifest is of bundle ${digest}"* ]]
  rm "${FAKE_S3}/bucket/hpctool/0123456789ab/manifest.json"
  run_from_s3 "s3://bucket/hpctool/0123456789ab"
  [ "$status" -ne 0 ]
  [[ "$output" == *"has no manifest.json, so the bundle cannot be checked"* ]]
  [ -z "$(steps_run)" ]
}
