"""Bad submissions and a broken control plane on the real twin: each is a clear hpctool error
(message and hint, no traceback), checked before sbatch where Slurm would accept a job that can
never run, and nothing is left behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool import jobs
from hpctool.cli import main as cli
from hpctool.errors import SlurmError
from hpctool.twin import daemons
from support.twin import wait_all_idle, wait_for

pytestmark = pytest.mark.twin


def _queued(twin, name: str) -> int:
    return len(twin.slurm.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"]).stdout.split())


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def held_queue(twin) -> Iterator[str]:
    """A queue whose nodes are drained: jobs queue up there and none runs (only submission is tested)."""
    queue = next(q for q in twin.layout().queues if q["name"] == "storage")
    for node in queue["nodes"]:
        twin.slurm.update_node(node, "drain", reason="test: hold jobs")
    yield queue["name"]
    twin.slurm.run(["scancel", "-p", queue["name"]])
    twin.slurm.run(["scontrol", "update", f"partitionname={queue['name']}", "state=up", "maxtime=UNLIMITED"])
    for node in queue["nodes"]:
        twin.slurm.update_node(node, "resume")
    wait_all_idle(twin)


def test_requests_no_node_can_run_are_clear_errors_before_sbatch(twin, held_queue, tmp_path, capsys):
    folder = tmp_path / "jobs"
    cases = [
        (["--queue", "nope"], "unknown queue 'nope'", "compute, fpga, spot, storage"),
        (["--queue", held_queue, "--cpus", "64"], f"--cpus 64: no node of queue {held_queue} has more than 4 CPUs",
         "at most 4"),
        (["--queue", held_queue, "--mem", "64G"], f"--mem 64G: no node of queue {held_queue} has more than", "M, or pick"),
        (["--queue", held_queue, "--time", "91"], f"--time 91: queue {held_queue} allows at most 90 minutes",
         "at most 90"),
    ]
    twin.slurm.run(["scontrol", "update", f"partitionname={held_queue}", "maxtime=90"])
    for options, message, hint in cases:
        code = cli(["submit", *options, "--name", "refused", "--folder", str(folder), "--", "true"])
        err = capsys.readouterr().err
        assert code == 2, options
        assert f"error: {message}" in err and "hint: " in err and hint in err, err
        assert "Traceback" not in err
    assert _queued(twin, "refused") == 0 and not _leftovers(folder)
    # Slurm 24.11 itself refuses the CPU request too (22.05 took it and left it pending forever),
    # but with no word of the queue's limit: hpctool's check is what names it.
    with pytest.raises(SlurmError) as refused:
        twin.slurm.sbatch([f"--partition={held_queue}", "--cpus-per-task=64", "--output=/dev/null"], wrap="true")
    assert "CPU count per node can not be satisfied" in refused.value.message


def test_sbatch_refusals_are_its_message_with_a_hint_and_leave_nothing(twin, held_queue, tmp_path, capsys):
    folder = tmp_path / "jobs"
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("".join(f"s{i}\n" for i in range(1002)))
    twin.slurm.run(["scontrol", "update", f"partitionname={held_queue}", "state=inactive"])
    for extra in ([], ["--array", str(inputs)]):
        code = cli(["submit", "--queue", held_queue, "--name", "inactive", "--folder", str(folder), *extra,
                    "--", "echo {}"])
        err = capsys.readouterr().err
        assert code == 1
        assert ("error: sbatch refused the job: Batch job submission failed: Required partition not available "
                "(inactive or drain)") in err
        assert "hint: the queue is not taking jobs now" in err and "Traceback" not in err
        assert err.count("Required partition not available") == 1  # submitit's own print is not repeated
    assert _queued(twin, "inactive") == 0
    assert not _leftovers(folder)  # not one of the 1,002 pickles stays


def test_an_array_beyond_max_array_size_is_split_into_several_arrays(twin, held_queue, tmp_path, capsys):
    max_size = int(twin.slurm.config()["MaxArraySize"])
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("".join(f"s{i}\n" for i in range(max_size + 1)))
    assert cli(["submit", "--queue", held_queue, "--name", "split", "--array", str(inputs),
                "--folder", str(tmp_path / "jobs"), "--json", "--", "echo {}"]) == 0
    submitted = json.loads(capsys.readouterr().out)["jobs"]
    arrays = {}
    for row in submitted:
        array_id, task = row["id"].split("_")
        arrays.setdefault(array_id, []).append(int(task))
    assert sorted(len(tasks) for tasks in arrays.values()) == [(max_size + 1) // 2, (max_size + 2) // 2]
    assert all(sorted(tasks) == list(range(len(tasks))) for tasks in arrays.values())
    assert _queued(twin, "split") == max_size + 1


def test_a_job_named_with_a_pipe_is_listed_whole_and_nothing_lands_in_the_cwd(twin, tmp_path, capsys, monkeypatch):
    cwd, state = tmp_path / "cwd", tmp_path / "state"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("HPCTOOL_JOBS_DIR", raising=False)
    assert cli(["submit", "--queue", "compute", "--name", "a|b", "--wait", "--json", "--", "true"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["jobs"]
    assert list(cwd.iterdir()) == []  # no hpctool-jobs/ where the user happened to be
    assert Path(row["folder"]).is_relative_to(state / "hpctool" / "jobs")
    # slurmdbd records the job's name and its end a moment after the job ends.
    wait_for(lambda: [(r.name, r.state) for r in jobs.list_jobs(twin.slurm, [row["id"]])] == [("a|b", "COMPLETED")],
             what="the job in sacct")
    assert cli(["jobs", row["id"], "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["queue"], listed["state"]) == ("a|b", "compute", "COMPLETED")


def test_jobs_says_which_daemon_is_down(twin, capsys):
    # slurmdbd down: the error names slurmdbd (it used to blame slurmctld).
    try:
        assert daemons.stop_pid(daemons.read_pid(twin.run_dir / "slurmdbd.pid"), name="slurmdbd")
        assert cli(["jobs"]) == 1
        err = capsys.readouterr().err
        assert "error: sacct" in err and "hint: slurmdbd (accounting) is not reachable" in err, err
        assert "slurmctld is not reachable" not in err and "Traceback" not in err
    finally:
        twin.up()  # restarts the core daemons (all of them, today)
    # slurmctld down: accounting still answers, with a warning that states may be stale.
    try:
        assert daemons.stop_pid(daemons.read_pid(twin.run_dir / "slurmctld.pid"), name="slurmctld")
        assert cli(["jobs", "--json"]) == 0
        captured = capsys.readouterr()
        assert isinstance(json.loads(captured.out), list)
        assert "warning: slurmctld does not answer" in captured.err and "hpctool local up" in captured.err
    finally:
        twin.up()
        wait_all_idle(twin)
    assert cli(["jobs", "--json"]) == 0
    assert "warning" not in capsys.readouterr().err
