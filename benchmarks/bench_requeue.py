"""Short spot jobs under notices that leave little or no checkpoint budget: is any job misreported?

The case of issue 24: `hpctool submit --queue spot --time 5 --wait -- 'sleep 20'` noticed with a
deadline of 10 s (a budget of 0 s: the handler requeues at once while the job's submitit handler
requeues too) was reported FAILED in 2 of 9 tries. Here, per budget (0, 1 and 5 s), TRIES notices,
two at a time (both static spot nodes), each node running four 5-minute jobs (a Python callable and a shell command, each
checkpointable and not). Counted: jobs whose caller saw anything but their real result, jobs not
requeued exactly once, jobs lost. The baseline is the same jobs without a notice (all must pass).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool import jobs
from hpctool.polling import poll_until
from hpctool.twin import Twin, spot

TRIES = 20
BUDGETS = (0, 1, 5)
MARGIN_S = 10  # the handler's --margin: a deadline of 10 + b seconds leaves a budget of b


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _cases(folder: Path) -> dict[str, tuple[object, object]]:
    state, runs = folder / "shell.state", folder / "shell.runs"
    return {
        "python-checkpointable": (jobs.CheckpointedSum(16, 0.5, str(folder / "sum.trace")), jobs.CheckpointedSum(16, 0)()),
        "python-plain": (functools.partial(subprocess.check_output, ["bash", "-c", "sleep 8; echo done"], text=True),
                         "done\n"),
        "shell-checkpointable": (jobs.ShellCommand(
            f"i=$(cat {state} 2>/dev/null || echo 0); trap 'echo $i > {state}; exit 0' USR2; "
            f"while [ $i -lt 16 ]; do sleep 0.5; i=$((i+1)); done"), 0),
        "shell-plain": (jobs.ShellCommand(f"echo run >> {runs}; sleep 8"), 0),
    }


def one_round(twin: Twin, cluster, nodes: list[str], queue: str, budget: float | None,
              folder: Path) -> dict[str, int]:
    """Four jobs on each of ``nodes`` (static nodes weigh less than dynamic ones: the scheduler fills
    them first, as on ParallelCluster), a notice on each leaving ``budget`` (None: no notice); what went wrong."""
    resources = jobs.Resources(queue=queue, time_min=5, name="bench-requeue")
    submitted, expected = {}, {}
    for node in nodes:
        (folder / node).mkdir()
        for name, (work, result) in _cases(folder / node).items():
            submitted[f"{node} {name}"] = jobs.submit(work, resources=resources, folder=folder, cluster=cluster)
            expected[f"{node} {name}"] = result
    ids = [job.job_id for job in submitted.values()]
    poll_until(lambda: all(twin.slurm.job(i).get("JobState") == "RUNNING" for i in ids), timeout=60,
               on_timeout=lambda: RuntimeError("jobs did not start"))
    if budget is not None:
        time.sleep(1.5)  # the checkpointable ones have made progress
        notices = {node: spot.send_spot_notice(twin, node, deadline_s=MARGIN_S + budget) for node in nodes}
        for node, notice in notices.items():
            spot.wait_notice_handled(twin, node, notice)
        for node in nodes:
            spot.restore_node(twin, node)
    wrong = 0
    for name, job in submitted.items():
        try:
            wrong += job.result() != expected[name]
        except Exception:  # noqa: BLE001 (a job reported failed is what is counted)
            wrong += 1
    restarts = [int(twin.slurm.job(i).get("Restarts", "0")) for i in ids]
    return {"misreported": wrong, "requeued_not_once": sum(r != (0 if budget is None else 1) for r in restarts),
            "jobs": len(ids), "notices": 0 if budget is None else len(nodes)}


def main() -> None:
    twin = Twin(progress=_progress)
    totals: dict[str, dict[str, int]] = {}
    started = time.monotonic()
    with twin.exclusive_use():
        twin_up(twin)
        twin.resume_nodes()
        os.environ.update(twin.env())  # submitit's sbatch and srun: the twin's
        layout = twin.layout()
        nodes = [n.name for n in layout.static_nodes() if n.spot]  # the two static spot nodes
        queue = next(q["name"] for q in layout.queues if q["spot"])
        cluster = jobs.resolve_cluster(twin.slurm)
        for node in nodes:
            spot.restore_node(twin, node)
        for label, budget in [("no notice (baseline)", None)] + [(f"budget {b} s", b) for b in BUDGETS]:
            total = {"misreported": 0, "requeued_not_once": 0, "jobs": 0, "notices": 0}
            for attempt in range(-(-TRIES // len(nodes)) if budget is not None else 1):
                with tempfile.TemporaryDirectory(prefix="hpctool-bench-requeue-", dir=twin.paths.home) as tmp:
                    outcome = one_round(twin, cluster, nodes, queue, budget, Path(tmp))
                for key, value in outcome.items():
                    total[key] += value
                _progress(f"{label}, try {attempt + 1}: {outcome}")
            totals[label] = total
    rows = "\n".join(f"| {label} | {t['notices']} | {t['jobs']} | {t['misreported']} | {t['requeued_not_once']} |"
                     for label, t in totals.items())
    print(f"""
## Short spot jobs under a notice: no misreported job

`python -m benchmarks requeue`: {TRIES} notices per checkpoint budget, on the two static spot nodes at once,
each running four 5-minute jobs (a Python callable and a shell command, checkpointable and not), through the real handler
and IMDS emulator; the jobs' callers wait for their results. {time.monotonic() - started:.0f} s in all.

| run | notices | jobs | misreported (caller saw another result) | not requeued exactly once |
|---|---|---|---|---|
{rows}
""")
