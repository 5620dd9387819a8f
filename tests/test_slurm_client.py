"""The Slurm client and the features above it, on runners that answer from pasted output: the
command lines hpctool builds, how their output is read, and the error texts, here and over SSH."""

from __future__ import annotations

import pytest

from hpctool.errors import SlurmCommandError, SlurmError, UsageError
from hpctool.remote.connection import Result
from hpctool.remote.manifest import Manifest, Submission
from hpctool.remote.nodes import running_nodes
from hpctool.remote.runner import SshRunner
from hpctool.remote.session import RemoteSession
from hpctool.remote.state import jobs_state
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import SACCT_FIELDS, SINFO_NODE_FORMAT
from support.fake_slurm import FakeRemote, FakeRunner, pasted

SACCT = ("sacct", "-X", "-D", "--parsable2", "--noheader", "-o", ",".join(SACCT_FIELDS))


def test_sacct_of_jobs_is_one_command_and_reads_every_row():
    runner = FakeRunner({SACCT: pasted("sacct-requeued.txt")})
    records = Slurm(runner=runner).sacct(["1", "2"])
    assert runner.calls == [[*SACCT, "-j", "1,2"]]
    assert [r.job_id for r in records][:4] == ["1", "2", "3", "4"]
    assert records[1].partition == "spot" and records[1].state == "COMPLETED"


def test_sacct_without_jobs_asks_for_a_time_window():
    runner = FakeRunner({SACCT: ""})
    assert Slurm(runner=runner).sacct(since="now-1hour") == []
    assert runner.calls[0][-2:] == ["-S", "now-1hour"]


def test_queue_nodes_node_states_and_config_from_pasted_output():
    runner = FakeRunner({("sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT): pasted("sinfo-queue-nodes.txt"),
                         ("sinfo", "-h", "-N", "-o", "%N|%T"): pasted("sinfo-nodes.txt"),
                         ("scontrol", "show", "config"): pasted("scontrol-show-config.txt")})
    slurm = Slurm(runner=runner)
    nodes = slurm.queue_nodes()
    assert {n.partition for n in nodes} >= {"compute", "fpga"}
    assert slurm.node_states()["compute-st-c7i4xl-1"] == "idle"
    assert slurm.config()["AccountingStorageHost"] == "localhost"


def test_sbatch_with_a_script_path_a_umask_and_options():
    runner = FakeRunner({("sbatch",): "42\n"})
    calls = []
    original = runner.run

    def spy(argv, **kwargs):
        calls.append(kwargs.get("umask"))
        return original(argv, **kwargs)

    runner.run = spy
    assert Slurm(runner=runner).sbatch(["--time=5"], script_path="/r/job.sh", umask=0o077) == "42"
    assert runner.calls == [["sbatch", "--parsable", "--time=5", "/r/job.sh"]] and calls == [0o077]


def test_a_job_slurmctld_forgot_is_none_and_a_queue_without_it_empty():
    runner = FakeRunner({("scontrol", "-o", "show", "job"): (1, "", "slurm_load_jobs error: Invalid job id specified"),
                         ("squeue",): (1, "", "slurm_load_jobs error: Invalid job id specified")})
    slurm = Slurm(runner=runner)
    assert slurm.find_job("99") is None
    assert slurm.queued(["99"]) == []
    with pytest.raises(SlurmCommandError, match="scontrol -o show job 99 failed \\(exit 1\\)"):
        slurm.job("99")


def test_the_job_record_is_read_from_scontrol():
    runner = FakeRunner({("scontrol", "-o", "show", "job", "6"): pasted("scontrol-job-running.txt")})
    assert Slurm(runner=runner).job("6")["JobState"] == "RUNNING"


# -- over SSH ------------------------------------------------------------------------------------
def test_slurm_missing_on_the_head_node_is_one_clear_error():
    slurm = Slurm(runner=SshRunner(FakeRemote({("sinfo",): (127, "", "sh: sinfo: not found")})))
    with pytest.raises(SlurmError) as error:
        slurm.node_states()
    assert error.value.message == "Slurm is not installed on head: sinfo: command not found"
    assert "head node" in error.value.hint


def test_a_failing_command_on_the_head_node_names_the_host():
    slurm = Slurm(runner=SshRunner(FakeRemote({("scontrol", "show", "config"): (1, "", "Unable to contact")})))
    with pytest.raises(SlurmCommandError) as error:
        slurm.config()
    assert error.value.message == "scontrol on head failed (exit 1): Unable to contact"
    assert error.value.detail == "Unable to contact" and error.value.code == 1


def test_the_ssh_runner_quotes_the_argv_and_sets_the_umask():
    remote = FakeRemote({("sbatch",): "7\n"})
    Slurm(runner=SshRunner(remote)).sbatch(["--job-name=a b"], script_path="/r/x.sh", umask=0o077)
    assert remote.commands == ["umask 077; sbatch --parsable '--job-name=a b' /r/x.sh"]


# -- hpctool remote's features on pasted output -------------------------------------------------
NODE_QUEUE_STATE = ("compute-st-c7i4xl-1|compute|idle\ncompute-st-c7i4xl-2|compute|mixed\n"
                    "spot-st-mixed16-1|spot|idle\nspot-dy-mixed16-1|spot|idle~\n")


def _session(tmp_path, answers) -> tuple[RemoteSession, FakeRemote]:
    remote = FakeRemote(answers)
    return RemoteSession(remote, Manifest(tmp_path / "remote-runs.json")), remote  # type: ignore[arg-type]


def test_status_counts_node_states_per_queue(tmp_path):
    session, _ = _session(tmp_path, {("sinfo", "-h", "-N", "-o", "%N|%R|%T"): NODE_QUEUE_STATE,
                                     ("squeue", "-h", "--me"): "17|spot|wrap|RUNNING|0:05|spot-st-mixed16-1\n"})
    status = session.status()
    assert status["queues"] == {"compute": {"idle": 1, "mixed": 1}, "spot": {"idle": 1, "idle~": 1}}
    assert status["jobs"] == [{"id": "17", "queue": "spot", "name": "wrap", "state": "RUNNING", "time": "0:05",
                               "nodes": "spot-st-mixed16-1"}]


def test_submit_builds_one_sbatch_and_records_the_run(tmp_path):
    script = tmp_path / "align.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    session, remote = _session(tmp_path, {("sbatch",): "85\n"})
    run = session.submit(Submission(script, queue="spot", cpus=4, mem="8G", array="0-3"))
    sbatch = [c for c in remote.commands if c.startswith("sbatch")]
    assert len(sbatch) == 1 and run.job_ids == ["85"]
    assert f"--chdir={run.folder}" in sbatch[0] and "--partition=spot" in sbatch[0] and "--array=0-3" in sbatch[0]
    assert sbatch[0].endswith(f"{run.folder}/align.sh")
    assert session.manifest.get(run.id).job_ids == ["85"]


def test_a_refused_submission_says_why_and_leaves_no_folder(tmp_path):
    script = tmp_path / "align.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    refusal = "sbatch: error: invalid partition specified: nope"
    session, remote = _session(tmp_path, {("sbatch",): (1, "", refusal)})
    with pytest.raises(SlurmError) as error:
        session.submit(Submission(script, queue="nope"))
    assert error.value.message == f"sbatch on head refused the job: {refusal}"
    assert remote.commands[-1].startswith("rm -rf -- /shared/hpctool-runs/")
    assert session.manifest.load() == {}


def test_submit_on_a_host_without_slurm(tmp_path):
    script = tmp_path / "align.sh"
    script.write_text("true\n")
    remote = FakeRemote()
    remote.run = lambda command, **kw: Result(127, "", "sh: sbatch: not found")
    session = RemoteSession(remote, Manifest(tmp_path / "m.json"))  # type: ignore[arg-type]
    with pytest.raises(SlurmError) as error:
        session.submit(Submission(script))
    assert error.value.message == "Slurm is not installed on head: sbatch: command not found"


def test_running_nodes_leave_out_powered_down_and_drained_ones():
    rows = ("spot-st-mixed16-1|idle|10.0.0.1\nspot-st-mixed16-2|drained|10.0.0.2\n"
            "spot-dy-mixed16-1|idle~|10.0.0.3\nspot-dy-mixed16-2|mixed#|10.0.0.4\nspot-dy-mixed16-3|allocated|10.0.0.5\n")
    slurm = Slurm(runner=FakeRunner({("sinfo", "-h", "-N", "-p", "spot"): rows}))
    assert [n["node"] for n in running_nodes(slurm, "head", "spot")] == ["spot-st-mixed16-1", "spot-dy-mixed16-3"]
    with pytest.raises(UsageError, match="queue gpu has no nodes on head"):
        running_nodes(Slurm(runner=FakeRunner({("sinfo",): ""})), "head", "gpu")


@pytest.mark.parametrize(("queued", "expected"), [
    ("16|spot|RUNNING\n", ""),
    ("", "COMPLETED"),
    ((1, "", "slurm_load_jobs error: Invalid job id specified"), "COMPLETED"),
])
def test_a_run_is_over_when_slurmctld_no_longer_has_its_jobs(queued, expected):
    job_1 = pasted("sacct-requeued.txt").splitlines()[0]
    slurm = Slurm(runner=FakeRunner({("squeue",): queued, SACCT: job_1}))
    assert jobs_state(slurm, ["1"]) == expected


def test_jobs_of_a_run_from_one_sacct(tmp_path):
    script = tmp_path / "a.sh"
    script.write_text("true\n")
    session, remote = _session(tmp_path, {("sbatch",): "2\n", SACCT: pasted("sacct-requeued.txt")})
    run = session.submit(Submission(script))
    rows = session.jobs()
    assert [(r["run"], r["job_ids"], r["states"]) for r in rows] == [(run.id, ["2"], ["COMPLETED"])]
    assert sum(c.startswith("sacct") for c in remote.commands) == 1
