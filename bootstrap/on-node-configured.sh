#!/usr/bin/env bash
# hpctool node bootstrap: ParallelCluster runs this as CustomActions.OnNodeConfigured on the head,
# login and compute nodes. It fetches the rest of the bundle (bootstrap/ and envs/) from the same
# S3 prefix, finds what kind of node this is, and runs the steps that apply, each with its own log.
#
#   on-node-configured.sh [--source s3://BUCKET/PREFIX/HASH | DIR] [--only STEP,...] [--skip STEP,...]
#                         [--apps DIR] [--miniforge-version V] [--fpga-queues Q,...]
#                         [--fpga-reference s3://...] [--fpga-license secretsmanager:ID | ssm:NAME]
#                         [--fpga-min-scratch-gb N] [--node-type HeadNode|LoginNode|ComputeFleet]
#                         [--envs all|NAME,...] [--bucket BUCKET]
#
# Logs: /var/log/hpctool/bootstrap.log (one timestamped line per step and one final line) and
# /var/log/hpctool/<step>.log (each step's own output). On failure it exits non-zero and prints the
# failing step, its log and how to rerun it on stderr, which ParallelCluster shows in its failure.
set -euo pipefail

readonly ALL_STEPS="lmod conda scratch spot fpga head"
R="${HPCTOOL_ROOT:-}"
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_DIR="${R}/var/log/hpctool"
MAIN_LOG="${LOG_DIR}/bootstrap.log"
ORIGINAL_ARGS=("$@")
SETTING_ARGS=()  # the options that are settings (not --source/--only/--skip), for the rerun hint

# Until the bundle (and its lib/common.sh) is here, this script logs with its own small function.
say() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) [bootstrap] $*"
  printf '%s\n' "${line}" >>"${MAIN_LOG}"
  printf '%s\n' "${line}"
}

fail() {  # MESSAGE [HINT]: the final line, also on stderr for ParallelCluster's failure message
  say "FAILED: $1"
  printf 'hpctool bootstrap FAILED: %s\n' "$1" >&2
  if [[ -n "${2:-}" ]]; then
    printf 'hint: %s\n' "$2" >&2
    say "hint: $2"
  fi
  exit 1
}

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

source_uri=""
only=""
skip=""
node_type_override=""
export HPCTOOL_APPS="/shared/apps"
export HPCTOOL_MINIFORGE_VERSION="25.3.0-3"
export HPCTOOL_FPGA_QUEUES="fpga"
export HPCTOOL_FPGA_REFERENCE=""
export HPCTOOL_FPGA_LICENSE=""
export HPCTOOL_FPGA_MIN_SCRATCH_GB="100"
export HPCTOOL_ENVS="all"
bucket=""

mkdir -p "${LOG_DIR}"
chmod 0755 "${LOG_DIR}"
touch "${MAIN_LOG}"
chmod 0640 "${MAIN_LOG}"

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --source | --only | --skip | --apps | --miniforge-version | --fpga-queues | --fpga-reference | \
      --fpga-license | --fpga-min-scratch-gb | --node-type | --envs | --bucket)
      (($# >= 2)) || fail "option $1 needs a value" "see --help"
      case "$1" in
        --source) source_uri="$2" ;;
        --only) only="$2" ;;
        --skip) skip="$2" ;;
        --apps) HPCTOOL_APPS="$2" ;;
        --miniforge-version) HPCTOOL_MINIFORGE_VERSION="$2" ;;
        --fpga-queues) HPCTOOL_FPGA_QUEUES="$2" ;;
        --fpga-reference) HPCTOOL_FPGA_REFERENCE="$2" ;;
        --fpga-license) HPCTOOL_FPGA_LICENSE="$2" ;;
        --fpga-min-scratch-gb) HPCTOOL_FPGA_MIN_SCRATCH_GB="$2" ;;
        --node-type) node_type_override="$2" ;;
        --envs) HPCTOOL_ENVS="$2" ;;
        --bucket) bucket="$2" ;;
      esac
      case "$1" in
        --source | --only | --skip) ;;
        *) SETTING_ARGS+=("$1" "$2") ;;
      esac
      shift 2
      ;;
    *) fail "unknown argument '$1'" "check CustomActions.OnNodeConfigured.Args in the cluster config; see --help" ;;
  esac
done

for step in ${only//,/ } ${skip//,/ }; do
  [[ " ${ALL_STEPS} " == *" ${step} "* ]] || fail "unknown step '${step}'" "steps are: ${ALL_STEPS}"
done
[[ "${HPCTOOL_FPGA_MIN_SCRATCH_GB}" =~ ^[0-9]+$ ]] ||
  fail "--fpga-min-scratch-gb '${HPCTOOL_FPGA_MIN_SCRATCH_GB}' is not a whole number of GB"

# One bootstrap at a time on a node: an admin's rerun waits for ParallelCluster's run to end.
mkdir -p "${R}/run"
exec 9>"${R}/run/hpctool-bootstrap.lock"
flock -w 3600 9 || fail "another bootstrap still holds ${R}/run/hpctool-bootstrap.lock after an hour"

# Reading cfnconfig as key=value lines rather than sourcing it: it is a bash fragment with arrays,
# and sourcing it under `set -u` would also import every variable it happens to define.
cfn_value() {
  local file="${R}/etc/parallelcluster/cfnconfig"
  [[ -r "${file}" ]] || return 0
  sed -n "s/^$1=//p" "${file}" | tail -n 1 | tr -d '"'"'"
}

say "starting on $(hostname) (args: ${ORIGINAL_ARGS[*]:-none})"

# --- the bundle: bootstrap/ and envs/ ---------------------------------------------------------
if [[ -z "${source_uri}" && -f "${SELF_DIR}/lib/common.sh" ]]; then
  source_uri="$(dirname "${SELF_DIR}")"
fi
if [[ -z "${source_uri}" && -n "${cfn_postinstall:-}" ]]; then
  # ParallelCluster exports the OnNodeConfigured script's URL as cfn_postinstall.
  source_uri="${cfn_postinstall%/bootstrap/on-node-configured.sh}"
fi
[[ -n "${source_uri}" ]] || fail "cannot tell where the bootstrap bundle is" \
  "pass --source s3://BUCKET/PREFIX/HASH in CustomActions.OnNodeConfigured.Args"

region="$(cfn_value cfn_region)"
if [[ -n "${region}" ]]; then
  export AWS_DEFAULT_REGION="${region}"
fi
export HPCTOOL_REGION="${region}"

if [[ -n "${bucket}" && "${source_uri}" == s3://* && "${source_uri}" != "s3://${bucket}/"* ]]; then
  fail "the bundle ${source_uri} is not in --bucket ${bucket}" "make the Script URI and --bucket name the same bucket"
fi
case "${source_uri}" in
  s3://*)
    bundle="${R}/opt/hpctool/bundle"
    mkdir -p "${bundle}"
    say "fetching the bundle from ${source_uri}"
    aws s3 sync --only-show-errors --delete "${source_uri%/}/" "${bundle}/" >>"${MAIN_LOG}" 2>&1 ||
      fail "cannot fetch the bundle from ${source_uri} (see ${MAIN_LOG})" \
        "check that the node's IAM role may read it (HeadNode/SlurmQueues Iam.S3Access) and that 'hpctool bootstrap upload' ran"
    ;;
  *)
    bundle="$(cd "${source_uri}" 2>/dev/null && pwd)" || fail "bundle folder ${source_uri} does not exist"
    ;;
esac
[[ -f "${bundle}/bootstrap/lib/common.sh" ]] ||
  fail "${source_uri} holds no bootstrap/lib/common.sh" "upload the bundle with 'hpctool bootstrap upload'"

# --- is it the bundle that was uploaded? ------------------------------------------------------
# `hpctool bootstrap upload` writes manifest.json last: every file's SHA-256 and the digest that
# names the prefix. This script (fetched by ParallelCluster itself) checks the synced files
# against it before running any of them: a file changed, added or missing in S3, or a sync cut
# short, stops the bootstrap here and names the file. A bundle from S3 must have a manifest; a
# local folder (a checkout, for tests and admins) is checked when it has one.
verify_bundle() {
  local manifest="${bundle}/manifest.json" listing digest want_digest checks bad extra
  if [[ ! -f "${manifest}" ]]; then
    [[ "${source_uri}" != s3://* ]] || fail "${source_uri} has no manifest.json, so the bundle cannot be checked" \
      "upload the bundle with 'hpctool bootstrap upload' (it writes manifest.json last; none means an upload that did not finish)"
    say "bundle ${bundle#"${R}"}: a local folder without manifest.json; not verified"
    return 0
  fi
  # JSON is read by Python's own parser (every node image has python3); the sums by sha256sum.
  command -v python3 >/dev/null 2>&1 || fail "python3 is missing, so ${manifest#"${R}"} cannot be read" \
    "use a node image with python3 (every ParallelCluster AMI has it)"
  listing="$(python3 -I -c '
import hashlib, json, sys
body = json.load(open(sys.argv[1]))
files = body["files"]
digest = hashlib.sha256("".join(f"{p}\0{files[p]}\n" for p in sorted(files)).encode()).hexdigest()[:12]
print(body["digest"], digest)
for path in sorted(files):
    print(f"{files[path]}  {path}")
' "${manifest}" 2>&1)" || fail "${source_uri}: manifest.json is not a manifest of 'hpctool bootstrap upload'" \
    "upload the bundle again with 'hpctool bootstrap upload'"
  read -r want_digest digest <<<"${listing%%$'\n'*}"
  checks="${listing#*$'\n'}"
  [[ "${want_digest}" == "${digest}" ]] ||
    fail "${source_uri}: manifest.json says digest ${want_digest}, its file list hashes to ${digest}" \
      "upload the bundle again with 'hpctool bootstrap upload'"
  if [[ "${source_uri%/}" =~ /([0-9a-f]{12})$ && "${BASH_REMATCH[1]}" != "${digest}" ]]; then
    fail "${source_uri}: the prefix names bundle ${BASH_REMATCH[1]}, its manifest is of bundle ${digest}" \
      "point the Script URI at the prefix 'hpctool bootstrap upload' printed"
  fi
  bad="$(cd "${bundle}" && sha256sum --check --quiet <<<"${checks}" 2>&1)" || true
  if [[ -n "${bad}" ]]; then
    fail "${source_uri}: files differ from the uploaded bundle ${digest}: $(sed -n 's/: FAILED open or read$/ (missing)/p; s/: FAILED$//p' <<<"${bad}" | paste -sd' ')" \
      "the bundle was changed in S3 after the upload, or the sync did not finish: upload it again with 'hpctool bootstrap upload'"
  fi
  extra="$(cd "${bundle}" && find bootstrap envs -type f 2>/dev/null | sort | comm -23 - <(cut -c67- <<<"${checks}" | sort))"
  [[ -z "${extra}" ]] || fail "${source_uri}: files not in the uploaded bundle ${digest}: $(paste -sd' ' <<<"${extra}")" \
    "something else wrote into the bundle's prefix; upload the bundle again with 'hpctool bootstrap upload'"
  say "bundle ${digest}: $(wc -l <<<"${checks}") files match manifest.json"
}
verify_bundle
export HPCTOOL_BUNDLE="${bundle}"
# shellcheck source=bootstrap/lib/common.sh
. "${bundle}/bootstrap/lib/common.sh"

# --- what node this is ------------------------------------------------------------------------
node_type="${node_type_override:-$(cfn_value cfn_node_type)}"
case "${node_type}" in
  HeadNode) steps="lmod conda scratch head" ;;
  LoginNode) steps="lmod conda" ;;
  ComputeFleet) steps="lmod conda scratch spot fpga" ;;
  "") fail "${R}/etc/parallelcluster/cfnconfig has no cfn_node_type" \
    "run this on a ParallelCluster node, or pass --node-type HeadNode|LoginNode|ComputeFleet" ;;
  *) fail "unknown node type '${node_type}' in ${R}/etc/parallelcluster/cfnconfig" \
    "expected HeadNode, LoginNode or ComputeFleet" ;;
esac

node_name=""
queue=""
if [[ "${node_type}" == ComputeFleet ]]; then
  # Slurm node names are QUEUE-(st|dy)-COMPUTERESOURCE-N; the queue is what precedes -st-/-dy-.
  nodename_file="${R}/etc/parallelcluster/slurm_plugin/slurm_nodename"
  [[ -r "${nodename_file}" ]] || fail "${nodename_file} is missing, so the queue is unknown" \
    "this script must run as OnNodeConfigured, after ParallelCluster configured Slurm"
  node_name="$(tr -d '[:space:]' <"${nodename_file}")"
  queue="${node_name%%-st-*}"
  queue="${queue%%-dy-*}"
  [[ "${queue}" != "${node_name}" ]] || fail "Slurm node name '${node_name}' is not QUEUE-st|dy-RESOURCE-N"
fi

instance_type="$(node_imds meta-data/instance-type)" ||
  fail "cannot read the instance type from the instance metadata service (IMDSv2)"
lifecycle="$(node_imds meta-data/instance-life-cycle)" ||
  fail "cannot read the instance life cycle from the instance metadata service (IMDSv2)"
export HPCTOOL_ROOT="${R}" HPCTOOL_NODE_TYPE="${node_type}" HPCTOOL_QUEUE="${queue}" \
  HPCTOOL_NODE_NAME="${node_name}" HPCTOOL_INSTANCE_TYPE="${instance_type}" HPCTOOL_LIFECYCLE="${lifecycle}"

if [[ -n "${only}" ]]; then
  chosen=""
  for step in ${only//,/ }; do
    chosen+=" ${step}"
  done
  steps="${chosen# }"
fi
for step in ${skip//,/ }; do
  steps=" ${steps} "
  steps="${steps// ${step} / }"
  steps="${steps# }"
  steps="${steps% }"
done

say "node ${node_type}${node_name:+ ${node_name}} (queue ${queue:-none}, ${instance_type}, ${lifecycle}); steps: ${steps:-none}"

# --- the steps --------------------------------------------------------------------------------
rerun_hint() {
  printf 'sudo %q --only %s' "${bundle#"${R}"}/bootstrap/on-node-configured.sh" "$1"
  if ((${#SETTING_ARGS[@]})); then
    printf ' %q' "${SETTING_ARGS[@]}"
  fi
}

started=${SECONDS}
for step in ${steps}; do
  step_log="${LOG_DIR}/${step}.log"
  script="${bundle}/bootstrap/steps/${step}.sh"
  [[ -f "${script}" ]] || fail "step ${step}: ${script} is missing from the bundle"
  say "step ${step}: started (log ${step_log#"${R}"})"
  step_started=${SECONDS}
  printf '\n===== %s run of step %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${step}" >>"${step_log}"
  chmod 0640 "${step_log}"
  status=0
  HPCTOOL_STEP="${step}" bash "${script}" >>"${step_log}" 2>&1 || status=$?
  if ((status != 0)); then
    say "step ${step}: failed with exit ${status} after $((SECONDS - step_started)) s"
    {
      printf 'hpctool bootstrap: step %s failed (exit %s); its log is %s. Last lines:\n' "${step}" "${status}" "${step_log#"${R}"}"
      tail -n 15 "${step_log}" | sed 's/^/  | /'
      printf 'rerun it: %s\n' "$(rerun_hint "${step}")"
    } >&2
    fail "step ${step} (exit ${status}); see ${step_log#"${R}"}"
  fi
  say "step ${step}: ok in $((SECONDS - step_started)) s"
done
say "finished: ok, ${node_type}, steps ${steps:-none} in $((SECONDS - started)) s"
