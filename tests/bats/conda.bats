#!/usr/bin/env bats
# Step conda against a fake node root: Miniforge installed once under a lock, one environment
# and one Lua modulefile per envs/ file, and Debian's real Lmod loading those modulefiles.

load helpers

setup() {
  make_node HeadNode
  APPS="${HPCTOOL_ROOT}/shared/apps"
  untagged_version="$(sha256sum "${BUNDLE}/envs/untagged.yml" | cut -c1-8)"
}

@test "conda: installs Miniforge once and builds each environment with its modulefile" {
  run_step conda
  [ "$status" -eq 0 ]
  [ "$(calls_of node_run_installer | wc -l)" -eq 1 ]
  [ "$(cat "${APPS}/miniforge3/.hpctool-installed")" = 25.3.0-3 ]
  calls_of node_fetch | grep -q "releases/download/25.3.0-3/Miniforge3-25.3.0-3-Linux-$(uname -m).sh "
  [ -x "${APPS}/conda-envs/aligners/1.0/bin/bwa" ]
  [ -f "${APPS}/modulefiles/aligners/1.0.lua" ]
  # no module line: the name: field and a content hash
  [ -f "${APPS}/modulefiles/variant-tools/${untagged_version}.lua" ]
  grep -q "local prefix = \"${APPS}/conda-envs/aligners/1.0\"" "${APPS}/modulefiles/aligners/1.0.lua"
}

@test "conda: a second run installs and creates nothing and changes no file" {
  run_twice conda
  [ ! -s "${FAKE_CALLS}" ]
  [[ "$output" == *"environment aligners/1.0: already built"* ]]
}

@test "conda: nodes booting together wait on the lock and install Miniforge only once" {
  export HPCTOOL_BUNDLE="${BUNDLE}" HPCTOOL_APPS=/shared/apps HPCTOOL_MINIFORGE_VERSION=25.3.0-3
  for node in 1 2 3; do
    bash "${BUNDLE}/bootstrap/steps/conda.sh" >"${BATS_TEST_TMPDIR}/node${node}.log" 2>&1 &
  done
  wait
  [ "$(calls_of node_run_installer | wc -l)" -eq 1 ]
  [ "$(grep -c '^mamba env create' "${FAKE_CALLS}")" -eq 2 ]
}

@test "conda: a bad installer checksum stops the step before running it" {
  FAKE_BAD_CHECKSUM=1 run_step conda
  [ "$status" -ne 0 ]
  [[ "$output" == *"Miniforge installer checksum mismatch"* ]]
  [ -z "$(calls_of node_run_installer)" ]
}

@test "conda: an unfinished Miniforge install is removed and done again" {
  mkdir -p "${APPS}/miniforge3/pkgs"
  : >"${APPS}/miniforge3/pkgs/half-written"
  run_step conda
  [ "$status" -eq 0 ]
  [[ "$output" == *"removing the unfinished install"* ]]
  [ ! -e "${APPS}/miniforge3/pkgs/half-written" ]
  [ -f "${APPS}/miniforge3/.hpctool-installed" ]
}

@test "conda: an env file changed under the same module version is refused" {
  run_step conda
  [ "$status" -eq 0 ]
  printf '  - tabix=1.21\n' >>"${BUNDLE}/envs/aligners.yaml"
  run_step conda
  [ "$status" -ne 0 ]
  [[ "$output" == *"envs/aligners.yaml changed, but module aligners/1.0 was already built"* ]]
  [[ "$output" == *"bump the version"* ]]
}

@test "conda: a failed solve names the environment and leaves no module behind" {
  FAKE_SOLVE_FAIL=1 run_step conda
  [ "$status" -ne 0 ]
  [[ "$output" == *"creating environment aligners/1.0 from envs/aligners.yaml failed"* ]]
  [ ! -e "${APPS}/modulefiles/aligners/1.0.lua" ]
}

@test "conda: a module line that is not NAME/VERSION is refused" {
  sed -i '1s|.*|# hpctool-module: aligners|' "${BUNDLE}/envs/aligners.yaml"
  run_step conda
  [ "$status" -ne 0 ]
  [[ "$output" == *"module 'aligners' is not NAME/VERSION"* ]]
}

@test "conda + Lmod: module avail lists the environments, module load works in bash and sh" {
  run_step lmod
  [ "$status" -eq 0 ]
  run_step conda
  [ "$status" -eq 0 ]
  profile="${HPCTOOL_ROOT}/etc/profile.d/z00-hpctool-lmod.sh"
  clean=(env -i PATH=/usr/bin:/bin HOME="${BATS_TEST_TMPDIR}")

  run "${clean[@]}" bash -c ". '${profile}' && module -t avail 2>&1"
  [ "$status" -eq 0 ]
  [[ "$output" == *"aligners/1.0"* ]]
  [[ "$output" == *"variant-tools/${untagged_version}"* ]]

  run "${clean[@]}" bash -c ". '${profile}' && module load aligners/1.0 && bwa && samtools && module -t list 2>&1"
  [ "$status" -eq 0 ]
  [[ "$output" == *"bwa 0.7.18"* ]]
  [[ "$output" == *"samtools 1.21"* ]]
  [[ "$output" == *"aligners/1.0"* ]]

  # sbatch --wrap runs /bin/sh: the profile is sourced with '.', then module works there too
  run "${clean[@]}" sh -c ". '${profile}' && module load variant-tools && bcftools"
  [ "$status" -eq 0 ]
  [[ "$output" == *"bcftools 1.21"* ]]

  # and Lmod's own sh init, as the issue asks
  run "${clean[@]}" MODULEPATH="${APPS}/modulefiles" sh -c '. /usr/share/lmod/lmod/init/sh && module load aligners && bwa'
  [ "$status" -eq 0 ]
  [[ "$output" == *"bwa 0.7.18"* ]]

  run "${clean[@]}" sh -c ". '${profile}' && module load aligners/9.9"
  [ "$status" -ne 0 ]
}

@test "conda: --envs builds only the named modules and refuses an unknown name" {
  HPCTOOL_ENVS=aligners run_step conda
  [ "$status" -eq 0 ]
  [ -f "${APPS}/modulefiles/aligners/1.0.lua" ]
  [ ! -d "${APPS}/modulefiles/variant-tools" ]
  [[ "$output" == *"not in --envs aligners, skipped"* ]]
  HPCTOOL_ENVS=aligners,base run_step conda
  [ "$status" -ne 0 ]
  [[ "$output" == *"--envs names 'base', but no file in envs/ declares that module"* ]]
}

@test "conda: the repository's own envs/ files each become the module their first line names" {
  rm -f "${BUNDLE}"/envs/*
  cp "${REPO}"/envs/*.yaml "${BUNDLE}/envs/"
  run_step conda
  [ "$status" -eq 0 ]
  for file in "${REPO}"/envs/*.yaml; do
    module="$(sed -n '1s/^# hpctool-module: *//p' "${file}")"
    [ -n "${module}" ]
    [ -f "${APPS}/modulefiles/${module}.lua" ]
  done
  [ "$(find "${APPS}/modulefiles" -name '*.lua' | wc -l)" -eq "$(ls "${REPO}"/envs/*.yaml | wc -l)" ]
}

@test "conda: a node that finds everything built takes no lock, so a build elsewhere does not hold it up" {
  run_step conda
  [ "$status" -eq 0 ]
  # Another node holds the lock (building something) for longer than this test may take.
  bash -c 'exec 9>"$1"; flock 9; exec sleep 60' _ "${APPS}/.hpctool-conda.lock" 3>&- &
  holder=$!  # the sleep itself holds the lock: killing it lets go
  sleep 0.3
  : >"${FAKE_CALLS}"
  SECONDS=0
  run timeout 20 bash -c 'HPCTOOL_STEP=conda HPCTOOL_BUNDLE="$1" HPCTOOL_APPS=/shared/apps HPCTOOL_MINIFORGE_VERSION=25.3.0-3 bash "$1/bootstrap/steps/conda.sh"' _ "${BUNDLE}"
  kill "${holder}"
  [ "$status" -eq 0 ]
  ((SECONDS < 10))
  [[ "$output" == *"every environment are built; no lock needed"* ]]
  [[ "$output" != *"waiting for the conda lock"* ]]
  [ ! -s "${FAKE_CALLS}" ]
}

@test "conda: a node that must build takes the lock, then looks again and builds nothing another node built" {
  run_step conda
  [ "$status" -eq 0 ]
  marker="${APPS}/conda-envs/aligners/1.0/.hpctool-env-sha256"
  mv "${marker}" "${BATS_TEST_TMPDIR}/marker"
  # The other node: holds the lock while it "finishes" aligners/1.0, then lets go.
  flock "${APPS}/.hpctool-conda.lock" bash -c 'sleep 2; mv "$1" "$2"' _ "${BATS_TEST_TMPDIR}/marker" "${marker}" 3>&- &
  sleep 0.3
  : >"${FAKE_CALLS}"
  run_step conda
  wait
  [ "$status" -eq 0 ]
  [[ "$output" == *"something to build: waiting for the conda lock"* ]]
  [[ "$output" == *"another node built everything while this one waited"* ]]
  [ -z "$(grep '^mamba env create' "${FAKE_CALLS}")" ]
  [[ "$output" == *"environment aligners/1.0: already built"* ]]
}
