"""A twin made from a config without Slurm accounting (no ``SlurmSettings.Database``), as the
cluster that config makes: no slurmdbd, no database, and ``sacct`` says accounting is disabled."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpctool import jobs
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.slurm.parse import parse_sbatch_parsable
from hpctool.twin.head import HEAD
from hpctool.vcf import reading, recall
from hpctool.workflow import rules
from support.twin import SUITE_TWIN_OPTIONS, bring_up, reset_twin, wait_for

pytestmark = pytest.mark.twin


def without_accounting(folder: Path) -> Path:
    config = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
    del config["Scheduling"]["SlurmSettings"]["Database"]
    path = folder / "cluster-without-accounting.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def bare_twin(twin, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The suite's twin, brought up from the config without accounting for this module, then back."""
    config = without_accounting(tmp_path_factory.mktemp("no-accounting"))
    bring_up(twin, config, **SUITE_TWIN_OPTIONS)  # another cluster: the running one is stopped first
    try:
        yield twin
    finally:
        bring_up(twin, DEFAULT_CLUSTER_CONFIG, **SUITE_TWIN_OPTIONS)
        reset_twin(twin)


def run(twin, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=twin.env(), capture_output=True, text=True, timeout=60, check=False)


def _processes_on_head(twin, names: set[str]) -> list[str]:
    """Processes of these names in the twin's head node host (its network namespace): another
    twin on the machine (the suite runs two) may have its own."""
    head_net = os.readlink(f"/proc/{twin.hosts.keeper(HEAD)}/ns/net")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() in names \
                    and os.readlink(proc / "ns" / "net") == head_net:
                found.append((proc / "comm").read_text().strip())
        except OSError:  # it ended meanwhile
            continue
    return found


def test_no_slurmdbd_and_no_database_run_and_the_twin_is_up(bare_twin):
    status = bare_twin.status()
    assert status["up"], status["dead"]
    assert "slurmdbd" not in status["daemons"] and "mariadbd" not in status["daemons"]
    assert status["daemons"]["slurmctld"]["running"]
    assert _processes_on_head(bare_twin, {"slurmctld"}) == ["slurmctld"]  # the check sees the head's daemons
    assert not _processes_on_head(bare_twin, {"slurmdbd", "mariadbd"})
    config = bare_twin.slurm.config()
    # slurm.conf says accounting_storage/none; Slurm 24.11 shows it as no plugin at all.
    assert "slurmdbd" not in config["AccountingStorageType"], config["AccountingStorageType"]
    assert config["AccountingStorageEnforce"] == "none"


def test_jobs_run_and_sacct_answers_as_the_cluster_would(bare_twin, tmp_path):
    submitted = run(bare_twin, "sbatch", "--parsable", f"--chdir={tmp_path}", "-p", "compute",
                    "--wrap", "hostname > where.txt")
    assert submitted.returncode == 0, submitted.stderr
    job_id = parse_sbatch_parsable(submitted.stdout)
    wait_for(lambda: bare_twin.slurm.job(job_id).get("JobState") == "COMPLETED", what=f"job {job_id} completed")
    assert (tmp_path / "where.txt").read_text().strip().startswith("compute-")
    sacct = run(bare_twin, "sacct", "-j", job_id)
    assert sacct.returncode != 0
    assert "Slurm accounting storage is disabled" in sacct.stderr + sacct.stdout


def hpctool(twin, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as a user on the twin runs it (`eval "$(hpctool local env)"` first)."""
    return subprocess.run([str(Path(sys.executable).parent / "hpctool"), *argv], env=twin.env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_submit_wait_learns_every_state_from_slurmctld(bare_twin, tmp_path):
    """submitit's own watcher reads sacct and, without accounting, would wait for ever."""
    done = hpctool(bare_twin, "submit", "--queue", "compute", "--time", "5", "--folder", str(tmp_path), "--wait",
                   "--json", "--", "hostname")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["jobs"]
    assert (row["state"], row["result"]) == ("COMPLETED", 0)
    failed = hpctool(bare_twin, "submit", "--queue", "compute", "--time", "5", "--folder", str(tmp_path), "--wait",
                     "--json", "--", "exit 3")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    (row,) = json.loads(failed.stdout)["jobs"]
    assert row["state"] == "FAILED" and "exit status 3" in row["error"]

    cluster = jobs.resolve_cluster(bare_twin.slurm, arrays=True)
    assert cluster.accounting is False
    job = jobs.submit(operator.add, 2, 3, resources=jobs.Resources(queue="compute", time_min=5),
                      folder=tmp_path, cluster=cluster)
    tasks = jobs.map_array(abs, [-1, -2, -3], jobs.Resources(queue="compute", time_min=5), folder=tmp_path,
                           cluster=cluster)
    assert {type(j) for j in [job, *tasks]} == {jobs.QueueWatchedJob}  # submitit makes arrays as SlurmJob
    assert job.result() == 5 and [t.result() for t in tasks] == [1, 2, 3]
    # result() may return from the result file while the watcher last saw COMPLETING; it learns the rest.
    wait_for(lambda: job.watcher.get_state(job.job_id, mode="force") == "COMPLETED", what="the state from squeue")


def test_jobs_falls_back_to_slurmctld_and_history_commands_say_why(bare_twin, tmp_path):
    submitted = run(bare_twin, "sbatch", "--parsable", f"--chdir={tmp_path}", "-p", "compute", "-J", "listed",
                    "--wrap", "true")
    job_id = parse_sbatch_parsable(submitted.stdout)
    wait_for(lambda: bare_twin.slurm.job(job_id).get("JobState") == "COMPLETED", what=f"job {job_id} completed")
    listed = hpctool(bare_twin, "jobs", job_id, "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["name"], row["queue"], row["state"]) == (job_id, "listed", "compute", "COMPLETED")
    assert "no Slurm accounting" in listed.stderr and "MinJobAge" in listed.stderr
    for argv in (["cost", "jobs"], ["report", "--since", "now-1hour", "-o", str(tmp_path / "report.html")]):
        refused = hpctool(bare_twin, *argv)
        assert refused.returncode == 2, (argv, refused.stdout, refused.stderr)
        assert "error: this cluster has no Slurm accounting" in refused.stderr
        assert "SlurmSettings.Database" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "report.html").exists()


def test_the_cluster_profile_runs_germline_without_accounting(bare_twin, tmp_path):
    """`hpctool run germline OUT --profile slurm --test`, the profile a cluster user runs: job states
    from squeue (no accounting), the Debian tools of the node image instead of conda (docs/twin.md)."""
    out = tmp_path / "germline"
    result = hpctool(bare_twin, "run", "germline", str(out), "--profile", "slurm", "--test", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--slurm-status-command squeue" in result.stderr and "--sdm env-modules" in result.stderr
    records = rules.rule_jobs(bare_twin.slurm, out)  # slurmctld's records: the run just ended
    intended = {"index_reference": "spot", "align": "compute", "sort_markdup": "storage", "call_sample": "spot",
                "qc_sample": "spot", "joint_call": "spot"}
    # A group job's record names its group (group_sample_calls_call_sample_qc_sample) or its rules.
    routed = {(rule, r.acct.partition) for r in records for rule in intended if rule in "+".join(r.rules)}
    assert routed == set(intended.items())
    assert all(r.acct.state == "COMPLETED" for r in records)
    assert "Slurm jobs of" in result.stdout  # the job table, from slurmctld
    truth = reading.load_vcf(out / "test-data" / "truth.vcf")
    found = recall.cohort_recall(truth, [reading.load_vcf(out / "cohort" / "cohort.vcf.gz")])
    planted = sum(r.planted for r in found)
    assert planted >= 60 and sum(r.found for r in found) / planted >= 0.95, [r.missed for r in found]
