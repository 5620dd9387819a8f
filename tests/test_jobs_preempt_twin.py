"""Truthful results on the real twin: a job preempted by a spot notice and requeued is reported
as what it finally did, whatever its time limit, and the preemption uses up none of its timeouts.

Eight jobs, one per case: time limit 5 or 60 minutes x Python callable or shell command x
checkpointable or not, under notices that leave checkpoint budgets of 0, 1, 5 and 50 s. They fill both spot nodes (4 CPUs each), both nodes get a notice through
their IMDS emulators, the real handlers drain them and signal the jobs, and once the nodes are
restored every job must end COMPLETED with its right result. Before hpctool.jobs.runner, the
5-minute jobs without a checkpoint came back as failed (submitit's guaranteed-walltime rule took
every USR2 for a timeout) and the others each lost one of their allowed timeouts.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest
from submitit.core.utils import DelayedSubmission

from hpctool import jobs
from hpctool.twin import spot
from support.twin import wait_all_idle, wait_for, wait_job

pytestmark = pytest.mark.twin


def _running(twin, job_ids: list[str]) -> dict[str, str]:
    return {j["JobId"]: j.get("NodeList", "") for j in twin.slurm.jobs()
            if j["JobId"] in job_ids and j.get("JobState") == "RUNNING"}


# The handler keeps 10 s (--margin) before the reclaim: a deadline of 10 s leaves a checkpoint
# budget of 0 (it requeues at once, while the jobs requeue themselves too), 11 s leaves 1 s,
# 15 s leaves 5 s, 60 s leaves 50 s. One notice per spot node, each with its own deadline.
DEADLINES = [pytest.param((10, 15), id="budgets-0-and-5"), pytest.param((11, 60), id="budgets-1-and-50")]


@pytest.mark.parametrize("deadlines", DEADLINES)
def test_a_spot_notice_never_fails_a_requeued_job_and_uses_up_no_timeout(twin, tmp_path, deadlines):
    layout = twin.layout()
    nodes = [n.name for n in layout.static_nodes() if n.spot]  # the 8 jobs fill these two
    queue = next(q["name"] for q in layout.queues if q["spot"])
    spot.start_services(twin, layout)
    cluster = jobs.resolve_cluster(twin.slurm)
    assert queue in cluster.spot  # the twin's spot nodes carry the `spot` feature

    trace = {limit: tmp_path / f"sum-{limit}.trace" for limit in (5, 60)}
    submitted: dict[str, object] = {}
    expected: dict[str, object] = {}
    for limit in (5, 60):
        resources = jobs.Resources(queue=queue, time_min=limit, name=f"preempt-{limit}")
        state, runs = tmp_path / f"shell-{limit}.state", tmp_path / f"shell-{limit}.runs"
        cases = {
            # Python, checkpointable: resumes from its state.
            f"py-ckpt-{limit}": (jobs.CheckpointedSum(16, 0.5, str(trace[limit])), jobs.CheckpointedSum(16, 0)()),
            # Python, no checkpoint at all (a plain callable): starts over, says which run it was.
            f"py-plain-{limit}": (functools.partial(subprocess.check_output, [
                "bash", "-c", "sleep 6; echo run ${SLURM_RESTART_COUNT:-0}"], text=True), "run 1\n"),
            # Shell that traps USR2 and saves its counter; shell that does not (starts over).
            f"sh-ckpt-{limit}": (jobs.ShellCommand(
                f"i=$(cat {state} 2>/dev/null || echo 0); trap 'echo $i > {state}; exit 0' USR2; "
                f"while [ $i -lt 12 ]; do sleep 0.5; i=$((i+1)); done"), 0),
            f"sh-plain-{limit}": (jobs.ShellCommand(f"echo run ${{SLURM_RESTART_COUNT:-0}} >> {runs}; sleep 6"), 0),
        }
        for name, (work, result) in cases.items():
            submitted[name] = jobs.submit(work, resources=resources, folder=tmp_path, cluster=cluster)
            expected[name] = result
    ids = [job.job_id for job in submitted.values()]
    wait_for(lambda: len(_running(twin, ids)) == 8, what="all 8 jobs running on the 2 spot nodes")
    wait_for(lambda: all(p.exists() and len(p.read_text().split("\n")) > 3 for p in trace.values()),
             what="the checkpointed sums to make progress")

    notices = {node: spot.send_spot_notice(twin, node, deadline_s=deadline)
               for node, deadline in zip(nodes, deadlines, strict=True)}
    try:
        done = {node: spot.wait_notice_handled(twin, node, notice) for node, notice in notices.items()}
        # Each job requeued once: by itself through submitit, or by the handler when its budget
        # ran out first (a job's requeue that then fails never becomes its result).
        by_job = [j for event in done.values() for j in event["requeued_by_job"]]
        by_handler = [j for event in done.values() for j in event["requeued"] if j not in event["requeued_by_job"]]
        assert sorted(by_job + by_handler) == sorted(ids)
    finally:
        for node in nodes:
            spot.restore_node(twin, node)

    results = {name: job.result() for name, job in submitted.items()}  # raises if reported failed
    assert results == expected
    for name, job in submitted.items():
        # result() returns once the result pickle exists; Slurm's record of the end follows.
        assert wait_job(twin.slurm, job.job_id) == "COMPLETED", name
        assert twin.slurm.sacct([job.job_id])[0].restarts == 1, name
        log = Path(job.paths.stderr).read_text()
        assert f"preemption, {jobs.MAX_NUM_TIMEOUT} timeouts left" in log, name
        assert "time limit" not in log, name
        if "ckpt" in name:  # the checkpoint submitit saved carries the countdown on: none used up
            assert DelayedSubmission.load(job.paths.submitted_pickle)._timeout_countdown == jobs.MAX_NUM_TIMEOUT
    for limit in (5, 60):
        steps = [int(line.split()[1]) for line in trace[limit].read_text().splitlines()]
        assert sorted(steps) == list(range(16))  # each step once: resumed from the checkpoint
        assert (tmp_path / f"shell-{limit}.runs").read_text().split("\n")[:2] == ["run 0", "run 1"]
        assert int((tmp_path / f"shell-{limit}.state").read_text()) > 0
    wait_all_idle(twin)
