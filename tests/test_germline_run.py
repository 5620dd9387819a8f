"""`hpctool run germline` as a process: signals reach Snakemake, a killed run never leaves it
running on its own, a run killed hard resumes without a manual `--unlock`, and
`--slurm-no-requeue` works with profiles that set `slurm-requeue`. Runs on this machine
(`--cores`); the Slurm side of stopping a run is in test_germline_twin.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpctool.errors import UsageError
from hpctool.workflow import launch
from support.twin import wait_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(germline_data: Path) -> Path:
    return germline_data  # the session's seeded test data (conftest)


def _folder(tmp_path: Path, data: Path, name: str) -> Path:
    out = tmp_path / name
    out.mkdir()
    (out / launch.TEST_DATA_DIR).symlink_to(data)
    return out


def _hpctool_run(out: Path, log: Path) -> subprocess.Popen:
    """`hpctool run germline OUT --test --cores 1` (one rule at a time: ~10 s to catch it in)."""
    argv = [sys.executable, "-m", "hpctool.cli", "run", "germline", str(out), "--test", "--cores", "1"]
    with open(log, "ab") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)


def _snakemake_pid(out: Path, previous: int | None = None) -> int:
    """The Snakemake child, once it has taken the run folder's lock (not ``previous``: the PID file
    of a run whose hpctool was killed stays until the next run writes its own)."""
    def started() -> int | None:
        locks = out / ".snakemake" / "locks"
        try:
            pid = int((out / launch.RUN_STATE_DIR / "snakemake.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid != previous and locks.is_dir() and any(locks.iterdir()) else None
    return wait_for(started, timeout=90, interval=0.2, what="Snakemake to start and lock the folder")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie has exited (its parent was killed before it could wait)


def test_sigterm_reaches_snakemake_and_the_run_stops(tmp_path: Path, data: Path) -> None:
    out = _folder(tmp_path, data, "term")
    run = _hpctool_run(out, tmp_path / "term.log")
    child = _snakemake_pid(out)
    # Mid-run: its scheduler (which handles the signal) is working through the jobs.
    wait_for(lambda: "Finished jobid" in (tmp_path / "term.log").read_text(), timeout=60, interval=0.1,
             what="the first job to finish")
    run.send_signal(signal.SIGTERM)
    code = run.wait(timeout=60)
    assert code != 0, (tmp_path / "term.log").read_text()[-2000:]
    wait_for(lambda: _gone(child), timeout=30, what="Snakemake to exit")
    # Snakemake stopped on the signal, cleanly: it released its lock (SIGTERM's default action,
    # without Snakemake's handler, would have left the lock behind).
    assert not launch.stale_lock(out)
    assert not (out / "qc" / "summary.tsv").exists()
    assert not (out / launch.RUN_STATE_DIR / "snakemake.pid").exists()


def test_a_killed_run_leaves_no_snakemake_and_resumes_without_unlock(tmp_path: Path, data: Path) -> None:
    """SIGKILL of hpctool: Snakemake gets SIGTERM from the kernel (no orphan). SIGKILL of both:
    the lock stays behind, and the next `hpctool run` removes it and finishes the run."""
    out = _folder(tmp_path, data, "kill")
    log = tmp_path / "kill.log"
    run = _hpctool_run(out, log)
    child = _snakemake_pid(out)
    run.kill()
    run.wait(timeout=10)
    wait_for(lambda: _gone(child), timeout=90, what="Snakemake to follow hpctool")  # it cancels its jobs first

    run = _hpctool_run(out, log)
    child = _snakemake_pid(out, previous=child)
    os.kill(child, signal.SIGKILL)  # hard: no chance to remove its lock
    run.kill()
    run.wait(timeout=10)
    wait_for(lambda: _gone(child), timeout=30, what="the killed Snakemake to be gone")  # SIGKILL takes a moment
    assert any((out / ".snakemake" / "locks").iterdir()), log.read_text()[-3000:]
    assert launch.stale_lock(out)

    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "hpctool.cli", "run", "germline", str(out), "--test",
                             "--cores", "2"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "left its lock; unlocking" in result.stderr
    assert (out / "qc" / "summary.tsv").is_file()
    assert not launch.stale_lock(out)
    assert time.monotonic() - started < 300


def test_a_lock_of_a_run_started_by_hand_gets_the_one_command_to_run(tmp_path: Path) -> None:
    out = tmp_path / "by-hand"
    (out / ".snakemake" / "locks").mkdir(parents=True)
    (out / ".snakemake" / "locks" / "0.input.lock").write_text("x\n")
    argv = ["snakemake", "-s", "Snakefile", "--directory", str(out)]
    with pytest.raises(UsageError) as error:
        launch.prepare_run(argv, out)
    assert "locked by another Snakemake run" in error.value.message
    assert error.value.hint.endswith(f"snakemake -s Snakefile --directory {out} --unlock")


@pytest.mark.xdist_group("twin")  # its dry run asks the twin's Slurm: never beside a test that kills it
@pytest.mark.parametrize("profile", ["twin", "slurm"])
def test_slurm_no_requeue_works_with_a_profile_that_requeues(tmp_path: Path, data: Path, profile: str) -> None:
    """The plugin refuses --slurm-no-requeue next to the profile's slurm-requeue; hpctool runs with
    a copy of the profile without it (a dry run goes through the plugin's own checks)."""
    out = _folder(tmp_path, data, profile)
    extra = ["-n", "--slurm-no-requeue", *(["--sdm", "env-modules"] if profile == "slurm" else [])]
    argv = launch.snakemake_argv("germline", out, profile=profile, test=True, extra=extra)
    used = Path(argv[argv.index("--profile") + 1])
    original = yaml.safe_load((launch.profile_dir(profile) / "config.yaml").read_text())
    assert original["slurm-requeue"] is True
    assert yaml.safe_load((used / "config.yaml").read_text()) == {k: v for k, v in original.items()
                                                                   if k != "slurm-requeue"}
    if profile != "twin":
        return  # the plugin's checks are the same for both: one dry run pair is enough
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    as_written = [a if a != str(used) else str(launch.profile_dir(profile)) for a in argv]
    refused = subprocess.run(as_written, capture_output=True, text=True, timeout=180, check=False)
    assert refused.returncode != 0 and "mutually exclusive" in refused.stderr
    assert launch.snakemake_argv("germline", out, profile=profile, test=True)[argv.index("--profile") + 1] \
        == str(launch.profile_dir(profile))
