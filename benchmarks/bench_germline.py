"""Germline workflow on the twin vs `snakemake --cores 2` on this machine (same data, same tools),
and where a user's wait goes: each Slurm job split into submit -> RUNNING -> its command starts
-> the command ends -> the job ends -> Snakemake sees it finished. The same split for jobs of
`hpctool submit`.

Measured in one go: the local run (baseline), the twin run as `hpctool run` starts it (twin
profile, one Slurm job per rule and sample, one Snakemake per job), the same with the plugin's
job step (a second Snakemake under srun in every job), and without hpctool's cap on the plugin's
status-check back-off.

Sources: the time each line of Snakemake's output arrived (submissions, "Finished jobid"),
sacct's Start and End of each job (whole seconds), and a PATH shim around bwa, samtools and
bcftools that logs when each tool starts and ends inside a job (SLURM_JOB_ID), exported to the
jobs with the rest of the environment.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks import twin_up
from hpctool import jobs
from hpctool.twin import Twin
from hpctool.workflow import launch, rules, snakemake_main

TOOLS = ["bwa", "samtools", "bcftools"]
SUBMIT_JOBS = 4
_SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
_FINISHED = re.compile(r"Finished jobid: \S+ \(Rule: (\w+)\)")


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _tool_shim(folder: Path, log: Path) -> Path:
    shim = folder / "tool-shim"
    shim.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        if real is None:
            raise SystemExit(f"{tool} is not installed (make setup)")
        (shim / tool).write_text(
            "#!/bin/sh\n"
            f'echo "$(date +%s.%N) start ${{SLURM_JOB_ID:-host}}" >> "{log}"\n'
            f'"{real}" "$@"\nrc=$?\n'
            f'echo "$(date +%s.%N) end ${{SLURM_JOB_ID:-host}}" >> "{log}"\n'
            "exit $rc\n")
        (shim / tool).chmod(0o755)
    return shim


def _run(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, list[tuple[float, str]]]:
    """Makespan and every output line with the time it arrived."""
    lines: list[tuple[float, str]] = []
    started = time.time()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    with open(log, "w") as sink:
        for line in process.stdout:
            lines.append((time.time(), line.rstrip("\n")))
            sink.write(line)
    code = process.wait()
    makespan = time.time() - started
    if code != 0:
        raise SystemExit(f"benchmark run failed (exit {code}); see {log}")
    _progress(f"{log.stem}: {makespan:.1f} s")
    return makespan, lines


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _acct_times(twin: Twin, job_id: str) -> tuple[float, float]:
    """sacct's Start and End of a job; End reads 'Unknown' until slurmdbd has the job's end."""
    for _ in range(40):
        row = twin.slurm.run(["sacct", "-X", "-n", "-P", "-o", "Start,End", "-j", job_id]).stdout.split()
        if row and "Unknown" not in row[0]:
            start, end = row[0].split("|")
            return _epoch(start), _epoch(end)
        time.sleep(0.25)
    raise SystemExit(f"sacct has no end for job {job_id}")


def _without(argv: list[str], option: str, takes_value: bool = False) -> list[str]:
    """The same command without one of hpctool's launcher options."""
    at = argv.index(option)
    return argv[:at] + argv[at + (2 if takes_value else 1):]


def _breakdown(twin: Twin, run_dir: Path, lines: list[tuple[float, str]], tool_log: Path) -> list[dict]:
    """One row per Slurm job of the run: its rules and the seconds of each phase."""
    submitted: dict[str, float] = {}
    for at, line in lines:
        found = _SUBMITTED.search(line)
        if found:
            submitted[found.group(1)] = at
    finished = [(at, m.group(1)) for at, line in lines if (m := _FINISHED.search(line))]
    tools: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for entry in tool_log.read_text().split("\n"):
        parts = entry.split()
        if len(parts) == 3:
            (tools if parts[1] == "start" else ends).setdefault(parts[2], []).append(float(parts[0]))
    acct = {job_id: _acct_times(twin, job_id) for job_id in submitted}
    rows = []
    for record in rules.submitted_jobs(run_dir):
        job_id = record.slurm_job_id
        if job_id not in submitted or job_id not in acct or job_id not in tools:
            continue
        sub = submitted[job_id]
        start, end = acct[job_id]
        seen = min(at for at, rule in finished if rule in record.rules and at >= sub)
        rows.append({"job": "+".join(record.rules), "submit_to_running": max(0.0, start - sub),
                     "running_to_command": min(tools[job_id]) - start,
                     "command": max(ends[job_id]) - min(tools[job_id]),
                     "command_to_job_end": max(0.0, end - max(ends[job_id])),
                     "job_end_to_seen": max(0.0, seen - end), "total": seen - sub})
    return rows


def _submit_breakdown(twin: Twin, folder: Path) -> list[dict]:
    """`hpctool submit -- CMD` jobs: submit -> RUNNING -> command -> result() returns."""
    queue = next(q["name"] for q in twin.layout().queues if not q["spot"])
    rows = []
    for index in range(SUBMIT_JOBS):
        stamps = folder / f"submit-{index}.txt"
        command = f"date +%s.%N > {stamps}; sleep 0.2; date +%s.%N >> {stamps}"
        sub = time.time()
        submitted, _ = jobs.submit_work(jobs.Resources(queue=queue, time_min=5, name="bench-submit"),
                                        command=command, folder=folder / "jobs")
        returned = time.time()
        result = jobs.wait_results(submitted)
        seen = time.time()
        if result[0]["state"] != "COMPLETED":
            raise SystemExit(f"hpctool submit job failed: {result}")
        begin, end = (float(v) for v in stamps.read_text().split())
        start, job_end = _acct_times(twin, submitted[0].job_id)
        rows.append({"job": f"submit {index + 1}", "sbatch": returned - sub, "submit_to_running": max(0.0, start - sub),
                     "running_to_command": begin - start, "command": end - begin,
                     "command_to_job_end": max(0.0, job_end - end), "job_end_to_seen": max(0.0, seen - job_end),
                     "total": seen - sub})
    return rows


PHASES = ["submit_to_running", "running_to_command", "command", "command_to_job_end", "job_end_to_seen"]


def _table(rows: list[dict]) -> list[str]:
    header = ("| job | submit -> RUNNING | RUNNING -> command starts | command | command ends -> job ends "
              "| job ends -> seen finished | total |")
    out = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        out.append(f"| {row['job']} | " + " | ".join(f"{row[p]:.1f} s" for p in PHASES) + f" | {row['total']:.1f} s |")
    sums = {p: sum(r[p] for r in rows) for p in [*PHASES, "total"]}
    out.append("| **sum** | " + " | ".join(f"{sums[p]:.1f} s ({sums[p] / sums['total']:.0%})" for p in PHASES)
               + f" | {sums['total']:.1f} s |")
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-germline-"))
    data = work / "data"
    subprocess.run([sys.executable, str(launch.TEST_DATA_SCRIPT), str(data), "--seed", "7"], check=True)

    def folder(name: str) -> Path:
        path = work / name
        path.mkdir()
        (path / launch.TEST_DATA_DIR).symlink_to(data)
        return path

    tool_log = work / "tools.log"
    tool_log.touch()
    env = dict(os.environ)
    env["PATH"] = f"{_tool_shim(work, tool_log)}:{env.get('PATH', '')}"
    _progress("local run (--cores 2)")
    local_s, _ = _run(launch.snakemake_argv("germline", folder("local"), profile=None, test=True, cores=2),
                      env, work / "local.log")
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        env["SLURM_CONF"] = str(twin.slurm_conf)
        _progress("twin run, twin profile, the plugin's own status-check back-off")
        twin_argv = launch.snakemake_argv("germline", folder("backoff"), profile="twin", test=True)
        backoff_s, _ = _run(_without(twin_argv, snakemake_main.CEILING_OPTION, takes_value=True), env,
                            work / "backoff.log")
        _progress("twin run, twin profile, the plugin's job step (two Snakemake starts per job)")
        jobstep_argv = launch.snakemake_argv("germline", folder("jobstep"), profile="twin", test=True)
        jobstep_s, _ = _run(_without(jobstep_argv, snakemake_main.BATCH_STEP_OPTION), env, work / "jobstep.log")
        _progress("twin run, twin profile (one Slurm job per rule and sample)")
        twin_dir = folder("twin")
        twin_s, lines = _run(launch.snakemake_argv("germline", twin_dir, profile="twin", test=True), env,
                             work / "twin.log")
        rows = _breakdown(twin, twin_dir, lines, tool_log)
        _progress("\n".join(_table(rows)))
        _progress(f"{SUBMIT_JOBS} jobs of hpctool submit")
        submit_rows = _submit_breakdown(twin, work)

    print("\n## germline\n")
    print("`python -m benchmarks germline`: the 4-sample test data set (seed 7, 50 kb reference, 6000 read "
          "pairs per sample), the same workflow and tools, four runs in one go.\n")
    print("| run | makespan | Slurm jobs | ratio to local |")
    print("|---|---|---|---|")
    print(f"| `snakemake --cores 2` on this machine (baseline) | {local_s:.1f} s | 0 | 1.0x |")
    print(f"| twin, `--profile twin` | {twin_s:.1f} s | {len(rows)} | **{twin_s / local_s:.1f}x** |")
    print(f"| twin, `--profile twin` with the plugin's job step (no `{snakemake_main.BATCH_STEP_OPTION}`) | "
          f"{jobstep_s:.1f} s | {len(rows)} | {jobstep_s / local_s:.1f}x |")
    print(f"| twin, `--profile twin` with the plugin's own back-off (no `{snakemake_main.CEILING_OPTION}`) | "
          f"{backoff_s:.1f} s | {len(rows)} | {backoff_s / local_s:.1f}x |\n")
    print("Where the time of each Slurm job of the `--profile twin` run goes (submit: Snakemake's output line; "
          "RUNNING and job end: sacct, whole seconds; command: the tools' own start and end inside the job):\n")
    print("\n".join(_table(rows)))
    print(f"\n`hpctool submit -- CMD` jobs (a 0.2 s command, {SUBMIT_JOBS} one after the other; seen = "
          f"`result()` returns; `hpctool submit` itself took a median "
          f"{statistics.median(r['sbatch'] for r in submit_rows):.2f} s to return):\n")
    print("\n".join(_table(submit_rows)))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
