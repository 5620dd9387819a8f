"""`hpctool submit` and `hpctool jobs` against the real twin (submitit, sbatch, sacct)."""

from __future__ import annotations

import json

import pytest

from hpctool import jobs
from hpctool.cli import main as cli
from support.twin import wait_for

pytestmark = pytest.mark.twin


def spot_and_other(twin) -> tuple[str, str]:
    queues = twin.layout().queues
    return (next(q["name"] for q in queues if q["spot"]), next(q["name"] for q in queues if not q["spot"]))


def test_submit_a_command_waits_and_the_job_table_shows_it(twin, tmp_path, capsys):
    spot_queue, _ = spot_and_other(twin)
    assert jobs.resolve_cluster(twin.slurm).accounting  # the default config has a Database: sacct watches
    out = tmp_path / "out.txt"
    code = cli(["submit", "--queue", spot_queue, "--name", "cli-shell", "--folder", str(tmp_path), "--wait", "--json",
                "--", f"echo $SLURM_JOB_PARTITION > {out}"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requeue"] is True  # on by default on a spot queue
    (row,) = result["jobs"]
    assert row["state"] == "COMPLETED" and row["result"] == 0
    assert out.read_text().strip() == spot_queue
    assert twin.slurm.job(row["id"])["Requeue"] == "1"

    # slurmdbd records the job's details a moment after the job ends (the name reads "allocation" until then).
    wait_for(lambda: [(r.name, r.state) for r in jobs.list_jobs(twin.slurm, [row["id"]])] == [("cli-shell", "COMPLETED")],
             what="the job in accounting")
    assert cli(["jobs", row["id"], "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == row["id"] and listed["name"] == "cli-shell" and listed["queue"] == spot_queue
    assert listed["state"] == "COMPLETED" and listed["restarts"] == 0 and listed["node"].startswith(spot_queue)
    assert cli(["jobs", row["id"]]) == 0
    assert "RESTARTS" in capsys.readouterr().out


def test_an_array_runs_one_task_per_line_and_a_failure_is_reported(twin, tmp_path, capsys):
    _, on_demand = spot_and_other(twin)
    inputs = tmp_path / "samples.txt"
    inputs.write_text("alpha\nbeta\n\ngamma\n")
    code = cli(["submit", "--queue", on_demand, "--array", str(inputs), "--folder", str(tmp_path), "--wait", "--json",
                "--", f"test {{}} != beta && echo {{}} >> {tmp_path}/seen"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1  # the beta task failed, and says so
    assert result["requeue"] is False  # not a spot queue
    assert [r["state"] for r in result["jobs"]] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert "exit status 1" in result["jobs"][1]["error"]
    assert sorted((tmp_path / "seen").read_text().split()) == ["alpha", "gamma"]
    assert len({r["id"].split("_")[0] for r in result["jobs"]}) == 1  # one Slurm array


def test_map_array_of_a_python_callable(twin, tmp_path):
    spot_queue, _ = spot_and_other(twin)
    submitted = jobs.map_array(jobs.CheckpointedSum.value, [1, 2, 3],
                               jobs.Resources(queue=spot_queue, requeue=False, name="map"), folder=tmp_path)
    assert [job.result() for job in submitted] == [jobs.CheckpointedSum.value(i) for i in (1, 2, 3)]
    assert twin.slurm.job(submitted[0].job_id)["Requeue"] == "0"  # --no-requeue asked explicitly
