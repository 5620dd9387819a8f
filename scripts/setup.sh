#!/usr/bin/env bash
# Install what hpctool needs on a Debian 12 machine: Debian packages, uv, and the .venv.
# Idempotent: a second run checks and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  debootstrap iproute2 util-linux                        # the twin: its node image, bridge and hosts
  lmod                                                   # module system of the node bootstrap (bats tests)
  bwa samtools bcftools tabix                            # the germline workflow's tools (local runs)
  shellcheck bats                                        # tests of bootstrap/
  mdadm                                                  # NVMe RAID0 scratch (bootstrap)
  chromium chromium-driver nodejs sudo                   # report pages, notebooks: browser tests, proxy, visudo
  openssh-server openssh-client rsync                    # hpctool remote (tests start their own sshd)
  time                                                   # GNU time: peak memory in benchmarks
)
# Debian's npm, unless node already brings its own (NodeSource's nodejs ships npm and conflicts).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: Debian packages missing: ${missing[*]}; run 'make setup' as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv"
  python3 -m pip install -q uv
fi
# Never let uv download an interpreter: the machine's Python 3.11+ is used.
export UV_PYTHON_DOWNLOADS=never
# Trust the system's certificate store too (machines behind a TLS-inspecting registry mirror).
export UV_NATIVE_TLS=1
# Bytecode compiled at install, as pip and pipx do: with PYTHONDONTWRITEBYTECODE set (as on the
# CI machines) every Python start (hpctool, each submitit job, each Snakemake job) would otherwise
# compile its imports from source again (about 80 ms of `hpctool submit`'s start, measured).
export UV_COMPILE_BYTECODE=1
uv sync --frozen --quiet

# checkov (tests/test_security.py) in a venv of its own: it pins dpath==2.1.3, Snakemake needs
# dpath>=2.1.6, so it cannot join the dev group.
CHECKOV_VERSION=3.3.30
if [[ "$(.tools/checkov/bin/checkov --version 2>/dev/null)" != "$CHECKOV_VERSION" ]]; then
  echo "setup: installing checkov $CHECKOV_VERSION into .tools/checkov"
  uv venv --quiet --allow-existing .tools/checkov
  uv pip install --quiet --python .tools/checkov/bin/python "checkov==$CHECKOV_VERSION"
fi

# ParallelCluster's node daemons (slurm_resume, clustermgtd, ...; hpctool.twin.ec2, docs/twin-pcnode.md)
# in a venv of their own: their top-level import names (aws, common, slurm_plugin) are generic.
PCNODE_VERSION=3.16.1
if [[ "$(.tools/pcnode/bin/python -c 'import importlib.metadata as m; print(m.version("aws-parallelcluster-node"))' 2>/dev/null)" != "$PCNODE_VERSION" ]]; then
  echo "setup: installing aws-parallelcluster-node $PCNODE_VERSION into .tools/pcnode"
  uv venv --quiet --allow-existing .tools/pcnode
  uv pip install --quiet --python .tools/pcnode/bin/python "aws-parallelcluster-node==$PCNODE_VERSION"
fi

# JupyterHub's proxy, from npm, into the checkout (.npm/, gitignored): no global install.
CHP_VERSION=5.3.0
if [[ "$(cat .npm/chp-version 2>/dev/null)" != "$CHP_VERSION" || ! -x .npm/bin/configurable-http-proxy ]]; then
  echo "setup: installing configurable-http-proxy $CHP_VERSION (npm)"
  npm install --global --prefix "$PWD/.npm" --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$CHP_VERSION" >/dev/null
  echo "$CHP_VERSION" > .npm/chp-version
fi
# The twin's node image (Debian 13, Slurm 24.11): built once, rebuilt when its package list changes.
.venv/bin/hpctool local image build >/dev/null
echo "setup: ready (.venv with $(.venv/bin/python --version), node image $(.venv/bin/hpctool local image --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["slurm"])'))"
