"""The elastic twin, for real: dynamic nodes that Slurm powers up for jobs (ResumeProgram) and
down when idle (SuspendProgram), EC2 capacity shortages with ParallelCluster's fast failover,
boots that hang past ResumeTimeout, and spot reclaims of dynamic nodes (the BadConstraints
reports of aws-parallelcluster 5731 and 6641).

The suite's twin runs at time scale 0.02: idle nodes power down after 12 s, a hung boot times
out after 36 s, a capacity shortage disables its compute resource for 12 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpctool.cli import main as cli
from hpctool.slurm.parse import node_powered_down
from hpctool.twin import Twin, spot
from hpctool.twin.capacity import DISABLED_REASON, RESUME_FAILURE_REASON
from support.twin import reset_twin, wait_for

pytestmark = pytest.mark.twin


@pytest.fixture
def elastic(twin: Twin):
    reset_twin(twin)
    yield twin
    for job in twin.slurm.jobs():
        if job.get("JobState") not in {"COMPLETED", "CANCELLED", "FAILED"}:
            twin.slurm.cancel([job["JobId"]])
    reset_twin(twin)


def dynamic_node(twin: Twin, queue: str, resource: str | None = None) -> str:
    return next(n.name for n in twin.layout().dynamic_nodes()
                if n.queue == queue and (resource is None or n.compute_resource == resource))


def node_record(twin: Twin, node: str) -> dict[str, str]:
    return next(r for r in twin.slurm.nodes() if r["NodeName"] == node)


def job_field(twin: Twin, job_id: str, key: str) -> str:
    return twin.slurm.job(job_id).get(key, "")


def wait_final(twin: Twin, job_id: str, timeout: float = 150) -> str:
    """The job's final state as slurmctld sees it: a requeued job's earlier run already has a
    finished row (NODE_FAIL, PREEMPTED) in accounting while the job itself goes on."""
    final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}

    def state() -> str:
        current = job_field(twin, job_id, "JobState")
        return current if current in final else ""

    return wait_for(state, timeout=timeout, what=f"job {job_id} to finish")


def test_a_job_powers_a_dynamic_node_up_and_idle_powers_it_down(elastic, tmp_path):
    node = dynamic_node(elastic, "compute")
    assert elastic.node_state(node) == "idle~"
    job = elastic.slurm.sbatch(["--partition=compute", "--constraint=dynamic", f"--output={tmp_path}/%j.out"],
                               wrap="echo $SLURMD_NODENAME")
    # While it boots, users see what they see on AWS: the node powering up, the job configuring.
    wait_for(lambda: "#" in elastic.node_state(node) or job_field(elastic, job, "JobState") == "RUNNING",
             timeout=30, what="the node powering up")
    assert wait_final(elastic, job) == "COMPLETED"
    assert len(_runs(elastic, job)) == 1  # one boot, no ResumeTimeout and requeue
    assert (tmp_path / f"{job}.out").read_text().strip() == node
    assert elastic.slurm.sacct([job])[-1].node_list == node
    log = (elastic.log_dir / "power.log").read_text()
    assert f"resume {node}: booting" in log and f"boot {node}: slurmd started" in log
    # SuspendTime (12 s here) after the job, Slurm runs SuspendProgram: slurmd stops, node idle~.
    wait_for(lambda: elastic.node_state(node) == "idle~", timeout=60, what="power down after idle")
    assert not elastic.slurmd_alive(node)
    assert f"suspend {node}: slurmd stopped" in (elastic.log_dir / "power.log").read_text()


def test_insufficient_capacity_fails_over_to_the_other_compute_resource(elastic, tmp_path):
    first = dynamic_node(elastic, "spot", "mixed16")
    other = dynamic_node(elastic, "spot", "mixed16m")
    assert cli(["local", "capacity", "spot/mixed16", "--insufficient", "--for", "600"]) == 0
    statics = [n.name for n in elastic.layout().static_nodes() if n.queue == "spot"]
    for name in statics:  # only dynamic nodes take the job
        elastic.slurm.update_node(name, "drain", reason="test: dynamic only")
    try:
        job = elastic.slurm.sbatch(["--partition=spot", "--requeue", f"--output={tmp_path}/%j.out"],
                                   wrap="echo $SLURMD_NODENAME")
        # The resume fails at once, with ParallelCluster's reason; Slurm requeues the job...
        reason = RESUME_FAILURE_REASON.format(code="InsufficientInstanceCapacity")
        wait_for(lambda: node_record(elastic, first).get("Reason", "").startswith(reason), timeout=30,
                 what="the failed resume's reason")
        # ...and it runs on the other compute resource of the queue.
        assert wait_final(elastic, job) == "COMPLETED"
        assert (tmp_path / f"{job}.out").read_text().strip() == other
    finally:
        for name in statics:
            elastic.slurm.update_node(name, "resume")
    # Capacity comes back: the resource's nodes return to powered down, ready to boot.
    assert cli(["local", "capacity", "spot/mixed16", "--restore"]) == 0
    wait_for(lambda: elastic.node_state(first) == "idle~", timeout=30, what="the node back to idle~")


def test_the_manager_reenables_a_resource_after_the_capacity_timeout(elastic):
    node = dynamic_node(elastic, "storage")
    # Capacity away for 8 s: long enough for the resume to meet it on a busy machine, back well
    # before the resource's timeout (12 s here) ends.
    assert cli(["local", "capacity", "storage", "--insufficient", "--for", "8"]) == 0
    job = elastic.slurm.sbatch(["--partition=storage", "--constraint=dynamic", "--output=/dev/null"], wrap="true")
    wait_for(lambda: "Failure when resuming" in node_record(elastic, node).get("Reason", ""), timeout=30,
             what="the failed resume")
    # No --restore: clustermgtd's loop resets the node when the timeout (12 s here) has passed.
    wait_for(lambda: node_powered_down(elastic.node_state(node)) or job_field(elastic, job, "JobState") == "RUNNING",
             timeout=60, what="the manager to re-enable the resource")
    assert wait_final(elastic, job) == "COMPLETED"
    assert "capacity is back" in (elastic.log_dir / "clustermgtd.log").read_text()


def test_the_disabled_reason_is_parallelclusters(elastic):
    assert DISABLED_REASON.format(code="InsufficientInstanceCapacity") == \
        "(Code:InsufficientInstanceCapacity)Temporarily disabling node due to insufficient capacity"


def test_a_boot_that_hangs_times_out_and_the_job_is_requeued(elastic, tmp_path):
    """ResumeTimeout puts the hung node down and Slurm requeues its job. ParallelCluster fails over
    to another compute resource only for insufficient capacity: after a hang the node is reset and
    may get the job again, so the test ends the hang and checks the job then completes."""
    hung = dynamic_node(elastic, "spot", "mixed16")
    assert cli(["local", "capacity", "spot/mixed16", "--boot-hang"]) == 0
    statics = [n.name for n in elastic.layout().static_nodes() if n.queue == "spot"]
    for name in statics:  # only the dynamic nodes take the job
        elastic.slurm.update_node(name, "drain", reason="test: dynamic only")
    try:
        job = elastic.slurm.sbatch(["--partition=spot", "--requeue", f"--output={tmp_path}/%j.out"],
                                   wrap="echo $SLURMD_NODENAME")
        wait_for(lambda: job_field(elastic, job, "NodeList") == hung, timeout=30, what="the job on the hung node")
        # ResumeTimeout (36 s here): the node goes down, Slurm requeues the job.
        wait_for(lambda: _runs(elastic, job)[:1] == [("NODE_FAIL", hung)], timeout=90,
                 what="the job requeued off the hung node")
        cli(["local", "capacity", "spot/mixed16", "--restore"])
        assert wait_final(elastic, job) == "COMPLETED"
        assert (tmp_path / f"{job}.out").read_text().strip().splitlines()[-1].startswith("spot-dy-")
    finally:
        for name in statics:
            elastic.slurm.update_node(name, "resume")
        cli(["local", "capacity", "spot/mixed16", "--restore"])
    assert "ResumeTimeout" in (elastic.log_dir / "slurmctld.log").read_text()
    assert not (elastic.run_dir / f"boot-{hung}.pid").exists()  # ResumeFailProgram ended the boot


def _runs(twin: Twin, job_id: str) -> list[tuple[str, ...]]:
    """(state, node) of every run of a job, first to last (sacct -D keeps the requeued ones)."""
    out = twin.slurm.run(["sacct", "-X", "-D", "-n", "-P", "-o", "State,NodeList", "-j", job_id]).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]


# Job shapes of the BadConstraints reports. One reclaim each would cost ~30 s; they share two.
RECLAIM_SHAPES = {"plain": [], "N1": ["-N", "1"], "mem": ["--mem=500M"], "exclusive": ["--exclusive"]}


def test_jobs_requeued_after_dynamic_spot_reclaims_run_again(elastic, tmp_path):
    """Three small jobs (plain, -N 1, --mem) share one dynamic spot node, an --exclusive job has the
    other compute resource's node; both are reclaimed at once. Each reclaimed node is reset to
    powered down (a replaced instance) and boots again for its jobs, which rerun there."""
    shared = dynamic_node(elastic, "spot", "mixed16")
    alone = dynamic_node(elastic, "spot", "mixed16m")
    statics = [n.name for n in elastic.layout().static_nodes() if n.queue == "spot"]
    for name in statics:
        elastic.slurm.update_node(name, "drain", reason="test: dynamic only")
    jobs: dict[str, tuple[str, str, Path]] = {}
    for shape, options in RECLAIM_SHAPES.items():
        node, resource = (alone, "mixed16m") if shape == "exclusive" else (shared, "mixed16")
        runs = tmp_path / f"{shape}.runs"
        job = elastic.slurm.sbatch(["--partition=spot", "--requeue", f"--constraint={resource}", *options,
                                    f"--output={tmp_path}/%j.out", "--open-mode=append"],
                                   wrap=f'echo "$SLURMD_NODENAME ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; sleep 8')
        jobs[shape] = (job, node, runs)
    try:
        wait_for(lambda: all(runs.exists() and runs.read_text().strip() for _, _, runs in jobs.values()),
                 timeout=90, what="the first run of every job")
        notices = {node: spot.send_spot_notice(elastic, node, deadline_s=3) for node in (shared, alone)}
        for node, notice in notices.items():
            spot.wait_notice_handled(elastic, node, notice, timeout=60)
        for shape, (job, node, runs) in jobs.items():
            assert wait_final(elastic, job) == "COMPLETED", shape
            assert "BadConstraints" not in job_field(elastic, job, "Reason"), shape
            assert runs.read_text().split() == [node, "0", node, "1"], shape
    finally:
        for name in statics:
            elastic.slurm.update_node(name, "resume")
        for node in (shared, alone):
            spot.restore_node(elastic, node)


def test_down_and_up_start_dynamic_nodes_powered_down(elastic):
    node = dynamic_node(elastic, "compute")
    job = elastic.slurm.sbatch(["--partition=compute", "--constraint=dynamic", "--output=/dev/null"], wrap="true")
    assert wait_final(elastic, job) == "COMPLETED"
    assert not node_powered_down(elastic.node_state(node))  # still up, before SuspendTime
    elastic.down()
    assert not elastic.slurmd_alive(node)
    status = elastic.up()
    assert status["up"] is True
    wait_for(lambda: elastic.node_state(node) == "idle~", timeout=30, what="the node powered down after up")
