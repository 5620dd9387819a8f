# shellcheck shell=bash
# The fake node: replaces the functions of bootstrap/lib/node.sh for the bats tests. Each call is
# recorded in $FAKE_CALLS; devices, mounts and services are files under the fake root.

record() { printf '%s\n' "$*" >>"${FAKE_CALLS:?}"; }

node_imds() {
  record node_imds "$@"
  [[ -z "${FAKE_IMDS_DOWN:-}" ]] || return 1
  case "$1" in
    meta-data/instance-type) printf '%s\n' "${FAKE_INSTANCE_TYPE}" ;;
    meta-data/instance-life-cycle) printf '%s\n' "${FAKE_LIFECYCLE}" ;;
    *) return 1 ;;
  esac
}

# aws: s3 sync from $FAKE_S3/<bucket>/<key>, and the two secret stores.
node_aws() {
  record node_aws "$@"
  case "$1 $2" in
    "s3 sync")
      local source="${*: -2:1}" target="${*: -1}"
      source="${FAKE_S3}/${source#s3://}"
      [[ -d "${source}" ]] || { echo "fatal error: NoSuchBucket ${source}" >&2; return 1; }
      # --delete: what is no longer in S3 goes from the target too
      if [[ " $* " == *" --delete "* && -d "${target}" ]]; then find "${target}" -mindepth 1 -delete; fi
      cp -r "${source%/}/." "${target}"
      ;;
    "secretsmanager get-secret-value" | "ssm get-parameter")
      [[ -n "${FAKE_SECRET:-}" ]] || { echo "An error occurred (AccessDeniedException)" >&2; return 255; }
      printf '%s\n' "${FAKE_SECRET}"
      ;;
    *) return 1 ;;
  esac
}

# The package manager "installs" Lmod by linking Debian's real one into the fake root.
node_pkg_install() {
  record node_pkg_install "$@"
  [[ -z "${FAKE_PKG_FAIL:-}" ]] || { echo "No match for argument: $*" >&2; return 1; }
  mkdir -p "${HPCTOOL_ROOT}/usr/share/lmod"
  ln -sfn /usr/share/lmod/lmod "${HPCTOOL_ROOT}/usr/share/lmod/lmod"
}

node_systemctl() {
  record node_systemctl "$@"
  local state="${HPCTOOL_ROOT}/run/fake-systemd"
  mkdir -p "${state}"
  case "$1" in
    is-active) [[ -f "${state}/${*: -1}.active" ]] ;;
    enable) [[ "$2" != --now ]] || : >"${state}/${*: -1}.active" ;;
    restart | start) : >"${state}/${*: -1}.active" ;;
    daemon-reload) ;;
  esac
}

node_mdadm() {
  record node_mdadm "$@"
  [[ -z "${FAKE_MDADM_FAIL:-}" ]] || { echo "mdadm: cannot open /dev/nvme1n1: Device or resource busy" >&2; return 1; }
  mkdir -p "${HPCTOOL_ROOT}/dev/md"
  : >"$2"
}

# mkfs writes what blkid then reads: the type and the label, as on a real disk.
node_mkfs_xfs() {
  record node_mkfs_xfs "$@"
  local device="${*: -1}"
  mkdir -p "${HPCTOOL_ROOT}/fake-blkid"
  echo xfs >"${HPCTOOL_ROOT}/fake-blkid/${device##*/}"
  if [[ "$1" == -L ]]; then echo "$2" >"${HPCTOOL_ROOT}/fake-blkid/${device##*/}.label"; fi
}

node_mount() {
  record node_mount "$@"
  printf '%s %s xfs rw,noatime 0 0\n' "${*: -2:1}" "${*: -1}" >>"${HPCTOOL_ROOT}/proc/mounts"
}

node_blkid_type() {
  local signature="${HPCTOOL_ROOT}/fake-blkid/${1##*/}"
  if [[ -f "${signature}" ]]; then cat "${signature}"; fi
}

node_blkid_label() {
  local label="${HPCTOOL_ROOT}/fake-blkid/${1##*/}.label"
  if [[ -f "${label}" ]]; then cat "${label}"; fi
}

node_df_avail_gb() { printf '%s\n' "${FAKE_DF_GB:-500}"; }

# The Miniforge download: a small installer whose mamba "creates" an environment by writing one
# script per pinned dependency into PREFIX/bin, so the modules have real commands to run.
node_fetch() {
  record node_fetch "$@"
  case "$1" in
    *.sha256)
      local digest
      digest="$(sha256sum "$(dirname "$2")/installer.sh" | awk '{ print $1 }')"
      [[ -z "${FAKE_BAD_CHECKSUM:-}" ]] || digest="0000${digest:4}"
      printf '%s  Miniforge3.sh\n' "${digest}" >"$2"
      ;;
    *)
      cat >"$2" <<'INSTALLER'
#!/usr/bin/env bash
set -euo pipefail
prefix="${3:?}"
mkdir -p "${prefix}/bin"
cat >"${prefix}/bin/mamba" <<'MAMBA'
#!/usr/bin/env bash
# fake mamba: env create --yes --quiet --prefix P --file F
set -euo pipefail
while (($#)); do
  case "$1" in --prefix) prefix="$2"; shift 2 ;; --file) file="$2"; shift 2 ;; *) shift ;; esac
done
echo "mamba env create ${prefix}" >>"${FAKE_CALLS}"
[[ -z "${FAKE_SOLVE_FAIL:-}" ]] || { echo "error: nothing provides bwa=9.9" >&2; exit 1; }
mkdir -p "${prefix}/bin" "${prefix}/conda-meta"
sed -n -E 's/^[[:space:]]*-[[:space:]]*([A-Za-z0-9_.-]+)=([^[:space:]]+).*/\1 \2/p' "${file}" |
  while read -r tool version; do
    printf '#!/bin/sh\necho "%s %s"\n' "${tool}" "${version}" >"${prefix}/bin/${tool}"
    chmod +x "${prefix}/bin/${tool}"
  done
MAMBA
chmod +x "${prefix}/bin/mamba"
INSTALLER
      ;;
  esac
}

node_run_installer() {
  record node_run_installer "$@"
  bash "$1" -b -p "$2"
}

# -- JupyterHub on the head node: a venv and a proxy that are small scripts under the fake root;
# groups and users are recorded. visudo is the real one (it only reads the file).
node_has_python_venv() { [[ -z "${FAKE_NO_VENV:-}" ]]; }
node_node_major() { printf '%s\n' "${FAKE_NODE_MAJOR:-20}"; }
node_ensure_group() { record node_ensure_group "$@"; }
node_ensure_system_user() { record node_ensure_system_user "$@"; }
node_python_venv() {
  record node_python_venv "${1#"${HPCTOOL_ROOT}"}"
  mkdir -p "$1/bin"
  printf '#!/bin/sh\necho jupyterhub\n' >"$1/bin/jupyterhub"
  chmod +x "$1/bin/jupyterhub"
}
node_pip_install() {
  local venv="$1"
  shift
  record node_pip_install "${venv#"${HPCTOOL_ROOT}"}" "$@"
}
node_npm_install() {
  record node_npm_install "${1#"${HPCTOOL_ROOT}"}" "$2"
  mkdir -p "$1/bin"
  printf '#!/bin/sh\necho proxy\n' >"$1/bin/configurable-http-proxy"
  chmod +x "$1/bin/configurable-http-proxy"
}
node_visudo_check() { record node_visudo_check; visudo -c -q -f "$1"; }
node_give_to_user() { record node_give_to_user "$1" "${2#"${HPCTOOL_ROOT}"}"; }
