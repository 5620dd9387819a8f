#!/usr/bin/env bash
# Step conda: Miniforge (conda + mamba) on the shared apps filesystem, installed once for the
# cluster; every environment file in envs/ created once and exposed as a Lua modulefile
# <apps>/modulefiles/<name>/<version>.lua. A lock on shared storage makes the nodes that must
# build wait for one builder instead of racing it; a node that finds everything built (every boot
# after the first) takes no lock, so a long build elsewhere never holds up its boot.
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

apps="${R}${HPCTOOL_APPS:?}"
conda_root="${apps}/miniforge3"
envs_root="${apps}/conda-envs"
modulefiles="${apps}/modulefiles"
version="${HPCTOOL_MINIFORGE_VERSION:?}"
envs_dir="${HPCTOOL_BUNDLE:?}/envs"

mkdir -p "${apps}" "${envs_root}" "${modulefiles}"

install_miniforge() {
  local arch url work expected actual
  arch="$(uname -m)"
  url="https://github.com/conda-forge/miniforge/releases/download/${version}/Miniforge3-${version}-Linux-${arch}.sh"
  work="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: the folder is this call's
  trap "rm -rf '${work}'" RETURN
  log "downloading Miniforge ${version} (${arch})"
  node_fetch "${url}" "${work}/installer.sh" || die "cannot download ${url}" \
    "check the node's internet access (NAT gateway) and that --miniforge-version ${version} exists"
  node_fetch "${url}.sha256" "${work}/installer.sh.sha256" || die "cannot download ${url}.sha256"
  expected="$(awk '{ print $1; exit }' "${work}/installer.sh.sha256")"
  actual="$(sha256sum "${work}/installer.sh" | awk '{ print $1 }')"
  [[ -n "${expected}" && "${expected}" == "${actual}" ]] ||
    die "Miniforge installer checksum mismatch: expected ${expected:-nothing}, got ${actual}" \
      "the download is corrupt or was tampered with; rerun the step"
  node_run_installer "${work}/installer.sh" "${conda_root}" || die "the Miniforge installer failed"
  printf '%s\n' "${version}" >"${conda_root}/.hpctool-installed"
}

# The module name and version of an env file: its '# hpctool-module: NAME/VERSION' comment, else
# the 'name:' field and a short content hash.
module_of() {
  local file="$1" digest="$2" tag name
  tag="$(awk '/^#/ { if (sub(/^#[[:space:]]*hpctool-module:[[:space:]]*/, "")) { print; exit } next } { exit }' "${file}")"
  tag="${tag%%[[:space:]]*}"
  if [[ -z "${tag}" ]]; then
    name="$(sed -n -E 's/^name:[[:space:]]*["'"'"']?([^"'"'"' #]+).*/\1/p' "${file}" | head -n 1)"
    [[ -n "${name}" ]] || die "envs/${file##*/} has neither a '# hpctool-module: NAME/VERSION' line nor a name: field" \
      "start the file with '# hpctool-module: NAME/VERSION'"
    tag="${name}/${digest:0:8}"
  fi
  [[ "${tag}" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*/[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] ||
    die "envs/${file##*/}: module '${tag}' is not NAME/VERSION" "use letters, digits, '.', '_', '+', '-'"
  printf '%s\n' "${tag}"
}

write_modulefile() {  # NAME VERSION PREFIX SOURCE DIGEST
  local name="$1" module_version="$2" prefix="$3" source="$4" digest="$5"
  write_if_changed "${modulefiles}/${name}/${module_version}.lua" 0644 <<LUA
-- hpctool: conda environment ${name}/${module_version} from envs/${source} (sha256 ${digest:0:12}).
-- Written by the bootstrap step conda; do not edit: change envs/${source} and bump its version.
whatis("Name: ${name}")
whatis("Version: ${module_version}")
whatis("Description: conda environment built from envs/${source}")
help([[The conda environment ${name}/${module_version}, built from envs/${source}, at ${prefix}.]])
local prefix = "${prefix}"
prepend_path("PATH", pathJoin(prefix, "bin"))
prepend_path("MANPATH", pathJoin(prefix, "share/man"))
LUA
}

shopt -s nullglob
env_files=("${envs_dir}"/*.yaml "${envs_dir}"/*.yml)

# --envs NAME,... builds only those modules (by name); 'all' builds every file.
wanted="${HPCTOOL_ENVS:-all}"

# True when something is left to build: Miniforge, or a wanted environment without its marker.
# Markers are written last, after a complete build, so "all markers there" means "all built".
needs_build() {
  local file module
  [[ -f "${conda_root}/.hpctool-installed" ]] || return 0
  for file in "${env_files[@]}"; do
    module="$(module_of "${file}" "$(sha256sum "${file}" | awk '{ print $1 }')")"
    if [[ "${wanted}" == all ]] || in_list "${module%%/*}" "${wanted}"; then
      [[ -f "${envs_root}/${module}/.hpctool-env-sha256" ]] || return 0
    fi
  done
  return 1
}

# Lock only to build, and look again once the lock is ours: the node that held it may have built
# everything meanwhile, and then this one builds nothing.
if needs_build; then
  exec 8>"${apps}/.hpctool-conda.lock"
  log "something to build: waiting for the conda lock ${apps#"${R}"}/.hpctool-conda.lock"
  flock -w 7200 8 || die "another node held ${apps#"${R}"}/.hpctool-conda.lock for two hours" \
    "look at /var/log/hpctool/conda.log on the node that is installing (usually the head node)"
  needs_build || log "another node built everything while this one waited for the lock"
else
  log "Miniforge and every environment are built; no lock needed"
fi

if [[ -f "${conda_root}/.hpctool-installed" ]]; then
  log "Miniforge $(cat "${conda_root}/.hpctool-installed") is installed at ${conda_root#"${R}"}"
else
  if [[ -e "${conda_root}" ]]; then
    # No completion marker: an install that was interrupted. Conda prefixes cannot be moved,
    # so it is removed and installed again in place (under the lock).
    log "removing the unfinished install at ${conda_root#"${R}"}"
    rm -rf "${conda_root}"
  fi
  install_miniforge
  log "Miniforge ${version} installed at ${conda_root#"${R}"}"
fi

if ((${#env_files[@]} == 0)); then
  log "no environment files in envs/; nothing to build"
  exit 0
fi
declare -A seen=() found=()
built=0
for file in "${env_files[@]}"; do
  source_name="${file##*/}"
  digest="$(sha256sum "${file}" | awk '{ print $1 }')"
  module="$(module_of "${file}" "${digest}")"
  found[${module%%/*}]=1
  if [[ "${wanted}" != all ]] && ! in_list "${module%%/*}" "${wanted}"; then
    log "environment ${module}: not in --envs ${wanted}, skipped"
    continue
  fi
  built=$((built + 1))
  if [[ -n "${seen[${module}]:-}" ]]; then
    die "envs/${source_name} and envs/${seen[${module}]} both declare module ${module}" "give each file its own NAME/VERSION"
  fi
  seen[${module}]="${source_name}"
  name="${module%%/*}"
  module_version="${module#*/}"
  prefix="${envs_root}/${name}/${module_version}"
  marker="${prefix}/.hpctool-env-sha256"
  if [[ -f "${marker}" ]]; then
    if [[ "$(cat "${marker}")" != "${digest}" ]]; then
      die "envs/${source_name} changed, but module ${module} was already built from other content" \
        "bump the version in its '# hpctool-module: ${name}/VERSION' line; running jobs keep the old version"
    fi
    log "environment ${module}: already built"
  else
    if [[ -e "${prefix}" ]]; then
      log "environment ${module}: removing an unfinished build"
      rm -rf "${prefix}"
    fi
    log "environment ${module}: creating from envs/${source_name}"
    mkdir -p "$(dirname "${prefix}")"
    node_conda_env_create "${conda_root}" "${prefix}" "${file}" ||
      die "creating environment ${module} from envs/${source_name} failed" \
        "see the solver output above; check that every pinned package exists on the env's channels"
    printf '%s\n' "${digest}" >"${marker}"
    log "environment ${module}: created"
  fi
  log "modulefile ${module}.lua: $(write_modulefile "${name}" "${module_version}" "${prefix}" "${source_name}" "${digest}")"
done
if [[ "${wanted}" != all ]]; then
  for name in ${wanted//,/ }; do
    [[ -n "${found[${name}]:-}" ]] || die "--envs names '${name}', but no file in envs/ declares that module" \
      "modules in envs/: ${!found[*]}"
  done
fi
log "${built} environment(s) ready as modules under ${modulefiles#"${R}"}"
