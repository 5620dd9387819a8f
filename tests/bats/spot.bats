#!/usr/bin/env bats
# Step spot against a fake node root: the spot engineer's handler and unit, installed and enabled.

load helpers

setup() {
  make_node ComputeFleet spot-dy-mixed16-3
}

@test "spot: an on-demand instance gets nothing" {
  FAKE_LIFECYCLE=on-demand run_step spot
  [ "$status" -eq 0 ]
  [ ! -e "${HPCTOOL_ROOT}/opt/hpctool/bin/spot-interruption-handler" ]
  [ ! -s "${FAKE_CALLS}" ]
}

@test "spot: installs the handler and its unit at the agreed paths and starts it" {
  FAKE_LIFECYCLE=spot run_step spot
  [ "$status" -eq 0 ]
  cmp "${BUNDLE}/bootstrap/spot-interruption-handler" "${HPCTOOL_ROOT}/opt/hpctool/bin/spot-interruption-handler"
  [ "$(stat -c %a "${HPCTOOL_ROOT}/opt/hpctool/bin/spot-interruption-handler")" = 755 ]
  cmp "${BUNDLE}/bootstrap/systemd/hpctool-spot-handler.service" \
    "${HPCTOOL_ROOT}/etc/systemd/system/hpctool-spot-handler.service"
  [ "$(calls_of node_systemctl)" = "node_systemctl daemon-reload
node_systemctl enable hpctool-spot-handler.service
node_systemctl restart hpctool-spot-handler.service" ]
}

@test "spot: a second run changes nothing and restarts nothing" {
  FAKE_LIFECYCLE=spot run_twice spot
  [ "$(calls_of node_systemctl)" = "node_systemctl is-active --quiet hpctool-spot-handler.service" ]
  [[ "$output" == *"up to date and running"* ]]
}

@test "spot: a changed handler is installed and the service restarted" {
  FAKE_LIFECYCLE=spot run_step spot
  echo "# new version" >>"${BUNDLE}/bootstrap/spot-interruption-handler"
  : >"${FAKE_CALLS}"
  FAKE_LIFECYCLE=spot run_step spot
  [ "$status" -eq 0 ]
  calls_of node_systemctl | grep -qx "node_systemctl restart hpctool-spot-handler.service"
  cmp "${BUNDLE}/bootstrap/spot-interruption-handler" "${HPCTOOL_ROOT}/opt/hpctool/bin/spot-interruption-handler"
}

@test "spot: a bundle without the handler fails and names the missing file" {
  rm "${BUNDLE}/bootstrap/spot-interruption-handler"
  FAKE_LIFECYCLE=spot run_step spot
  [ "$status" -ne 0 ]
  [[ "$output" == *"bootstrap/spot-interruption-handler: missing from the bootstrap bundle"* ]]
  [ -z "$(calls_of node_systemctl)" ]
}
