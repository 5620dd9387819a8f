#!/usr/bin/env bash
# Step lmod: Lmod installed, the cluster's MODULEPATH on shared storage, and a profile.d file that
# gives every login and batch shell the `module` command (bash, zsh and POSIX sh alike).
set -euo pipefail
# shellcheck source=bootstrap/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

lmod_pkg="${R}/usr/share/lmod/lmod"  # where Lmod lives on Debian, Ubuntu, RHEL and Rocky alike
modulefiles="${R}${HPCTOOL_APPS:?}/modulefiles"
profile="${R}/etc/profile.d/z00-hpctool-lmod.sh"

if [[ ! -x "${lmod_pkg}/libexec/lmod" ]]; then
  log "Lmod is not installed; installing it"
  # Debian and Ubuntu call the package lmod, RHEL-like systems (EPEL) Lmod.
  if command -v apt-get >/dev/null 2>&1; then package=lmod; else package=Lmod; fi
  node_pkg_install "${package}" || die "installing the ${package} package failed" \
    "on Amazon Linux 2023, which has no Lmod package, use a custom AMI with Lmod or another OS (Rocky, RHEL, Ubuntu)"
  [[ -x "${lmod_pkg}/libexec/lmod" ]] || die "the ${package} package did not install ${lmod_pkg}/libexec/lmod"
else
  log "Lmod is installed (${lmod_pkg})"
fi

mkdir -p "${modulefiles}"

# POSIX sh on purpose: `sbatch --wrap` runs /bin/sh, where `source` and [[ ]] do not exist.
# Named z00-... so it runs after ParallelCluster's environment-modules profile and replaces its
# `module` function with Lmod's. BASH_ENV gives non-interactive bash batch scripts `module` too.
result="$(write_if_changed "${profile}" 0644 <<PROFILE
# hpctool: Lmod and the cluster's software stack (written by the bootstrap step lmod; do not edit)
if [ -x "${lmod_pkg}/libexec/lmod" ]; then
  case ":\${MODULEPATH:-}:" in
    *":${modulefiles}:"*) ;;
    *) MODULEPATH="${modulefiles}\${MODULEPATH:+:\${MODULEPATH}}"; export MODULEPATH ;;
  esac
  BASH_ENV="${lmod_pkg}/init/bash"; export BASH_ENV
  if [ -n "\${BASH_VERSION:-}" ]; then
    . "${lmod_pkg}/init/bash"
  elif [ -n "\${ZSH_VERSION:-}" ]; then
    . "${lmod_pkg}/init/zsh"
  else
    . "${lmod_pkg}/init/sh"
  fi
fi
PROFILE
)"
log "profile ${profile#"${R}"}: ${result}"
log "MODULEPATH root ${modulefiles#"${R}"} ready"
