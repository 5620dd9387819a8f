#!/usr/bin/env bash
# head.d hook: JupyterHub with batchspawner on the head node, so notebook users get JupyterLab as a
# Slurm job (docs/notebooks.md). Installs what `hpctool notebook render` put in the bundle under
# bootstrap/notebook/: a venv with the pinned hub packages, configurable-http-proxy from npm, the
# config and spawner module, the sudoers rule (checked with visudo first), the service user and
# the systemd unit hpctool-jupyterhub.service (log /var/log/hpctool/jupyterhub.log). Idempotent:
# a second run installs nothing and restarts nothing; a changed config restarts the hub.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "${HPCTOOL_BUNDLE:?}/bootstrap/lib/common.sh"

rendered="${HPCTOOL_BUNDLE}/bootstrap/notebook"
prefix="${R}/opt/hpctool/jupyterhub"
state="${R}/var/lib/hpctool/jupyterhub"
unit_name="hpctool-jupyterhub.service"
unit="${R}/etc/systemd/system/${unit_name}"
sudoers="${R}/etc/sudoers.d/hpctool-jupyterhub"
service_user="jupyterhub"

if [[ ! -f "${rendered}/jupyterhub_config.py" ]]; then
  log "no notebook configuration in the bundle: JupyterHub is not installed" \
    "(run 'hpctool notebook render --config cluster.yaml' before 'hpctool bootstrap upload' to add it)"
  exit 0
fi
for file in hpctool_spawner.py sudoers requirements.txt chp-version allowed-groups; do
  [[ -f "${rendered}/${file}" ]] || die "bootstrap/notebook/${file} is missing from the bundle" \
    "render the notebook files again with 'hpctool notebook render' and upload the bundle"
done

# Packages: Python's venv module and Node.js for the proxy (configurable-http-proxy 5 needs Node 18+).
if ! node_has_python_venv || ! node_node_major >/dev/null; then
  if command -v apt-get >/dev/null 2>&1; then packages=(python3-venv nodejs npm); else packages=(python3 nodejs npm); fi
  node_pkg_install "${packages[@]}" || die "installing ${packages[*]} failed"
fi
node_major="$(node_node_major)" || die "node is not installed"
((node_major >= 18)) || die "Node.js ${node_major} is too old for configurable-http-proxy (18 or newer)" \
  "use an AMI with Node.js 18+ (e.g. from NodeSource), then rerun: on-node-configured.sh --only head"

# The service user reads /etc/shadow through group shadow (PAM as a non-root hub); the allowed
# groups exist so admins can add users to them.
while read -r group; do
  [[ -n "${group}" ]] && node_ensure_group "${group}"
done <"${rendered}/allowed-groups"
node_ensure_system_user "${service_user}" "${state#"${R}"}" shadow

# The hub's venv, rebuilt only when the pinned requirements change.
requirements_result="$(install_if_changed "${rendered}/requirements.txt" "${prefix}/requirements.txt" 0644)"
if [[ "${requirements_result}" == changed || ! -x "${prefix}/venv/bin/jupyterhub" ]]; then
  node_python_venv "${prefix}/venv" || die "creating the venv ${prefix#"${R}"}/venv failed"
  node_pip_install "${prefix}/venv" -r "${prefix}/requirements.txt" || die "pip install of the hub failed" \
    "see the output above; the head node needs PyPI (or a mirror) reachable"
  log "hub venv: installed $(tr '\n' ' ' <"${prefix}/requirements.txt")"
else
  log "hub venv: up to date"
fi
chp_result="$(install_if_changed "${rendered}/chp-version" "${prefix}/npm/chp-version" 0644)"
if [[ "${chp_result}" == changed || ! -x "${prefix}/npm/bin/configurable-http-proxy" ]]; then
  node_npm_install "${prefix}/npm" "configurable-http-proxy@$(cat "${rendered}/chp-version")" ||
    die "npm install of configurable-http-proxy failed"
  log "configurable-http-proxy $(cat "${rendered}/chp-version") installed"
fi

# The sudoers rule goes live only when visudo accepts it: a broken file would lock sudo out.
node_visudo_check "${rendered}/sudoers" || die "the rendered sudoers rule does not pass visudo" \
  "render it again with 'hpctool notebook render'"
sudoers_result="$(install_if_changed "${rendered}/sudoers" "${sudoers}" 0440)"
config_result="$(install_if_changed "${rendered}/jupyterhub_config.py" "${prefix}/etc/jupyterhub_config.py" 0644)"
spawner_result="$(install_if_changed "${rendered}/hpctool_spawner.py" "${prefix}/etc/hpctool_spawner.py" 0644)"
unit_result="$(install_if_changed "${HPCTOOL_BUNDLE}/bootstrap/systemd/${unit_name}" "${unit}" 0644)"
log "sudoers: ${sudoers_result}; config: ${config_result}; spawner: ${spawner_result}; unit: ${unit_result}"

# Database and cookie secret: the service user's only.
mkdir -p "${state}" "${R}/var/log/hpctool"
chmod 0700 "${state}"
node_give_to_user "${service_user}" "${state}"

if [[ " ${requirements_result} ${chp_result} ${config_result} ${spawner_result} ${unit_result} " == *" changed "* ]]; then
  node_systemctl daemon-reload || die "systemctl daemon-reload failed"
  node_systemctl enable "${unit_name}" || die "systemctl enable ${unit_name} failed"
  node_systemctl restart "${unit_name}" || die "${unit_name} did not start" \
    "see /var/log/hpctool/jupyterhub.log and 'journalctl -u ${unit_name}'"
  log "${unit_name} enabled and (re)started; the hub listens on 127.0.0.1:8000 (docs/notebooks.md: SSH forward)"
elif ! node_systemctl is-active --quiet "${unit_name}"; then
  node_systemctl enable --now "${unit_name}" || die "${unit_name} did not start" \
    "see /var/log/hpctool/jupyterhub.log"
  log "${unit_name} was not running; started it"
else
  log "${unit_name} is up to date and running"
fi
