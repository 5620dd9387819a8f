"""Spot interruptions on the real twin: notice -> checkpoint -> requeue -> resume elsewhere.

Every test steers its jobs onto one spot node without pinning them (the other spot nodes are
drained while the jobs start, then resumed), serves that node a notice through its IMDS
emulator, and lets the node's real handler do the rest. Node names come from the layout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool import jobs
from hpctool.cli import main as cli
from hpctool.errors import TwinError
from hpctool.slurm.parse import job_active
from hpctool.twin import Twin, daemons, spot
from support.twin import wait_all_idle, wait_for, wait_job

pytestmark = pytest.mark.twin


@pytest.fixture
def spot_nodes(twin: Twin) -> Iterator[list[str]]:
    layout = twin.layout()
    # Static spot nodes: these tests steer jobs by draining; dynamic ones are in test_twin_elastic.
    names = [n.name for n in layout.static_nodes() if n.spot]
    assert len(names) >= 2, "the suite's twin has a spot queue with 2 static nodes"
    spot.start_services(twin, layout)
    yield names
    for job in twin.slurm.jobs():
        if job.get("Partition") in {q["name"] for q in layout.queues if q["spot"]} and job_active(job.get("JobState", "")):
            twin.slurm.cancel([job["JobId"]])
    for name in names:
        spot.restore_node(twin, name)
    wait_all_idle(twin)


def spot_queue(twin: Twin) -> str:
    return next(q["name"] for q in twin.layout().queues if q["spot"])


def steer(twin: Twin, target: str, others: list[str]) -> None:
    """Only ``target`` takes new jobs (no -w: the jobs stay free to run anywhere later)."""
    for node in others:
        twin.slurm.update_node(node, "drain", reason="test: steer jobs to one node")


def running_on(twin: Twin, job_id: str, node: str) -> bool:
    job = twin.slurm.job(job_id)
    return job.get("JobState") == "RUNNING" and job.get("NodeList") == node


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_notice_checkpoints_requeues_and_resumes_elsewhere_with_the_same_result(twin, spot_nodes, tmp_path):
    noticed, others = spot_nodes[0], spot_nodes[1:]
    queue = spot_queue(twin)
    trace, shell_state, shell_log, plain_log = (tmp_path / n for n in ("trace", "shell.state", "shell.log", "plain"))
    steer(twin, noticed, others)
    resources = jobs.Resources(queue=queue, time_min=30, name="ckpt")
    computation = jobs.submit(jobs.CheckpointedSum(24, 0.5, str(trace)), resources=resources, folder=tmp_path)
    # A shell job that traps the signal and saves its own state, through `hpctool.jobs`.
    shell_command = (
        f"i=$(cat {shell_state} 2>/dev/null || echo 0); "
        f"trap 'echo $i > {shell_state}; echo saved $i >> {shell_log}; exit 0' USR2; "
        f"while [ $i -lt 30 ]; do sleep 0.5; i=$((i+1)); done; echo done $i >> {shell_log}"
    )
    shell = jobs.submit(jobs.ShellCommand(shell_command), resources=jobs.Resources(queue=queue, name="shell"),
                        folder=tmp_path)
    # A plain batch job with no checkpoint at all, and one that must never be requeued.
    plain = twin.slurm.sbatch([f"--partition={queue}", "--requeue", "--job-name=plain", f"--output={tmp_path}/%j.out"],
                              wrap=f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {plain_log}; sleep 15; echo end >> {plain_log}')
    stay = twin.slurm.sbatch([f"--partition={queue}", "--no-requeue", "--job-name=stay", "--output=/dev/null"],
                             wrap="sleep 300")
    for job_id in (computation.job_id, shell.job_id, plain, stay):
        wait_for(lambda j=job_id: running_on(twin, j, noticed), what=f"job {job_id} running on {noticed}")
    wait_for(lambda: len(lines(trace)) >= 4, what="4 steps of the computation")
    for node in others:
        twin.slurm.update_node(node, "resume")

    notice = spot.send_spot_notice(twin, noticed, deadline_s=20)
    done = spot.wait_notice_handled(twin, noticed, notice)

    assert sorted(done["requeued_by_job"]) == sorted([computation.job_id, shell.job_id])  # submitit requeued them
    assert done["requeued"] == [plain]  # its batch shell died of the signal; the handler requeued it
    assert done["left_alone"] == [stay]
    node = twin.slurm.nodes()
    reason = next(n for n in node if n["NodeName"] == noticed)["Reason"]
    assert reason.startswith(f"spot-interruption {notice.time}")
    assert "DRAIN" in twin.slurm.node_states()[noticed].upper()

    # The computation resumes on another spot node from its checkpoint: each step ran exactly once.
    assert computation.result() == jobs.CheckpointedSum(24, 0)()
    runs = [tuple(map(int, line.split())) for line in lines(trace)]
    assert sorted(step for _, step in runs) == list(range(24))
    resumed_at = min(step for restart, step in runs if restart == 1)
    assert resumed_at >= 4
    # submitit reads the result as soon as the job wrote it; Slurm records the end a moment later.
    record = wait_for(lambda: next((r for r in twin.slurm.sacct([computation.job_id]) if r.state != "RUNNING"), None),
                      what=f"job {computation.job_id} recorded as ended")
    assert record.restarts == 1 and record.node_list in others and record.state == "COMPLETED"

    # The trapping shell saved its counter and went on from it.
    assert shell.result() == 0
    log = lines(shell_log)
    saved = int(log[0].split()[1])
    assert log[0].startswith("saved") and saved > 0 and log[-1] == "done 30"

    # The plain job ran again from the start; the --no-requeue job was never requeued.
    assert wait_job(twin.slurm, plain) == "COMPLETED"
    assert lines(plain_log)[0] == "run 0" and lines(plain_log)[-2:] == ["run 1", "end"]
    assert twin.slurm.sacct([plain])[0].restarts == 1

    # At the deadline EC2 takes the instance: slurmd gone, node DOWN, the job left alone ends with it.
    slurmd_pid = twin.run_dir / f"slurmd-{noticed}.pid"
    wait_for(lambda: not daemons.pid_alive(daemons.read_pid(slurmd_pid)), timeout=60, what="reclaim")
    record = next(n for n in twin.slurm.nodes() if n["NodeName"] == noticed)
    assert record["State"].startswith("DOWN") and record["Reason"].startswith("spot-reclaimed")
    assert wait_job(twin.slurm, stay) in {"NODE_FAIL", "FAILED", "CANCELLED"}
    assert twin.slurm.sacct([stay])[0].restarts == 0

    assert spot.restore_node(twin, noticed) == "idle"


def test_a_repeated_notice_and_imds_faults_never_requeue_twice(twin, spot_nodes, tmp_path, capsys):
    noticed, others = spot_nodes[-1], spot_nodes[:-1]
    queue = spot_queue(twin)
    started = time.time()
    steer(twin, noticed, others)
    job = twin.slurm.sbatch([f"--partition={queue}", "--requeue", f"--output={tmp_path}/%j.out"],
                            wrap=f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {tmp_path}/runs; sleep 120')
    wait_for(lambda: running_on(twin, job, noticed), what="job running")
    for node in others:
        twin.slurm.update_node(node, "resume")

    # IMDS misbehaves: 3 server errors, then a hung answer, then every token is revoked.
    spot.inject_imds_faults(twin, noticed, status=500, count=3)
    wait_for(lambda: sum(1 for e in spot.handler_events(twin, noticed)
                         if e["event"] == "imds-error" and e["ts"] >= started) >= 3, what="3 IMDS errors")
    spot.inject_imds_faults(twin, noticed, delay_s=3, count=1)
    wait_for(lambda: sum(1 for e in spot.handler_events(twin, noticed)
                         if e["event"] == "imds-error" and e["ts"] >= started) >= 4, what="an IMDS timeout")
    spot.inject_imds_faults(twin, noticed, expire_tokens=True)

    assert cli(["local", "spot-notice", noticed, "--deadline", "20", "--wait", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["handled"]["requeued"] == [job]
    notice = spot.SpotNotice(**{k: result["notice"][k] for k in ("node", "action", "time", "issued_at", "reclaim_at")})

    # The same notice again, and a handler restarted while the notice is still served.
    again = spot.send_spot_notice(twin, noticed, deadline_s=300)
    assert again.time == notice.time
    handler_pid = spot.files(twin, noticed).handler_pid
    daemons.stop_pid(daemons.read_pid(handler_pid), name="spot-handler")
    spot.start_services(twin, twin.layout())
    wait_for(lambda: any(e["event"] == "notice-repeat" and e["ts"] > result["handled"]["ts"]
                         for e in spot.handler_events(twin, noticed)), what="the restarted handler to see the notice")

    events = [e for e in spot.handler_events(twin, noticed) if e["ts"] >= started]
    assert [e["job_id"] for e in events if e["event"] == "requeued"] == [job]
    assert sum(1 for e in events if e["event"] == "done") == 1
    wait_for(lambda: twin.slurm.job(job)["JobState"] == "RUNNING", what="the job running again elsewhere")
    assert twin.slurm.job(job)["Restarts"] == "1"
    assert twin.slurm.job(job)["NodeList"] in others
    twin.slurm.cancel([job])

    slurmd_pid = twin.run_dir / f"slurmd-{noticed}.pid"
    wait_for(lambda: not daemons.pid_alive(daemons.read_pid(slurmd_pid)), timeout=60, what="reclaim")
    assert twin.node_state(noticed).startswith("down")  # as ParallelCluster shows a lost instance, not drain*
    assert cli(["local", "spot-restore", noticed]) == 0
    assert twin.slurm.node_states()[noticed] == "idle"
    assert daemons.pid_alive(daemons.read_pid(slurmd_pid))


def test_spot_notice_refuses_what_is_not_a_spot_node(twin, spot_nodes):
    on_demand = next(n.name for n in twin.layout().nodes if not n.spot)
    with pytest.raises(TwinError, match="not a spot queue"):
        spot.send_spot_notice(twin, on_demand)
    with pytest.raises(TwinError, match="not a node of the twin"):
        spot.send_spot_notice(twin, "no-such-node")
    with pytest.raises(TwinError, match="out of range"):
        spot.send_spot_notice(twin, spot_nodes[0], deadline_s=0)


def test_status_shows_the_emulators_and_handlers(twin, spot_nodes):
    daemons_status = twin.status()["daemons"]
    for node in spot_nodes:
        assert daemons_status[f"imds {node}"]["running"]
        assert daemons_status[f"spot-handler {node}"]["running"]
    started = [e for e in spot.handler_events(twin, spot_nodes[0]) if e["event"] == "started"]
    # The handler runs with its EC2 defaults: no endpoint override, IMDS at its EC2 address.
    assert started[-1]["endpoint"] == "http://169.254.169.254"
