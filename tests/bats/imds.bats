#!/usr/bin/env bats
# node_imds (bootstrap/lib/node.sh) against hpctool's loopback IMDSv2 emulator: a token first,
# retries on transient errors, a 404 answered at once, and a bounded failure when IMDS is down.

setup() {
  REPO="$(cd "${BATS_TEST_DIRNAME}/../.." && pwd)"
  PYTHON="${REPO}/.venv/bin/python"
  port="$("${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "${PYTHON}" -m hpctool.twin.imds --port "${port}" --node spot-st-mixed16-1 2>/dev/null 3>&- &
  emulator=$!
  export HPCTOOL_IMDS_ENDPOINT="http://127.0.0.1:${port}"
  for _ in $(seq 50); do
    curl -s -o /dev/null "${HPCTOOL_IMDS_ENDPOINT}/_emulator/state" && break
    sleep 0.1
  done
  # shellcheck source=bootstrap/lib/node.sh
  . "${REPO}/bootstrap/lib/node.sh"
}

teardown() {
  kill "${emulator}" 2>/dev/null || true
}

emulator() {  # POST ACTION JSON | GET state
  curl -sS --fail -X "$1" "${HPCTOOL_IMDS_ENDPOINT}/_emulator/$2" ${3:+-d "$3"}
}

requests() {
  emulator GET state | "${PYTHON}" -c 'import json, sys; print(json.load(sys.stdin)["requests"])'
}

@test "imds: reads a metadata path with an IMDSv2 token" {
  run node_imds meta-data/instance-life-cycle
  [ "$status" -eq 0 ]
  [ "$output" = spot ]
  # IMDSv1 is off in the emulator as in our clusters: without the token the same path is refused.
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${HPCTOOL_IMDS_ENDPOINT}/latest/meta-data/instance-life-cycle")" = 401 ]
}

@test "imds: transient 503s (token and metadata) are retried until the read succeeds" {
  before="$(requests)"
  emulator POST faults '{"status": 503, "count": 2}' >/dev/null
  run node_imds meta-data/local-hostname
  [ "$status" -eq 0 ]
  [ "${lines[-1]}" = spot-st-mixed16-1 ]  # curl's retry notes come first (they go to the step's log)
  # the POST, 2 refused token requests, the token, the read, and this state query
  [ "$(requests)" -eq $((before + 6)) ]
}

@test "imds: a path IMDS does not have (404) fails at once, without retries" {
  before="$(requests)"
  run node_imds meta-data/spot/instance-action
  [ "$status" -ne 0 ]
  [[ "$output" == *"HTTP 404"* ]]
  [ "$(requests)" -eq $((before + 3)) ]  # the token, the read, this state query
}

@test "imds: an IMDS that stays down fails after a bounded number of retries" {
  kill "${emulator}"
  wait "${emulator}" 2>/dev/null || true
  SECONDS=0
  HPCTOOL_IMDS_RETRIES=2 run node_imds meta-data/instance-type
  [ "$status" -ne 0 ]
  ((SECONDS < 20))
}
