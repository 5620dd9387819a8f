#!/usr/bin/env bash
# demo: notebooks: log in to JupyterHub on the twin, JupyterLab as a Slurm job on compute (headless Chromium)
set -euo pipefail
: "${HPCTOOL_DEMO_DIR:=$HOME/hpctool-demo}"; mkdir -p "$HPCTOOL_DEMO_DIR"
work=$(mktemp -d "$HPCTOOL_DEMO_DIR"/notebook.XXXXXX)
hpctool local hub up >/dev/null

# A real Unix user in the allowed group, with a Slurm association; its password stays in a root-only file.
secret="${HPCTOOL_HOME:-$HOME/.local/share/hpctool}/hub/demo-password"
python - "$secret" <<'PY'
import secrets, sys
from pathlib import Path
from hpctool.notebook.hub import ensure_user
from hpctool.atomic import write_atomic
from hpctool.twin import Twin
path = Path(sys.argv[1])
if not path.exists():
    write_atomic(path, secrets.token_urlsafe(12) + "\n", mode=0o600)
ensure_user(Twin(), "nbdemo", path.read_text().strip(), ("hpctool-notebook",))
PY

url=$(hpctool local hub status --json | python -c 'import json, sys; print(json.load(sys.stdin)["url"])')
result=$(python scripts/notebook_journey.py "$url" nbdemo --queue compute --out "$work" <"$secret")
python - "$result" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
print(f"clicked Start on queue compute: JupyterLab loaded as a Slurm job after {result['seconds']:.1f} s, "
      "then stopped from the hub (job cancelled)")
print(f"screenshot: {result['screenshots']['jupyterlab']}")
PY
sacct -X -u nbdemo -o JobID,User,Partition,NodeList,State | tail -n 1
hpctool local hub status | sed -n '2,3p'
echo "log in yourself as nbdemo (password: sudo cat $secret)"
