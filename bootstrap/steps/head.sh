#!/usr/bin/env bash
# Step head: head-node extras. Runs every executable bootstrap/head.d/*.sh of the bundle in name
# order (the JupyterHub setup goes there); each gets the same HPCTOOL_* environment as the steps.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

hooks_dir="${HPCTOOL_BUNDLE:?}/bootstrap/head.d"
shopt -s nullglob
hooks=("${hooks_dir}"/*.sh)
if ((${#hooks[@]} == 0)); then
  log "no head-node hooks in bootstrap/head.d/: nothing to do"
  exit 0
fi
for hook in "${hooks[@]}"; do
  log "hook ${hook##*/}: running"
  bash "${hook}" || die "head-node hook ${hook##*/} failed" "its output is above"
  log "hook ${hook##*/}: ok"
done
