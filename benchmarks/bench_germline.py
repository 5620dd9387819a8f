"""Germline workflow: makespan of the 4-sample run through Slurm on the twin vs `snakemake --cores 2`
on this machine (same data, same tools), the Slurm status queries the executor makes per minute,
and what the twin profile's 1 s first status check saves against the plugin's default 40 s.

Slurm's client commands are counted with a PATH shim: a folder of one-line wrappers (sacct,
squeue, sbatch, scontrol, sacctmgr, sinfo) that log each call and exec the real program. Calls
made inside jobs (SLURM_JOB_ID set) are counted apart from those of the Snakemake process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hpctool import workflow
from hpctool.twin import Twin

COMMANDS = ["sacct", "squeue", "sbatch", "scontrol", "sacctmgr", "sinfo", "srun"]


def _shim(folder: Path, log: Path) -> Path:
    shim = folder / "shim"
    shim.mkdir()
    for command in COMMANDS:
        real = shutil.which(command)
        if real is None:
            continue
        script = shim / command
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s %s %s\\n" "$(date +%s.%N)" "${{SLURM_JOB_ID:-host}}" "{command}" >> "{log}"\n'
            f'exec "{real}" "$@"\n'
        )
        script.chmod(0o755)
    return shim


def _run(argv: list[str], env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with open(log, "w") as sink:
        code = subprocess.run(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise SystemExit(f"benchmark run failed (exit {code}); see {log}")
    return time.monotonic() - started


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-germline-"))
    data = work / "data"
    subprocess.run([sys.executable, str(workflow.TEST_DATA_SCRIPT), str(data), "--seed", "7"], check=True)

    def folder(name: str) -> Path:
        path = work / name
        path.mkdir()
        (path / workflow.TEST_DATA_DIR).symlink_to(data)
        return path

    local_dir = folder("local")
    print("  local run (--cores 2)", file=sys.stderr, flush=True)
    local_s = _run(workflow.snakemake_argv("germline", local_dir, profile=None, test=True, cores=2),
                   dict(os.environ), work / "local.log")

    calls_log = work / "slurm-calls.log"
    calls_log.touch()
    env = dict(os.environ)
    twin = Twin()
    with twin.exclusive_use():
        twin.up()
        env["SLURM_CONF"] = str(twin.slurm_conf)
        env["PATH"] = f"{_shim(work, calls_log)}:{env.get('PATH', '')}"
        twin_dir = folder("twin")
        print("  twin run (--profile twin)", file=sys.stderr, flush=True)
        twin_s = _run(workflow.snakemake_argv("germline", twin_dir, profile="twin", test=True), env,
                      work / "twin.log")
        jobs = workflow.rule_jobs(twin.slurm, twin_dir)
        default_dir = folder("plugin-default")
        print("  twin run with the plugin's default first status check (40 s)", file=sys.stderr, flush=True)
        default_env = dict(env, PATH=env["PATH"].split(":", 1)[1])  # no shim: count the tuned run only
        default_s = _run(workflow.snakemake_argv("germline", default_dir, profile="twin", test=True,
                                                 extra=["--slurm-init-seconds-before-status-checks", "40"]),
                         default_env, work / "plugin-default.log")

    calls = [line.split() for line in calls_log.read_text().splitlines() if line.strip()]
    by_snakemake = Counter(c[2] for c in calls if c[1] == "host")
    in_jobs = Counter(c[2] for c in calls if c[1] != "host")
    status = by_snakemake["sacct"] + by_snakemake["squeue"]
    minutes = twin_s / 60
    job_seconds = sorted(j.acct.elapsed_seconds for j in jobs)
    median_job = job_seconds[len(job_seconds) // 2] if job_seconds else 0

    print("## germline\n")
    print("`python -m benchmarks germline`: the 4-sample test data set (seed 7, 50 kb reference, 6000 read "
          "pairs per sample), the same workflow and tools, run three times in one go.\n")
    print("| run | makespan | Slurm jobs |")
    print("|---|---|---|")
    print(f"| `snakemake --cores 2` on this machine | {local_s:.1f} s | 0 |")
    print(f"| `--profile twin` (Slurm executor, 8 virtual nodes) | {twin_s:.1f} s | {len(jobs)} |")
    print(f"| **ratio twin / local** | **{twin_s / local_s:.1f}x** | |")
    print(f"| twin, first status check after 40 s (the plugin's default) | {default_s:.1f} s "
          f"({default_s / twin_s:.2f}x the tuned twin run) | {len(jobs)} |\n")
    print(f"- Median Slurm job (sacct Elapsed): {median_job} s, for rules that take well under a second "
          "of tool time here: the job's own Snakemake starts twice (job script, then `srun` step).")
    print(f"- Status queries by the Snakemake process: {status} ({status / minutes:.1f} per minute; "
          f"sacct {by_snakemake['sacct']}, squeue {by_snakemake['squeue']}).")
    others = ", ".join(f"{name} {count}" for name, count in sorted(by_snakemake.items())
                       if name not in {"sacct", "squeue"})
    print(f"- Other Slurm calls by the Snakemake process: {others or 'none'}.")
    inside = ", ".join(f"{name} {count}" for name, count in sorted(in_jobs.items()))
    print(f"- Slurm calls from inside the jobs: {inside or 'none'}.")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
