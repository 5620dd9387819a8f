#!/usr/bin/env bash
# Step spot: on spot instances, installs the spot interruption handler and its systemd unit
# and enables it, so a two-minute notice requeues the node's jobs before AWS reclaims it.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

handler_source="${HPCTOOL_BUNDLE:?}/bootstrap/spot-interruption-handler"
unit_source="${HPCTOOL_BUNDLE}/bootstrap/systemd/hpctool-spot-handler.service"
handler="${R}/opt/hpctool/bin/spot-interruption-handler"
unit_name="hpctool-spot-handler.service"
unit="${R}/etc/systemd/system/${unit_name}"

if [[ "${HPCTOOL_LIFECYCLE:-}" != spot ]]; then
  log "instance life cycle is '${HPCTOOL_LIFECYCLE:-unknown}', not spot: nothing to do"
  exit 0
fi

handler_result="$(install_if_changed "${handler_source}" "${handler}" 0755)"
unit_result="$(install_if_changed "${unit_source}" "${unit}" 0644)"
log "${handler#"${R}"}: ${handler_result}; ${unit#"${R}"}: ${unit_result}"

if [[ "${handler_result}" == changed || "${unit_result}" == changed ]]; then
  node_systemctl daemon-reload || die "systemctl daemon-reload failed"
  # restart, not start: a changed handler must replace the one already running
  node_systemctl enable "${unit_name}" || die "systemctl enable ${unit_name} failed"
  node_systemctl restart "${unit_name}" || die "${unit_name} did not start" \
    "see 'journalctl -u ${unit_name}' on the node"
  log "${unit_name} enabled and (re)started"
elif ! node_systemctl is-active --quiet "${unit_name}"; then
  node_systemctl enable --now "${unit_name}" || die "${unit_name} did not start" \
    "see 'journalctl -u ${unit_name}' on the node"
  log "${unit_name} was not running; started it"
else
  log "${unit_name} is up to date and running"
fi
