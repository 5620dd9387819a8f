#!/usr/bin/env bats
# Step fpga against a fake node root: prerequisites, reference staging, and a license that never
# reaches a log.

load helpers

SECRET="dragen-LICENSE-s3cr3t-7f1c2a"

setup() {
  make_node ComputeFleet fpga-dy-f26xl-1
  FAKE_INSTANCE_TYPE=f2.6xlarge
  export HPCTOOL_QUEUE=fpga
}

ready_fpga_node() {
  add_fpga
  mkdir -p "${HPCTOOL_ROOT}/opt/edico/bin" "${HPCTOOL_ROOT}/scratch"
  printf '#!/bin/sh\n' >"${HPCTOOL_ROOT}/opt/edico/bin/dragen"
  chmod +x "${HPCTOOL_ROOT}/opt/edico/bin/dragen"
  : >"${HPCTOOL_ROOT}/scratch/.hpctool-scratch"
  mkdir -p "${FAKE_S3}/refs/hg38-v4"
  echo "hash table" >"${FAKE_S3}/refs/hg38-v4/hash_table.cfg"
}

@test "fpga: a node that is not an FPGA node gets nothing" {
  FAKE_INSTANCE_TYPE=c7i.4xlarge HPCTOOL_QUEUE=compute run_step fpga
  [ "$status" -eq 0 ]
  [[ "$output" == *"is not an FPGA node"* ]]
}

@test "fpga: every missing prerequisite is named at once" {
  run_step fpga
  [ "$status" -ne 0 ]
  [[ "$output" == *"no AWS FPGA device on the PCI bus"* ]]
  [[ "$output" == *"DRAGEN is not installed (/opt/edico/bin/dragen)"* ]]
  [[ "$output" == *"no local NVMe /scratch"* ]]
  [[ "$output" == *"3 FPGA prerequisite(s) missing on f2.6xlarge"* ]]
}

@test "fpga: too little room on /scratch is a failed prerequisite" {
  ready_fpga_node
  FAKE_DF_GB=40 run_step fpga
  [ "$status" -ne 0 ]
  [[ "$output" == *"/scratch has 40 GB free, less than --fpga-min-scratch-gb 100"* ]]
}

@test "fpga: stages the reference and writes the license root-only, never logging it" {
  ready_fpga_node
  export HPCTOOL_FPGA_REFERENCE=s3://refs/hg38-v4/ HPCTOOL_FPGA_LICENSE=secretsmanager:hpctool/dragen FAKE_SECRET="${SECRET}"
  # through the entry script, so its own log and ParallelCluster's view (stdout/stderr) are checked too
  run bash "${BUNDLE}/bootstrap/on-node-configured.sh" --only scratch,fpga \
    --fpga-reference s3://refs/hg38-v4/ --fpga-license secretsmanager:hpctool/dragen
  [ "$status" -eq 0 ]
  [ "$(cat "${HPCTOOL_ROOT}/scratch/dragen-reference/hg38-v4/hash_table.cfg")" = "hash table" ]
  [ "$(cat "${HPCTOOL_ROOT}/etc/hpctool/dragen-license")" = "${SECRET}" ]
  [ "$(stat -c %a "${HPCTOOL_ROOT}/etc/hpctool/dragen-license")" = 600 ]
  calls_of node_aws | grep -q "secretsmanager get-secret-value --secret-id hpctool/dragen"
  [[ "$output" != *"${SECRET}"* ]]
  run grep -rlF "${SECRET}" "${HPCTOOL_ROOT}/var/log"
  [ "$status" -eq 1 ]
  grep -q "DRAGEN license from Secrets Manager secret hpctool/dragen: /etc/hpctool/dragen-license changed" \
    "${HPCTOOL_ROOT}/var/log/hpctool/fpga.log"
  grep -q "step fpga: ok" "${HPCTOOL_ROOT}/var/log/hpctool/bootstrap.log"
}

@test "fpga: the license can come from SSM Parameter Store; a second run changes nothing" {
  ready_fpga_node
  export HPCTOOL_FPGA_REFERENCE=s3://refs/hg38-v4 HPCTOOL_FPGA_LICENSE=ssm:/hpctool/dragen-license FAKE_SECRET="${SECRET}"
  run_twice fpga
  [[ "$output" != *"${SECRET}"* ]]
  calls_of node_aws | grep -q "ssm get-parameter --name /hpctool/dragen-license --with-decryption"
  [ -z "$(calls_of 'node_aws s3')" ]
  [[ "$output" == *"already staged"* ]]
  [[ "$output" == *"dragen-license same"* ]]
}

@test "fpga: a license that cannot be read fails with the IAM hint, and nothing is written" {
  ready_fpga_node
  HPCTOOL_FPGA_LICENSE=secretsmanager:hpctool/dragen run_step fpga
  [ "$status" -ne 0 ]
  [[ "$output" == *"cannot read the DRAGEN license from Secrets Manager secret hpctool/dragen"* ]]
  [[ "$output" == *"secretsmanager:GetSecretValue"* ]]
  [ ! -e "${HPCTOOL_ROOT}/etc/hpctool/dragen-license" ]
}

@test "fpga: a queue listed in --fpga-queues is checked whatever its instance type" {
  FAKE_INSTANCE_TYPE=c7i.4xlarge HPCTOOL_FPGA_QUEUES=compute,fpga run_step fpga
  [ "$status" -ne 0 ]
  [[ "$output" == *"prerequisite(s) missing on c7i.4xlarge"* ]]
}
