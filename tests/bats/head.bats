#!/usr/bin/env bats
# Step head: the hook folder where head-node extras (JupyterHub) go.

load helpers

setup() {
  make_node HeadNode
  export HPCTOOL_NODE_TYPE=HeadNode
}

@test "head: no hooks is a clean no-op" {
  rm -rf "${BUNDLE}/bootstrap/head.d"
  run_step head
  [ "$status" -eq 0 ]
  [[ "$output" == *"no head-node hooks"* ]]
}

@test "head: hooks run in name order with the bootstrap environment" {
  mkdir -p "${BUNDLE}/bootstrap/head.d"
  echo 'echo "second ${HPCTOOL_NODE_TYPE}" >>"${HPCTOOL_ROOT}/hooks.log"' >"${BUNDLE}/bootstrap/head.d/20-b.sh"
  echo 'echo "first ${HPCTOOL_NODE_TYPE}" >>"${HPCTOOL_ROOT}/hooks.log"' >"${BUNDLE}/bootstrap/head.d/10-a.sh"
  run_step head
  [ "$status" -eq 0 ]
  [ "$(cat "${HPCTOOL_ROOT}/hooks.log")" = "first HeadNode
second HeadNode" ]
}

@test "head: a failing hook fails the step and names the hook" {
  mkdir -p "${BUNDLE}/bootstrap/head.d"
  echo 'echo "jupyterhub: port 8000 in use" >&2; exit 3' >"${BUNDLE}/bootstrap/head.d/50-jupyterhub.sh"
  run_step head
  [ "$status" -ne 0 ]
  [[ "$output" == *"head-node hook 50-jupyterhub.sh failed"* ]]
  [[ "$output" == *"port 8000 in use"* ]]
}
