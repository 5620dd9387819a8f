"""A cluster without Slurm accounting, offline: on the real output of Slurm 24.11 without slurmdbd
(tests/data/slurm/24.11/no-accounting/, captured from the twin by scripts/capture_slurm_output.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpctool.cluster.queues import load_queues
from hpctool.errors import AccountingDisabledError, SetupError, SlurmError
from hpctool.jobs.table import rows_from_controller
from hpctool.jobs.watch import ENDED, QueueWatcher, states_from_queue
from hpctool.notebook import config as hub_config
from hpctool.slurm.client import KNOWN_JOBS
from hpctool.slurm.parse import (
    acct_jobs_from_scontrol,
    has_accounting,
    parse_delimited,
    parse_scontrol_config,
    parse_scontrol_records,
)
from hpctool.slurm.runner import command_failed
from hpctool.workflow import launch

DATA = Path(__file__).parent / "data" / "slurm"
BARE = DATA / "24.11" / "no-accounting"


def known_jobs() -> list[dict[str, str]]:
    return parse_delimited((BARE / "squeue-known-jobs.txt").read_text(), KNOWN_JOBS[1])


def test_the_config_tells_a_cluster_with_accounting_from_one_without() -> None:
    for version in ("22.05", "24.11"):
        assert has_accounting(parse_scontrol_config((DATA / version / "scontrol-show-config.txt").read_text()))
    bare = parse_scontrol_config((BARE / "scontrol-show-config.txt").read_text())
    assert bare["AccountingStorageType"] == "(null)" and not has_accounting(bare)


@pytest.mark.parametrize("where", ["", "head.example.org"])
def test_sacct_without_accounting_is_its_own_error_with_the_fix(where: str) -> None:
    code, detail = (BARE / "sacct-disabled.txt").read_text().split("\n", 1)
    error = command_failed(["sacct", "-j", "547"], int(code.split()[1]), detail.strip(), where)
    assert isinstance(error, AccountingDisabledError) and error.exit_code == 2
    assert "no Slurm accounting" in error.message and (where in error.message)
    assert "SlurmSettings.Database" in error.hint and "database-template" in error.hint
    # Any other failure stays what it was.
    other = command_failed(["sacct"], 1, "sacct: error: Problem talking to the database: Connection refused", where)
    assert not isinstance(other, AccountingDisabledError) and other.exit_code == 1


def test_squeue_states_become_submitit_states() -> None:
    info = states_from_queue(known_jobs(), {"547", "548", "549", "550_0", "550_4", "546"})
    assert {job: row["State"] for job, row in info.items()} == {
        "547": "COMPLETED", "548": "FAILED", "549": "RUNNING", "550_0": "RUNNING",
        "550_4": "RUNNING",  # squeue says CONFIGURING (its node boots); submitit would take it for done
        "546": ENDED,  # slurmctld forgot it: it ended, whatever it wrote is its result
    }
    assert info["547"]["NodeList"] == "compute-st-c7i4xl-1"


class Controller:
    """squeue's answers, one per call, as the watcher's Slurm would give them (or an error)."""

    def __init__(self, *answers: list[dict[str, str]] | SlurmError) -> None:
        self.answers = list(answers)

    def known_jobs(self) -> list[dict[str, str]]:
        answer = self.answers.pop(0)
        if isinstance(answer, SlurmError):
            raise answer
        return answer


def test_the_watcher_keeps_the_last_state_while_slurmctld_does_not_answer() -> None:
    running = [row for row in known_jobs() if row["id"] == "549"]
    done = [{**running[0], "state": "COMPLETED"}]
    watcher = QueueWatcher(Controller(running, SlurmError("squeue timed out", "is slurmctld up?"), done))
    watcher.register_job("549")
    watcher.update()
    assert watcher.get_state("549", mode="cache") == "RUNNING" and not watcher.is_done("549", mode="cache")
    watcher.update()  # slurmctld down: nothing learned, nothing lost
    assert watcher.get_state("549", mode="cache") == "RUNNING"
    watcher.update()
    assert watcher.is_done("549", mode="cache") and watcher.num_calls == 3


def test_controller_records_make_the_job_table() -> None:
    records = parse_scontrol_records((BARE / "scontrol-show-jobs.txt").read_text())
    rows = rows_from_controller(records)
    assert {r.id: r.state for r in rows} == {
        "547": "COMPLETED", "548": "FAILED", "549": "RUNNING", **{f"550_{t}": s for t, s in
                                                                  [(0, "RUNNING"), (1, "RUNNING"), (2, "RUNNING"),
                                                                   (3, "CONFIGURING"), (4, "CONFIGURING"),
                                                                   (5, "CONFIGURING")]}}
    assert [r.id for r in rows_from_controller(records, job_ids=["550"])] == [f"550_{t}" for t in range(6)]
    assert rows_from_controller(records, user="alice") == []
    assert len(rows_from_controller(records, user="root")) == len(rows)
    failed = next(j for j in acct_jobs_from_scontrol(records) if j.job_id == "548")
    assert (failed.exit_code, failed.partition, failed.node_list, failed.restarts) == ("3:0", "compute",
                                                                                       "compute-st-c7i4xl-1", 0)
    assert failed.end and next(j for j in acct_jobs_from_scontrol(records) if j.job_id == "549").end == ""


def test_a_run_without_accounting_checks_job_states_with_squeue(tmp_path: Path) -> None:
    argv = launch.snakemake_argv("germline", tmp_path, profile="twin", test=True, accounting=False)
    assert argv[argv.index("--slurm-status-command") + 1] == "squeue"
    assert "--slurm-status-command" not in launch.snakemake_argv("germline", tmp_path, profile="twin", test=True)
    chosen = launch.snakemake_argv("germline", tmp_path, profile="twin", test=True, accounting=False,
                                   extra=["--slurm-status-command", "sacct"])
    assert chosen.count("--slurm-status-command") == 1  # the user's choice stands
    assert "--slurm-status-command" not in launch.snakemake_argv("germline", tmp_path, profile=None, cores=1,
                                                                 test=True, accounting=False)


def test_the_cluster_profile_without_conda_runs_the_twin_tools_or_says_why(tmp_path: Path) -> None:
    no_conda = {"PATH": str(tmp_path)}  # a PATH without conda
    on_twin = launch.snakemake_argv("germline", tmp_path, profile="slurm", test=True,
                                    env={**no_conda, "HPCTOOL_TWIN_HOME": str(tmp_path)})
    assert on_twin[-2:] == ["--sdm", "env-modules"]
    with pytest.raises(SetupError) as refused:
        launch.snakemake_argv("germline", tmp_path, profile="slurm", test=True, env=no_conda)
    assert "conda is not on PATH" in refused.value.message and "--sdm=env-modules" in refused.value.hint
    conda = tmp_path / "conda"
    conda.write_text("#!/bin/sh\n")
    conda.chmod(0o755)
    assert "--sdm" not in launch.snakemake_argv("germline", tmp_path, profile="slurm", test=True, env=no_conda)
    assert "--sdm" not in launch.snakemake_argv("germline", tmp_path, profile="twin", test=True, env={})


def test_the_notebook_spawner_needs_no_accounting() -> None:
    """batchspawner asks squeue for the notebook job's state; the hub's sudo rule allows no sacct."""
    files = hub_config.head_node_files(load_queues(), hub_config.cluster_settings())
    for name in ("jupyterhub_config.py", "hpctool_spawner.py", "sudoers"):
        assert "sacct" not in files[name], name
    assert "squeue" in files["jupyterhub_config.py"] and "squeue" in files["sudoers"]
