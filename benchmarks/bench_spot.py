"""Spot interruptions on the twin: how fast a notice becomes requeued jobs and a drained node, and
how much work an interruption costs with and without a checkpoint.

Latency comes from the handler's own JSON-lines log (``done`` records) and the emulator's notice
time. Work lost counts the steps of :class:`hpctool.jobs.work.CheckpointedSum` that ran more than once.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool import jobs
from hpctool.polling import poll_until
from hpctool.twin import Twin, spot

NOTICES = 20
STEPS, STEP_SECONDS, NOTICE_AFTER_STEPS = 40, 0.25, 20
RUNS_PER_MODE = 2


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _wait(predicate, timeout: float = 120, what: str = "condition"):
    return poll_until(predicate, timeout=timeout, on_timeout=lambda: RuntimeError(f"timed out waiting for {what}"))


def _running_on(twin: Twin, job_id: str, node: str) -> bool:
    job = twin.slurm.job(job_id)
    return job.get("JobState") == "RUNNING" and job.get("NodeList") == node


def _jobs_on(twin: Twin, node: str, others: list[str], queue: str, count: int) -> list[str]:
    """``count`` requeueable jobs running on ``node`` (others drained while they start, not pinned)."""
    for other in others:
        twin.slurm.update_node(other, "drain", reason="bench: steer jobs")
    ids = []
    for index in range(count):
        # Half plain batch scripts (signal to the batch shell), half with a job step (signal to the step).
        wrap = "sleep 600" if index % 2 == 0 else "srun sleep 600"
        ids.append(twin.slurm.sbatch([f"--partition={queue}", "--constraint=static", "--requeue", "--output=/dev/null",
                                      "--job-name=bench-spot"], wrap=wrap))
    for job_id in ids:
        _wait(lambda j=job_id: _running_on(twin, j, node), what=f"job {job_id} on {node}")
    if count > 1:
        _wait(lambda: len(twin.slurm.run(["squeue", "-h", "-s", "-w", node, "-o", "%i"]).stdout.split()) >= count
              + count // 2, what="job steps")
    for other in others:
        twin.slurm.update_node(other, "resume")
    return ids


def notice_latency(twin: Twin, nodes: list[str], queue: str) -> tuple[list[float], list[float], int]:
    """Per notice: issued -> done (includes the poll interval) and handler's notice -> done."""
    issued_to_done, seen_to_done, requeued = [], [], 0
    for index in range(NOTICES):
        node = nodes[index % len(nodes)]
        others = [n for n in nodes if n != node]
        ids = _jobs_on(twin, node, others, queue, count=2)
        notice = spot.send_spot_notice(twin, node, deadline_s=600)
        done = spot.wait_notice_handled(twin, node, notice)
        requeued += len(done["requeued"]) + len(done["requeued_by_job"])
        issued_to_done.append(done["ts"] - notice.issued_at)
        seen_to_done.append(done["seconds"])
        twin.slurm.cancel(ids)
        spot.restore_node(twin, node)
        _progress(f"notice {index + 1}/{NOTICES} on {node}: {issued_to_done[-1]:.2f} s")
    return issued_to_done, seen_to_done, requeued


def work_lost(twin: Twin, nodes: list[str], queue: str, checkpointing: bool, folder: Path) -> float:
    """Seconds of computation run twice because of one interruption."""
    trace = folder / f"trace-{checkpointing}-{time.monotonic_ns()}"
    job = jobs.submit(jobs.CheckpointedSum(STEPS, STEP_SECONDS, str(trace), checkpointing=checkpointing),
                      resources=jobs.Resources(queue=queue, time_min=30, name="bench-work"), folder=folder)
    _wait(lambda: trace.exists() and len(trace.read_text().splitlines()) >= NOTICE_AFTER_STEPS, what="progress")
    node = twin.slurm.job(job.job_id)["NodeList"]
    notice = spot.send_spot_notice(twin, node, deadline_s=600)
    spot.wait_notice_handled(twin, node, notice)
    assert job.result() == jobs.CheckpointedSum(STEPS, 0)()
    spot.restore_node(twin, node)
    executed = len(trace.read_text().splitlines())
    return (executed - STEPS) * STEP_SECONDS


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        layout = twin.layout()
        # Static spot nodes: a dynamic one would add its boot to the latency (and Slurm powers it
        # down while drained, which `resume` then refuses).
        nodes = [n.name for n in layout.static_nodes() if n.spot]
        queue = next(q["name"] for q in layout.queues if q["spot"])
        for node in nodes:
            spot.restore_node(twin, node)
        issued, seen, requeued = notice_latency(twin, nodes, queue)
        with tempfile.TemporaryDirectory(prefix="hpctool-bench-spot-") as tmp:
            with_ckpt = [work_lost(twin, nodes, queue, True, Path(tmp)) for _ in range(RUNS_PER_MODE)]
            without = [work_lost(twin, nodes, queue, False, Path(tmp)) for _ in range(RUNS_PER_MODE)]
    done_by = NOTICE_AFTER_STEPS * STEP_SECONDS
    print(f"""
## Spot interruptions

`python -m benchmarks spot`: {NOTICES} notices on the twin's spot nodes, each with 2 running requeueable
jobs (a plain batch script and one with a job step), through the real handler (poll interval {spot.HANDLER_INTERVAL_S:g} s on
the twin, 2 s on EC2) and IMDS emulator. Requeued: {requeued} of {2 * NOTICES} jobs.

| notice -> all jobs requeued and node drained | median | p95 | max |
|---|---|---|---|
| from the emulator serving it (includes the poll wait) | {statistics.median(issued):.2f} s | {_p95(issued):.2f} s | {max(issued):.2f} s |
| from the handler seeing it | {statistics.median(seen):.2f} s | {_p95(seen):.2f} s | {max(seen):.2f} s |

Work lost per interruption: a {STEPS}-step computation ({STEPS * STEP_SECONDS:.0f} s of work), noticed after
{NOTICE_AFTER_STEPS} steps ({done_by:.0f} s done), {RUNS_PER_MODE} runs each; both give the uninterrupted result.

| | work run twice (mean) | |
|---|---|---|
| `Checkpointable` (checkpoint on USR2) | {statistics.mean(with_ckpt):.2f} s | {statistics.mean(with_ckpt) / done_by:.0%} of the work done |
| same job without checkpoint (requeued, reruns) | {statistics.mean(without):.2f} s | {statistics.mean(without) / done_by:.0%} of the work done |
""")
