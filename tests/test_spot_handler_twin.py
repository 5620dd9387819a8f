"""The spot handler restarted in the middle of a notice, on the real twin.

The handler saves its progress per notice (the jobs it signalled, the ones it requeued, when the
checkpoint budget ends). Killed with SIGKILL while the jobs are in their checkpoint budget and
started again (as systemd's Restart=always does), it must go on where it was: no job gets the
checkpoint signal twice, and every job is requeued exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hpctool.twin import Twin, spot
from support.twin import wait_for

pytestmark = pytest.mark.twin

# Ignores the checkpoint signal (the handler must wait out its budget) but writes a line per
# signal received, so the test can count them.
COUNTING = "trap 'echo USR2 >> {mark}' USR2; while true; do sleep 0.2; done"
STATE_SAVED_AFTER_S = 7  # slurmctld saves its state at most every 5 s (SAVE_MAX_WAIT), plus a margin


def _events_since(twin: Twin, node: str, since: float) -> list[dict]:
    return [e for e in spot.handler_events(twin, node) if e["ts"] >= since]


def _handler_pid(twin: Twin, node: str) -> int | None:
    try:
        return int(spot.files(twin, node).handler_pid.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Running, not a zombie (a handler this test started stays one until Python reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_handler(twin: Twin, node: str) -> None:
    pid = _handler_pid(twin, node)
    assert pid is not None and _alive(pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), timeout=10, interval=0.05, what="the handler to die")


def test_handler_killed_mid_notice_never_signals_or_requeues_twice(twin: Twin, tmp_path: Path) -> None:
    layout = twin.layout()
    node, *others = [n.name for n in layout.static_nodes() if n.spot] + [n.name for n in layout.dynamic_nodes() if n.spot]
    queue = next(q["name"] for q in layout.queues if q["spot"])
    slurm = twin.slurm
    marks = [tmp_path / "batch.usr2", tmp_path / "step.usr2"]
    # The handler of this checkout (a twin left up may run an older one): restart it first.
    _kill_handler(twin, node)
    assert spot.start_services(twin, layout) == [f"spot-handler {node}"]
    for other in others:  # the jobs must land on `node`, without pinning them there (-w)
        slurm.update_node(other, "drain", reason="test: steer jobs")
    # One plain batch script (signalled in its shell) and one with a job step (signalled there).
    wraps = [COUNTING.format(mark=marks[0]), f"srun bash -c \"{COUNTING.format(mark=marks[1])}\""]
    jobs = [slurm.sbatch([f"--partition={queue}", "--requeue", "--output=/dev/null", "--job-name=mid-notice"],
                         wrap=wrap) for wrap in wraps]
    try:
        wait_for(lambda: all(slurm.job(j).get("JobState") == "RUNNING" and slurm.job(j).get("NodeList") == node
                             for j in jobs), timeout=60, what="both jobs running on the spot node")
        wait_for(lambda: f"{jobs[1]}.0" in slurm.run(["squeue", "-h", "-s", "-w", node, "-o", "%i"]).stdout.split(),
                 timeout=30, what="the job step")
        for other in others:
            slurm.update_node(other, "resume")
        # Budget: reclaim in 24 s minus the handler's 10 s margin, ~14 s: time to kill it inside.
        notice = spot.send_spot_notice(twin, node, deadline_s=24)
        since = notice.issued_at - 1
        wait_for(lambda: any(e["event"] == "checkpoint-budget" for e in _events_since(twin, node, since)),
                 timeout=30, interval=0.1, what="the handler to signal the jobs")
        _kill_handler(twin, node)  # mid-notice: signalled, not yet requeued
        assert not any(e["event"] == "done" for e in _events_since(twin, node, since))
        assert spot.start_services(twin, layout) == [f"spot-handler {node}"]

        done = spot.wait_notice_handled(twin, node, notice, timeout=60)
        events = _events_since(twin, node, since)
        assert sorted(done["requeued"]) == sorted(jobs), done
        assert any(e["event"] == "notice-resumed" for e in events), [e["event"] for e in events]
        signalled = [e["job_id"] for e in events if e["event"] == "signalled"]
        assert sorted(signalled) == sorted(jobs), signalled  # once each, across both handlers
        assert [e["job_id"] for e in events if e["event"] == "requeued"] == sorted(jobs)
        # What the jobs saw and what Slurm did: one signal each, one requeue each.
        for mark in marks:
            assert mark.read_text().split() == ["USR2"], mark
        for job in jobs:
            assert slurm.job(job).get("Restarts") == "1", slurm.job(job)
        assert "DRAIN" in slurm.run(["scontrol", "-o", "show", "node", node]).stdout
    finally:
        slurm.cancel(jobs)
        for spot_node in (node, *others):
            spot.restore_node(twin, spot_node)


def test_slurmctld_killed_mid_notice_the_job_is_requeued_once_after_the_heal(twin: Twin, tmp_path: Path) -> None:
    """slurmctld dies while the signalled job checkpoints: at the end of the budget the handler
    cannot see the job, so it must not take it for finished; once `hpctool local up` has brought
    slurmctld back, the handler (from its saved progress) requeues the job, exactly once."""
    layout = twin.layout()
    node, *others = [n.name for n in layout.static_nodes() if n.spot] + [n.name for n in layout.dynamic_nodes() if n.spot]
    queue = next(q["name"] for q in layout.queues if q["spot"])
    slurm = twin.slurm
    mark = tmp_path / "batch.usr2"
    for other in others:
        slurm.update_node(other, "drain", reason="test: steer jobs")
    job = slurm.sbatch([f"--partition={queue}", "--requeue", "--output=/dev/null", "--job-name=ctld-mid-notice"],
                       wrap=COUNTING.format(mark=mark))
    try:
        wait_for(lambda: slurm.job(job).get("JobState") == "RUNNING" and slurm.job(job).get("NodeList") == node,
                 timeout=60, what="the job running on the spot node")
        for other in others:
            slurm.update_node(other, "resume")
        # slurmctld writes its state at most every 5 s: killed sooner after the submission (or
        # after the previous test's cancellations) it would forget them, which is another fault.
        time.sleep(STATE_SAVED_AFTER_S)
        notice = spot.send_spot_notice(twin, node, deadline_s=20)  # budget: 20 s - 10 s margin
        since = notice.issued_at - 1
        wait_for(lambda: any(e["event"] == "checkpoint-budget" for e in _events_since(twin, node, since)),
                 timeout=30, interval=0.1, what="the handler to signal the job")
        ctld = twin.status()["daemons"]["slurmctld"]["pid"]
        os.kill(ctld, signal.SIGKILL)
        wait_for(lambda: not _alive(ctld), timeout=10, interval=0.05, what="slurmctld to die")
        failed = wait_for(lambda: [e for e in _events_since(twin, node, since) if e["event"] == "handle-failed"],
                          timeout=40, interval=0.2, what="the handler to meet the dead slurmctld")
        assert "unreachable" in failed[0]["error"], failed
        assert not any(e["event"] in {"finished", "done"} for e in _events_since(twin, node, since))
        # Keep the instance: what is checked is the handler's requeue, not Slurm's after a reclaim.
        spot.cancel_reclaim(twin, node)

        assert twin.up()["started"] == ["slurmctld"]
        done = spot.wait_notice_handled(twin, node, notice, timeout=60)
        events = _events_since(twin, node, since)
        assert done["requeued"] == [job], done
        assert [e["job_id"] for e in events if e["event"] == "signalled"] == [job]
        assert [e["job_id"] for e in events if e["event"] == "requeued"] == [job]
        assert mark.read_text().split() == ["USR2"]
        assert slurm.job(job).get("Restarts") == "1", slurm.job(job)
    finally:
        slurm.cancel([job])
        for spot_node in (node, *others):
            spot.restore_node(twin, spot_node)
