#!/usr/bin/env bats
# head.d/50-jupyterhub.sh: JupyterHub on the head node from the files `hpctool notebook render`
# writes into the bundle (the real renderer, the real sudoers check with visudo).

load helpers

setup() {
  make_node HeadNode
  export HPCTOOL_NODE_TYPE=HeadNode
  rendered="${BUNDLE}/bootstrap/notebook"
}

render() {
  "${REPO}/.venv/bin/hpctool" notebook render --out-dir "${rendered}" "$@" >/dev/null
}

@test "jupyterhub: without rendered files the hook is a no-op that says how to add them" {
  run_step head
  [ "$status" -eq 0 ]
  [[ "$output" == *"no notebook configuration in the bundle"* ]]
  [[ "$output" == *"hpctool notebook render"* ]]
  [ ! -e "${HPCTOOL_ROOT}/etc/systemd/system/hpctool-jupyterhub.service" ]
}

@test "jupyterhub: installs venv, proxy, config, sudoers and unit, and starts the hub" {
  render
  run_step head
  [ "$status" -eq 0 ]
  local root="${HPCTOOL_ROOT}"
  [ "$(stat -c %a "${root}/etc/sudoers.d/hpctool-jupyterhub")" = 440 ]
  grep -q '^jupyterhub ALL=(%hpctool-notebook) NOPASSWD:SETENV: HPCTOOL_NOTEBOOK_SLURM$' \
    "${root}/etc/sudoers.d/hpctool-jupyterhub"
  cmp "${rendered}/jupyterhub_config.py" "${root}/opt/hpctool/jupyterhub/etc/jupyterhub_config.py"
  cmp "${rendered}/hpctool_spawner.py" "${root}/opt/hpctool/jupyterhub/etc/hpctool_spawner.py"
  grep -q '^User=jupyterhub$' "${root}/etc/systemd/system/hpctool-jupyterhub.service"
  grep -q 'append:/var/log/hpctool/jupyterhub.log' "${root}/etc/systemd/system/hpctool-jupyterhub.service"
  [ "$(stat -c %a "${root}/var/lib/hpctool/jupyterhub")" = 700 ]
  calls_of node_pip_install | grep -q -- "-r ${HPCTOOL_ROOT}/opt/hpctool/jupyterhub/requirements.txt"
  grep -q '^jupyterhub==6\.' "${root}/opt/hpctool/jupyterhub/requirements.txt"
  [ "$(calls_of node_npm_install)" = "node_npm_install /opt/hpctool/jupyterhub/npm configurable-http-proxy@5.3.0" ]
  [ "$(calls_of node_ensure_group)" = "node_ensure_group hpctool-notebook" ]
  [ "$(calls_of node_ensure_system_user)" = "node_ensure_system_user jupyterhub /var/lib/hpctool/jupyterhub shadow" ]
  calls_of node_systemctl | grep -q "restart hpctool-jupyterhub.service"
  [ -f "${root}/run/fake-systemd/hpctool-jupyterhub.service.active" ]
}

@test "jupyterhub: a second run installs and restarts nothing" {
  render
  run_twice head
  [ -z "$(calls_of node_pip_install)" ]
  [ -z "$(calls_of node_npm_install)" ]
  ! calls_of node_systemctl | grep -q restart
  [[ "$output" == *"hpctool-jupyterhub.service is up to date and running"* ]]
}

@test "jupyterhub: a changed config restarts the hub without reinstalling the venv" {
  render
  run_step head
  [ "$status" -eq 0 ]
  render --cull-timeout 600
  : >"${FAKE_CALLS}"
  run_step head
  [ "$status" -eq 0 ]
  grep -q -- "--timeout=600" "${HPCTOOL_ROOT}/opt/hpctool/jupyterhub/etc/jupyterhub_config.py"
  calls_of node_systemctl | grep -q "restart hpctool-jupyterhub.service"
  [ -z "$(calls_of node_pip_install)" ]
}

@test "jupyterhub: a sudoers rule visudo rejects is not installed" {
  render
  echo 'jupyterhub ALL=(ALL NOPASSWD: ALL' >>"${rendered}/sudoers"
  run_step head
  [ "$status" -ne 0 ]
  [[ "$output" == *"does not pass visudo"* ]]
  [ ! -e "${HPCTOOL_ROOT}/etc/sudoers.d/hpctool-jupyterhub" ]
}

@test "jupyterhub: Node.js older than 18 is a clear error" {
  render
  FAKE_NODE_MAJOR=12 run_step head
  [ "$status" -ne 0 ]
  [[ "$output" == *"Node.js 12 is too old for configurable-http-proxy"* ]]
}
