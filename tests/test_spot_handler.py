"""The spot handler's pure parts, on output pasted from Slurm 22.05 on the twin."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from hpctool.slurm import parse as slurm_parse
from support.handler import load_handler

handler = load_handler()

SLURM_DATA = Path(__file__).parent / "data" / "slurm"
DATA = SLURM_DATA / "22.05"

# squeue -h -s -w spot-st-mixed16-1 -o %i
SQUEUE_STEPS = """\
7.0
7.batch
8.batch
8.extern
12.extern
"""

SCONTROL_JOB = (
    "JobId=7 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901753 Nice=0 Account=root "
    "QOS=normal JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:0 RunTime=00:00:02 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-21T10:28:57 "
    "Partition=spot AllocNode:Sid=localhost:5464 ReqNodeList=(null) ExcNodeList=(null) NodeList=spot-st-mixed16-1 "
    "BatchHost=spot-st-mixed16-1 NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=1,mem=1807M,node=1,billing=1 Command=(null) WorkDir=/tmp StdErr=/tmp/slurm-7.out"
)

SCONTROL_NODE = (
    "NodeName=spot-st-mixed16-1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=4 CPUTot=4 CPULoad=0.31 "
    "AvailableFeatures=static,c7i.4xlarge,mixed16,spot ActiveFeatures=static,c7i.4xlarge,mixed16,spot Gres=(null) "
    "NodeAddr=127.0.0.1 NodeHostName=ci-host Version=22.05.8 OS=Linux 6.1.0 RealMemory=4096 "
    "State=IDLE+DRAIN ThreadsPerCore=1 Reason=spot-interruption 2026-11-21T10:31:00Z [root@2026-11-21T10:29:00]"
)


def test_jobs_on_a_node_keep_their_requeue_flag_restarts_and_names_with_bars() -> None:
    """``squeue -h -w NODE -t ... -O JobID:|,Requeue:|,State:|,RestartCnt:|,ReqNodes:|,Name:``: one
    query gives everything the handler decides on (a job pinned with -w, one --no-requeue)."""
    rows = handler.parse_job_rows((DATA / "squeue-jobs-on-node.txt").read_text())
    assert [r["job_id"] for r in rows] == ["16", "17"]
    assert [r["requeue"] for r in rows] == [True, False]
    assert rows[0]["name"] == "keep me|really" and rows[0]["req_nodes"] == "spot-st-mixed16-1"
    assert rows[1] == {"job_id": "17", "requeue": False, "state": "RUNNING", "restarts": 0, "req_nodes": "",
                       "name": "wrap"}
    after = handler.parse_job_rows((DATA / "squeue-jobs-after-requeue.txt").read_text())
    assert [(r["state"], r["restarts"]) for r in after] == [("PENDING", 1), ("RUNNING", 0)]


def test_slurm_24_11_shows_a_requeued_job_completing_before_it_is_pending() -> None:
    """Slurm 24.11 (the node image) lists a job just requeued as COMPLETING with its restart
    counted, where 22.05 listed it PENDING: both mean the requeue took."""
    rows = handler.parse_job_rows((SLURM_DATA / "24.11" / "squeue-jobs-on-node.txt").read_text())
    assert [(r["requeue"], r["state"], r["restarts"]) for r in rows] == [(True, "RUNNING", 0), (False, "RUNNING", 0)]
    assert rows[0]["name"] == "keep me|really" and rows[0]["req_nodes"] == "spot-st-mixed16-1"
    after = handler.parse_job_rows((SLURM_DATA / "24.11" / "squeue-jobs-after-requeue.txt").read_text())
    assert [(r["state"], r["restarts"]) for r in after] == [("COMPLETING", 1), ("RUNNING", 0)]
    # What the handler concludes once the budget is over: the job requeued itself.
    assert handler.decide_after_budget(after[0]["state"], 0, after[0]["restarts"]) == "requeued-by-job"


def test_only_jobs_with_a_real_step_count_as_having_steps() -> None:
    assert handler.jobs_with_steps(SQUEUE_STEPS) == {"7"}
    assert handler.jobs_with_steps("") == set()


def test_scontrol_records_keep_values_with_spaces() -> None:
    job = handler.parse_scontrol(SCONTROL_JOB)
    assert job["JobState"] == "RUNNING" and job["Requeue"] == "1" and job["ReqNodeList"] == "(null)"
    node = handler.parse_scontrol(SCONTROL_NODE)
    assert node["Reason"] == "spot-interruption 2026-11-21T10:31:00Z [root@2026-11-21T10:29:00]"
    assert node["NodeHostName"] == "ci-host" and node["NodeAddr"] == "127.0.0.1"


def test_notice_time_is_ec2s_utc_format() -> None:
    assert handler.notice_epoch({"action": "terminate", "time": "2017-09-18T08:22:00Z"}) == 1505722920.0
    assert handler.notice_epoch({"action": "terminate", "time": "soon"}) is None


def test_what_happens_to_a_signalled_job_after_its_budget() -> None:
    decide = handler.decide_after_budget
    assert decide("PENDING", 0, 1) == "requeued-by-job"  # submitit requeued itself
    assert decide("RUNNING", 0, 1) == "requeued-by-job"  # already restarted elsewhere
    assert decide("RUNNING", 0, 0) == "requeue"  # ignored the signal: the handler requeues it
    assert decide("COMPLETING", 2, 2) == "requeue"
    assert decide("FAILED", 0, 0) == "requeue"  # a shell the signal stopped: its work is not done
    assert decide("COMPLETED", 0, 0) == "finished"  # it ended well on its own: never rerun
    assert decide("CANCELLED", 0, 0) == "finished"


def test_handler_parsers_agree_with_slurm_parse_on_pasted_output() -> None:
    """The handler keeps its own stdlib parsers (it runs without hpctool installed): on every
    pasted Slurm output they must read what hpctool.slurm.parse reads."""
    for path in sorted(SLURM_DATA.glob("*/scontrol-*.txt")):
        for line in path.read_text().splitlines():
            if line.strip():
                assert handler.parse_scontrol(line) == slurm_parse.parse_scontrol_record(line), path.name
    assert handler.parse_scontrol(SCONTROL_JOB) == slurm_parse.parse_scontrol_record(SCONTROL_JOB)
    columns = ["job_id", "requeue", "state", "restarts", "req_nodes", "name"]
    for path in sorted(SLURM_DATA.glob("*/squeue-jobs-*.txt")):
        text = path.read_text()
        # slurm_parse splits on every "|": the name (last) may hold one, so join the tail back.
        expected = [dict(zip(columns, line.split("|", 5), strict=True)) for line in text.splitlines() if line]
        generic = slurm_parse.parse_delimited("\n".join(line.rsplit("|", line.count("|") - 5)[0]
                                                         for line in text.splitlines() if line),
                                              columns)
        ours = handler.parse_job_rows(text)
        assert [r["job_id"] for r in generic] == [r["job_id"] for r in ours], path.name
        assert [r["state"] for r in generic] == [r["state"] for r in ours]
        assert [int(r["restarts"]) for r in generic] == [r["restarts"] for r in ours]
        assert [r["requeue"] == "1" for r in generic] == [r["requeue"] for r in ours]
        assert [r["name"] for r in expected] == [r["name"] for r in ours]


class _SlurmOutage:
    """The handler's Slurm calls, scripted: ``down`` makes every call fail as a dead slurmctld
    does (the real thing is tests/test_spot_handler_twin.py; this pins the decisions)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.timeout, self.down = env, 5, False
        self.signals: list[list[str]] = []
        self.requeues: list[list[str]] = []
        self.restarts = 0

    def _check(self) -> None:
        if self.down:
            raise RuntimeError("squeue: error: Unable to contact slurm controller (connect failure)")

    def jobs_on_node(self, node: str) -> list[dict]:
        self._check()
        return [{"job_id": "7", "requeue": True, "state": "RUNNING", "restarts": 0, "req_nodes": "", "name": "j"}]

    def steps_on_node(self, node: str) -> set[str]:
        self._check()
        return set()

    def signal(self, job_ids: list[str], sig: str, batch: bool) -> None:
        self._check()
        self.signals.append(job_ids)

    def job_states(self, job_ids: list[str], timeout: float | None = None) -> dict:
        self._check()
        return {"7": ("RUNNING", self.restarts)}

    def requeue(self, job_ids: list[str]) -> None:
        self._check()
        self.requeues.append(job_ids)
        self.restarts += 1


def test_slurmctld_down_at_the_end_of_the_budget_defers_the_requeue_never_skips_it(tmp_path, monkeypatch) -> None:
    scontrol = tmp_path / "bin" / "scontrol"  # the drain runs scontrol itself
    scontrol.parent.mkdir()
    scontrol.write_text("#!/bin/sh\nexit 0\n")
    scontrol.chmod(0o755)
    args = handler.parse_args(["--node", "spot-st-mixed16-1", "--checkpoint-budget", "0",
                               "--log", str(tmp_path / "log.jsonl"), "--state-file", str(tmp_path / "state.json")])
    first = handler.Handler(args)
    first.slurm = fake = _SlurmOutage({"PATH": f"{scontrol.parent}:/usr/bin:/bin"})
    action = {"action": "terminate", "time": "2099-01-01T00:00:00Z"}
    monkeypatch.setattr(handler.time, "sleep", lambda _s: None)

    original_wait = first._wait_for_checkpoints

    def signalled_then_outage(signalled, budget):
        fake.down = True  # slurmctld dies right after the signal went out
        return original_wait(signalled, budget)

    first._wait_for_checkpoints = signalled_then_outage
    try:
        first.handle_notice(action)
    except RuntimeError as error:
        assert "unreachable" in str(error)
    else:
        raise AssertionError("an outage at the end of the budget must not end the notice")
    assert fake.signals == [["7"]] and fake.requeues == []

    # The handler restarts (or polls again) once slurmctld is back: from the saved state.
    second = handler.Handler(args)
    fake.down = False
    second.slurm = fake
    second.handle_notice(action)
    assert fake.signals == [["7"]], "signalled twice"
    assert fake.requeues == [["7"]]
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert "finished" not in events and events.count("requeued") == 1 and events[-1] == "done", events


def test_the_handler_is_python_3_7_and_passes_ruff(repo):
    """It runs on the nodes' own python3 (Amazon Linux 2 has 3.7): its syntax must parse as 3.7,
    and ruff lints it like the package (pyproject.toml includes it, as Python 3.7)."""
    from support.handler import HANDLER

    ast.parse(HANDLER.read_text(), filename=str(HANDLER), feature_version=(3, 7))
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", str(HANDLER)], cwd=repo,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_handlers_state_sets_agree_with_hpctools_parser() -> None:
    """The handler (standard library only, on the node) keeps its own state sets; they must sort
    every state as hpctool.slurm.parse does: running or waiting is active, failed is finished."""
    from hpctool.slurm.parse import ACTIVE_JOB_STATES, FINISHED_JOB_STATES

    assert handler.ACTIVE_STATES | handler.WAITING_STATES <= ACTIVE_JOB_STATES
    assert handler.FAILED_STATES <= FINISHED_JOB_STATES
    assert not handler.ACTIVE_STATES & handler.WAITING_STATES
    assert "EXPEDITING" in handler.WAITING_STATES
