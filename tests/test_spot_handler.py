"""The spot handler's pure parts, on output pasted from Slurm 22.05 on the twin."""

from __future__ import annotations

from test_imds import load_handler

handler = load_handler()

# squeue -h -w spot-st-mixed16-1 -t ... -O "JobID:|,Requeue:|,State:|,Name:"
SQUEUE_JOBS = """\
7|1|RUNNING|submitit
8|0|RUNNING|keep me|really
12|1|COMPLETING|wrap                                                                  
"""

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


def test_jobs_on_a_node_keep_their_requeue_flag_and_names_with_bars() -> None:
    rows = handler.parse_job_rows(SQUEUE_JOBS)
    assert [r["job_id"] for r in rows] == ["7", "8", "12"]
    assert [r["requeue"] for r in rows] == [True, False, True]
    assert rows[1]["name"] == "keep me|really"
    assert rows[2]["state"] == "COMPLETING" and rows[2]["name"] == "wrap"


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
