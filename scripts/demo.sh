#!/usr/bin/env bash
# The local demo (`make demo`): the twin from the default config, then each part in demo.d/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "== starting the local Slurm twin (cluster-configs/default.yaml)"
hpctool local up
eval "$(hpctool local env)"
# Work folders where every node sees them, as a cluster's /home: each node's /tmp is its own.
export HPCTOOL_DEMO_DIR="${HPCTOOL_DEMO_DIR:-$HOME/hpctool-demo}"
mkdir -p "$HPCTOOL_DEMO_DIR"

for part in scripts/demo.d/*.sh; do
  echo
  echo "== $(sed -n 's/^# demo: //p' "$part")"
  bash "$part"
done
echo
echo "demo finished; the twin is still up (stop it with: .venv/bin/hpctool local down)"
