"""Notebooks on the twin: click on Start -> JupyterLab loaded in headless Chromium (the journey of
scripts/notebook_journey.py), against the baseline of the same twin: `sbatch` of a trivial job on
the same queue until squeue shows it RUNNING. The ratio is what JupyterHub, batchspawner, the
proxy and JupyterLab's own start-up add on top of Slurm's scheduling."""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool.notebook.hub import TwinHub, ensure_user
from hpctool.twin import Twin

RUNS = 3
USER = "nbbench"
REPO = Path(__file__).resolve().parents[1]


def _sbatch_until_running(twin: Twin) -> float:
    slurm = twin.slurm
    started = time.monotonic()
    job = slurm.sbatch(["--partition=compute", "--cpus-per-task=1", "--mem=1G"], wrap="sleep 60")
    while slurm.run(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip() != "RUNNING":
        time.sleep(0.05)
    seconds = time.monotonic() - started
    slurm.cancel([job])
    return seconds


def _journey(url: str, password: str, out: Path) -> float:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "notebook_journey.py"), url, USER,
                             "--queue", "compute", "--out", str(out)], input=password + "\n",
                            capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"notebook journey failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    twin = Twin()
    work = Path(tempfile.mkdtemp(prefix="bench-notebook-"))
    password = secrets.token_urlsafe(12)
    with twin.exclusive_use():
        twin_up(twin)
        ensure_user(twin, USER, password, ("hpctool-notebook",))
        hub = TwinHub(twin)
        hub.up()
        try:
            baseline, lab = [], []
            for run in range(RUNS):
                print(f"  run {run + 1}/{RUNS}", file=sys.stderr, flush=True)
                baseline.append(_sbatch_until_running(twin))
                lab.append(_journey(hub.url, password, work / f"run{run}"))
                time.sleep(2)  # the cancelled job leaves its node
        finally:
            hub.down()
    base_median, lab_median = statistics.median(baseline), statistics.median(lab)
    print(f"""
## Notebooks (JupyterHub + batchspawner on the twin)

Click on Start in the hub's form (queue `compute`, 1 CPU) until JupyterLab has loaded in headless
Chromium, against `sbatch` of a trivial job on the same queue until squeue shows it RUNNING:

| measure | runs | median | each |
| --- | --- | --- | --- |
| baseline: `sbatch` -> RUNNING | {RUNS} | {base_median:.2f} s | {', '.join(f'{t:.2f}' for t in baseline)} s |
| Start -> JupyterLab loaded | {RUNS} | {lab_median:.1f} s | {', '.join(f'{t:.1f}' for t in lab)} s |

A notebook takes {lab_median / base_median:.0f}x the time Slurm needs to start a job: the job itself
starts as fast, the rest is Python importing JupyterLab on the node, the server reporting its port
to the hub, the hub's readiness check, the proxy route and JupyterLab's page load.
""")


if __name__ == "__main__":
    main()
