"""A twin made from a config without Slurm accounting (no ``SlurmSettings.Database``), as the
cluster that config makes: no slurmdbd, no database, and ``sacct`` says accounting is disabled."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.slurm.parse import parse_sbatch_parsable
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


def test_no_slurmdbd_and_no_database_run_and_the_twin_is_up(bare_twin):
    status = bare_twin.status()
    assert status["up"], status["dead"]
    assert "slurmdbd" not in status["daemons"] and "mariadbd" not in status["daemons"]
    assert status["daemons"]["slurmctld"]["running"]
    processes = run(bare_twin, "ps", "-eo", "comm").stdout.split()
    assert "slurmdbd" not in processes and "mariadbd" not in processes
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
