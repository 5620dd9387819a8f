#!/usr/bin/env bash
# Step fpga: readiness of FPGA nodes for DRAGEN. Checks the prerequisites (FPGA devices, DRAGEN,
# local NVMe /scratch with room), stages the reference data from S3 to /scratch, and writes the
# DRAGEN license from Secrets Manager or SSM Parameter Store to a root-only file. The license
# never reaches a log, the terminal or a command line.
set -euo pipefail
set +x  # never trace this step: it handles the license
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

scratch="${R}/scratch"
license_file="${R}/etc/hpctool/dragen-license"
dragen="${R}/opt/edico/bin/dragen"

if [[ ! "${HPCTOOL_INSTANCE_TYPE:-}" =~ ^f[0-9]+\. ]] && ! in_list "${HPCTOOL_QUEUE:-}" "${HPCTOOL_FPGA_QUEUES:-}"; then
  log "${HPCTOOL_INSTANCE_TYPE:-this instance} in queue '${HPCTOOL_QUEUE:-}' is not an FPGA node: nothing to do"
  exit 0
fi

# --- prerequisites: report every missing one at once ---
problems=()
fpga_devices=0
for device in "${R}"/sys/bus/pci/devices/*; do
  [[ -r "${device}/vendor" && -r "${device}/class" ]] || continue
  # Amazon's vendor id with PCI class "processing accelerator" (0x12): the FPGA slots, not the
  # NVMe (0x01) or ENA (0x02) devices that carry the same vendor id.
  if [[ "$(cat "${device}/vendor")" == 0x1d0f && "$(cat "${device}/class")" == 0x12* ]]; then
    fpga_devices=$((fpga_devices + 1))
  fi
done
((fpga_devices > 0)) || problems+=("no AWS FPGA device on the PCI bus (expected on f1/f2 instances)")
[[ -x "${dragen}" ]] || problems+=("DRAGEN is not installed (${dragen#"${R}"}); use the DRAGEN AMI for this queue")
if [[ ! -f "${scratch}/.hpctool-scratch" ]]; then
  problems+=("no local NVMe /scratch (the scratch step found no instance-store disks)")
else
  available="$(node_df_avail_gb "${scratch}")"
  if [[ ! "${available}" =~ ^[0-9]+$ ]] || ((available < HPCTOOL_FPGA_MIN_SCRATCH_GB)); then
    problems+=("/scratch has ${available:-unknown} GB free, less than --fpga-min-scratch-gb ${HPCTOOL_FPGA_MIN_SCRATCH_GB}")
  fi
fi
if ((${#problems[@]})); then
  for problem in "${problems[@]}"; do
    log "prerequisite missing: ${problem}" >&2
  done
  die "${#problems[@]} FPGA prerequisite(s) missing on ${HPCTOOL_INSTANCE_TYPE:-this node}" \
    "fix the queue's instance type or AMI, or remove this queue from --fpga-queues"
fi
log "prerequisites ok: ${fpga_devices} FPGA device(s), DRAGEN, /scratch with ${available} GB free"

# --- reference data ---
reference="${HPCTOOL_FPGA_REFERENCE:-}"
if [[ -z "${reference}" ]]; then
  log "no --fpga-reference given: no reference data staged"
else
  [[ "${reference}" == s3://* ]] || die "--fpga-reference '${reference}' is not an s3:// URI"
  target="${scratch}/dragen-reference/$(basename "${reference%/}")"
  if [[ -f "${target}/.hpctool-staged" && "$(cat "${target}/.hpctool-staged")" == "${reference}" ]]; then
    log "reference ${reference} already staged at ${target#"${R}"}"
  else
    log "staging reference ${reference} to ${target#"${R}"}"
    mkdir -p "${target}"
    node_aws s3 sync --only-show-errors "${reference%/}/" "${target}/" ||
      die "cannot copy ${reference} to ${target#"${R}"}" \
        "check the queue's Iam.S3Access for that bucket and the free space on /scratch"
    printf '%s\n' "${reference}" >"${target}/.hpctool-staged"
    log "reference staged: $(du -sh "${target}" | awk '{ print $1 }')"
  fi
fi

# --- license ---
license="${HPCTOOL_FPGA_LICENSE:-}"
if [[ -z "${license}" ]]; then
  log "no --fpga-license given: DRAGEN runs with the AMI's own (pay-as-you-go) licensing"
  exit 0
fi
case "${license}" in
  secretsmanager:?*)
    where="Secrets Manager secret ${license#secretsmanager:}"
    secret="$(node_aws secretsmanager get-secret-value --secret-id "${license#secretsmanager:}" \
      --query SecretString --output text 2>/dev/null)" ||
      die "cannot read the DRAGEN license from ${where}" \
        "grant the queue's instance role secretsmanager:GetSecretValue on it (Iam.AdditionalIamPolicies)"
    ;;
  ssm:?*)
    where="SSM parameter ${license#ssm:}"
    secret="$(node_aws ssm get-parameter --name "${license#ssm:}" --with-decryption \
      --query Parameter.Value --output text 2>/dev/null)" ||
      die "cannot read the DRAGEN license from ${where}" \
        "grant the queue's instance role ssm:GetParameter (and kms:Decrypt) on it"
    ;;
  *) die "--fpga-license '${license}' is neither secretsmanager:ID nor ssm:NAME" ;;
esac
[[ -n "${secret}" && "${secret}" != None ]] || die "the DRAGEN license in ${where} is empty"
mkdir -p "$(dirname "${license_file}")"
# printf is a builtin: the license is on no command line that ps could show.
result="$(printf '%s' "${secret}" | write_if_changed "${license_file}" 0600)"
log "DRAGEN license from ${where}: ${license_file#"${R}"} ${result} (${#secret} characters, root-only)"
unset secret
