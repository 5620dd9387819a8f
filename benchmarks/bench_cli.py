"""CLI start-up: `hpctool --help`, `hpctool jobs`, `hpctool local status` and `hpctool config
validate` as new processes, against baselines measured in the same run: a bare Python start
(`python -c pass`) and, for validate, a Python that only imports ParallelCluster's schema."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.twin import Twin

RUNS = 9
HPCTOOL = Path(sys.executable).with_name("hpctool")


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _median_ms(argv: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        env = twin.env()
        rows = {
            "`python -c pass` (baseline)": _median_ms([sys.executable, "-c", "pass"], env),
            "`hpctool --help`": _median_ms([str(HPCTOOL), "--help"], env),
            "`hpctool jobs` (sacct on the twin)": _median_ms([str(HPCTOOL), "jobs"], env),
            "`hpctool local status`": _median_ms([str(HPCTOOL), "local", "status"], env),
            "`hpctool submit --help`": _median_ms([str(HPCTOOL), "submit", "--help"], env),
            "import ParallelCluster's `ClusterSchema` (baseline for validate)": _median_ms(
                [sys.executable, "-c", "from pcluster.schemas.cluster_schema import ClusterSchema"], env),
            "`hpctool config validate default.yaml`": _median_ms(
                [str(HPCTOOL), "config", "validate", str(DEFAULT_CLUSTER_CONFIG)], env),
        }
    base = rows["`python -c pass` (baseline)"]
    lines = "\n".join(f"| {name} | {ms:.0f} ms | {ms / base:.1f}x |" for name, ms in rows.items())
    print(f"""
## CLI start-up

`python -m benchmarks cli`: each command a new process, median of {RUNS} runs, on the twin. The CLI
imports only the group of the command being run (the others are listed from a table that
`tests/test_cli_startup.py` checks), and `hpctool jobs` reads accounting without importing submitit.

| command | time | vs `python -c pass` |
|---|---|---|
{lines}
""")
