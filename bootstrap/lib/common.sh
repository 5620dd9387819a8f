# shellcheck shell=bash
# Shared functions of the node bootstrap, sourced by on-node-configured.sh and by every step.
#
# Every path on the node is written as "${R}/path": R is empty on a real node and a temporary
# folder standing in for / in the tests (HPCTOOL_ROOT). Files the steps write also name paths
# with that prefix, so what a test generates is what runs there (Lmod really loads it).

R="${HPCTOOL_ROOT:-}"
HPCTOOL_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The commands that need root, devices, the network or AWS. Tests replace them by pointing
# HPCTOOL_TEST_WRAPPERS at a file that redefines these functions.
# shellcheck source=bootstrap/lib/node.sh
. "${HPCTOOL_LIB}/node.sh"
if [[ -n "${HPCTOOL_TEST_WRAPPERS:-}" ]]; then
  # shellcheck disable=SC1090
  . "${HPCTOOL_TEST_WRAPPERS}"
fi

log() {
  printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${HPCTOOL_STEP:-bootstrap}" "$*"
}

# A failure the admin can act on: what is wrong, then what to do. Exits the step.
die() {
  local message="$1" hint="${2:-}"
  log "ERROR: ${message}" >&2
  if [[ -n "${hint}" ]]; then
    log "hint: ${hint}" >&2
  fi
  exit 1
}

# Write stdin to a file only when its content differs, atomically (temporary file + rename), so
# a second run changes nothing and a reader never sees half a file. Prints "changed" or "same".
write_if_changed() {
  local path="$1" mode="${2:-0644}" tmp
  mkdir -p "$(dirname "${path}")"
  tmp="$(mktemp "${path}.XXXXXX")"
  cat >"${tmp}"
  chmod "${mode}" "${tmp}"
  if [[ -f "${path}" ]] && cmp -s "${tmp}" "${path}" && [[ "$(stat -c %a "${path}")" == "$(stat -c %a "${tmp}")" ]]; then
    rm -f "${tmp}"
    echo same
  else
    mv -f "${tmp}" "${path}"
    echo changed
  fi
}

# Copy a file from the bundle to the node, only when it differs.
install_if_changed() {
  local source="$1" target="$2" mode="${3:-0644}"
  [[ -f "${source}" ]] || die "${source}: missing from the bootstrap bundle" \
    "upload the bundle again with 'hpctool bootstrap upload' from a checkout that has this file"
  write_if_changed "${target}" "${mode}" <"${source}"
}

# True when the path is a mount point on this node (read from /proc/mounts, which the tests fake).
is_mounted() {
  local target="$1"
  [[ -r "${R}/proc/mounts" ]] && awk -v t="${target}" '$2 == t { found = 1 } END { exit !found }' "${R}/proc/mounts"
}

# Comma-separated list membership: in_list spot "compute,spot".
in_list() {
  [[ ",$2," == *",$1,"* ]]
}
