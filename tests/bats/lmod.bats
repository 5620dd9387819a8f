#!/usr/bin/env bats
# Step lmod against a fake node root; Debian's real Lmod loads what it writes.

load helpers

setup() {
  make_node HeadNode
}

@test "lmod: installs the package when Lmod is missing and writes the profile" {
  run_step lmod
  [ "$status" -eq 0 ]
  [ "$(calls_of node_pkg_install)" = "node_pkg_install lmod" ]
  [ -d "${HPCTOOL_ROOT}/shared/apps/modulefiles" ]
  profile="${HPCTOOL_ROOT}/etc/profile.d/z00-hpctool-lmod.sh"
  [ "$(stat -c %a "${profile}")" = 644 ]
  grep -q "${HPCTOOL_ROOT}/shared/apps/modulefiles" "${profile}"
  [[ "$output" == *"profile /etc/profile.d/z00-hpctool-lmod.sh: changed"* ]]
}

@test "lmod: a second run changes nothing and installs nothing" {
  run_twice lmod
  [ -z "$(calls_of node_pkg_install)" ]
  [[ "$output" == *"z00-hpctool-lmod.sh: same"* ]]
}

@test "lmod: a failed package install names the package and what to do" {
  FAKE_PKG_FAIL=1 run_step lmod
  [ "$status" -ne 0 ]
  [[ "$output" == *"installing the lmod package failed"* ]]
  [[ "$output" == *"hint:"* ]]
}

@test "lmod: the profile is POSIX sh and gives bash and sh a working module command" {
  run_step lmod
  [ "$status" -eq 0 ]
  profile="${HPCTOOL_ROOT}/etc/profile.d/z00-hpctool-lmod.sh"
  run shellcheck -s sh -S warning "${profile}"
  [ "$status" -eq 0 ]
  run env -i PATH=/usr/bin:/bin HOME="${BATS_TEST_TMPDIR}" bash -c ". '${profile}' && type module >/dev/null && echo \"\$MODULEPATH\""
  [ "$status" -eq 0 ]
  [[ "$output" == "${HPCTOOL_ROOT}/shared/apps/modulefiles"* ]]
  run env -i PATH=/usr/bin:/bin HOME="${BATS_TEST_TMPDIR}" sh -c ". '${profile}' && module --version 2>&1"
  [ "$status" -eq 0 ]
  [[ "$output" == *"Modules based on Lua"* ]]
}
