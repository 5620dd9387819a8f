# shellcheck shell=bash
# The node's privileged, device, network and AWS commands, one small function each.
# The bats tests replace every function here (HPCTOOL_TEST_WRAPPERS); nothing else in the
# bootstrap calls these programs directly.

# IMDSv2 only (the cluster requires it): a session token first, then the metadata path. IMDS
# throttles and has hiccups while an instance boots: curl retries what is transient (timeouts,
# refused connections, 429, 5xx) with a growing delay, and a token refused as stale (401) is
# replaced once. A 404 (no such path) is an answer, not retried. HPCTOOL_IMDS_ENDPOINT points the
# tests at a loopback emulator.
node_imds() {
  local path="$1" endpoint="${HPCTOOL_IMDS_ENDPOINT:-http://169.254.169.254}" token reply code attempt
  local retry=(--retry "${HPCTOOL_IMDS_RETRIES:-6}" --retry-connrefused --retry-max-time 60 --max-time 5)
  for attempt in 1 2; do
    token="$(curl -sS --fail "${retry[@]}" -X PUT "${endpoint}/latest/api/token" \
      -H "X-aws-ec2-metadata-token-ttl-seconds: 300")" || return 1
    reply="$(curl -sS "${retry[@]}" -w '\n%{http_code}' -H "X-aws-ec2-metadata-token: ${token}" \
      "${endpoint}/latest/${path}")" || return 1
    code="${reply##*$'\n'}"
    case "${code}" in
      200) printf '%s\n' "${reply%$'\n'*}"; return 0 ;;
      401) ((attempt == 1)) || { echo "IMDS refused a fresh session token for ${path} (401)" >&2; return 1; } ;;
      *) echo "IMDS ${path}: HTTP ${code}" >&2; return 1 ;;
    esac
  done
}

node_aws() {
  aws "$@"
}

node_fetch() {  # URL DESTINATION
  curl -sS --fail --location --retry 5 --retry-delay 3 --max-time 900 -o "$2" "$1"
}

node_pkg_install() {
  # Retry once after the usual reason for a miss: stale apt lists on a new instance, or a package
  # (Lmod) that RHEL-like systems ship in EPEL only.
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y -q "$@" || { dnf install -y -q epel-release && dnf install -y -q "$@"; }
  elif command -v yum >/dev/null 2>&1; then
    yum install -y -q "$@" || { yum install -y -q epel-release && yum install -y -q "$@"; }
  elif command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; }
  else
    echo "no dnf, yum or apt-get on this node" >&2
    return 1
  fi
}

node_systemctl() {
  systemctl "$@"
}

node_mdadm() {
  mdadm "$@"
}

node_mkfs_xfs() {
  mkfs.xfs -q -f "$@"
}

node_mount() {
  mount "$@"
}

# Prints a device's filesystem or RAID signature type; empty when it has none.
node_blkid_type() {
  blkid -o value -s TYPE "$1" 2>/dev/null || true
}

# Prints a device's filesystem label; empty when it has none.
node_blkid_label() {
  blkid -o value -s LABEL "$1" 2>/dev/null || true
}

node_df_avail_gb() {
  df -P -BG "$1" | awk 'NR == 2 { sub("G", "", $4); print $4 }'
}

# Runs an installer that was downloaded and checked: bash INSTALLER -b -p PREFIX.
node_run_installer() {
  bash "$1" -b -p "$2"
}

node_conda_env_create() {  # CONDA_ROOT PREFIX ENV_FILE
  "$1/bin/mamba" env create --yes --quiet --prefix "$2" --file "$3"
}

# -- JupyterHub on the head node (bootstrap/head.d/50-jupyterhub.sh) --------------------------

node_has_python_venv() {
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

node_node_major() {  # prints Node.js's major version; fails when node is missing
  node -p 'process.versions.node.split(".")[0]' 2>/dev/null
}

node_ensure_group() {
  getent group "$1" >/dev/null || groupadd --system "$1"
}

node_ensure_system_user() {  # NAME HOME EXTRA_GROUP
  if ! getent passwd "$1" >/dev/null; then
    useradd --system --user-group --home-dir "$2" --shell /usr/sbin/nologin "$1"
  fi
  usermod --append --groups "$3" "$1"
}

node_python_venv() {
  python3 -m venv "$1"
}

node_pip_install() {  # VENV ARGS...
  local venv="$1"
  shift
  "${venv}/bin/pip" install --quiet --upgrade "$@"
}

node_npm_install() {  # PREFIX PACKAGE
  npm install --global --prefix "$1" --no-audit --no-fund --loglevel=error "$2"
}

node_visudo_check() {
  visudo -c -q -f "$1"
}

node_give_to_user() {  # USER PATH: the path and its contents, owned by the user and its group
  chown -R "$1:" "$2"
}
