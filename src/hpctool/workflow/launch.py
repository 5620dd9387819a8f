"""Run the repository's Snakemake workflows.

``hpctool run germline OUT`` is one Snakemake command line (the profile decides the executor);
this module builds it, makes the seeded test data when asked, and runs it (through
:mod:`hpctool.workflow.snakemake_main`). Where its jobs ran: :mod:`hpctool.workflow.rules`.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from hpctool.atomic import write_atomic
from hpctool.errors import ConfigError, HpctoolError, SetupError, UsageError
from hpctool.home import on_twin
from hpctool.progress import Progress, quiet
from hpctool.shipped import path as shipped
from hpctool.slurm.client import Slurm
from hpctool.workflow import snakemake_main

SNAKEMAKE_DIR = shipped("snakemake")
WORKFLOWS = {"germline": SNAKEMAKE_DIR / "workflows" / "germline"}
PROFILES = {"twin": SNAKEMAKE_DIR / "profiles" / "twin", "slurm": SNAKEMAKE_DIR / "profiles" / "slurm"}
TEST_DATA_SCRIPT = shipped("scripts/make_test_data.py")
TEST_DATA_DIR = "test-data"  # inside the run folder: where config/test.yaml looks
RUN_STATE_DIR = ".hpctool"  # inside the run folder: the running Snakemake's PID, derived profiles
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Runs on the twin (the twin profile's, and any profile's where HPCTOOL_TWIN_HOME says it is the twin)
# see a finished job within this many seconds (the plugin's own back-off would wait up to 180 s;
# hpctool.workflow.snakemake_main). One sacct per check: nothing for the twin.
TWIN_STATUS_CHECK_CEILING_S = 1
STATUS_COMMAND_OPTION = "--slurm-status-command"
SDM_OPTIONS = ("--sdm", "--software-deployment-method", "--use-conda", "--use-envmodules")



def workflow_dir(name: str) -> Path:
    if name not in WORKFLOWS:
        raise UsageError(f"unknown workflow {name!r}", f"workflows: {', '.join(WORKFLOWS)}")
    return WORKFLOWS[name]


def profile_dir(name_or_path: str) -> Path:
    """A profile by name (``twin``, ``slurm``) or a folder holding a config.yaml."""
    path = PROFILES.get(name_or_path, Path(name_or_path))
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"profile {name_or_path}: no config.yaml in {path}",
                          f"use one of {', '.join(PROFILES)} or a folder with a Snakemake profile")
    return path.resolve()


def snakemake_argv(workflow: str, out: Path, *, profile: str | None = "twin", configfile: Path | None = None,
                   test: bool = False, cores: int | None = None, extra: Sequence[str] = (),
                   accounting: bool = True, env: dict[str, str] | None = None) -> list[str]:
    """The Snakemake command line of one run (``cores`` without a profile: run on this machine).
    On a cluster without ``accounting`` the Slurm plugin checks job states with squeue: with the
    profiles' sacct every check fails, and the plugin gives up watching the run's jobs."""
    folder = workflow_dir(workflow)
    if test and configfile is None:
        configfile = folder / "config" / "test.yaml"
    if configfile is None:
        raise UsageError(f"no config file for the {workflow} workflow",
                         f"give --configfile (see {folder / 'README.md'}) or --test for the test data")
    if not Path(configfile).is_file():
        raise ConfigError(f"config file {configfile} does not exist", "check the path")
    # hpctool's launcher: Snakemake with the Slurm plugin's node exclusions fixed, one Snakemake
    # start per Slurm job and, on the twin, a ceiling on the status-check back-off
    # (hpctool.workflow.snakemake_main says why).
    argv = [sys.executable, "-m", "hpctool.workflow.snakemake_main"]
    if profile is not None:
        argv.append(snakemake_main.BATCH_STEP_OPTION)
    # On the twin, whatever the profile: its time runs scaled (seconds for ParallelCluster's minutes),
    # and the workflow's status checks with it.
    if profile is not None and (profile_dir(profile) == PROFILES["twin"].resolve() or on_twin(env)):
        argv += [snakemake_main.CEILING_OPTION, f"{TWIN_STATUS_CHECK_CEILING_S:g}"]
    argv += ["-s", str(folder / "Snakefile"),
             "--configfile", str(Path(configfile).resolve()), "--directory", str(out.resolve())]
    if profile is not None:
        argv += ["--profile", str(profile_for_run(profile_dir(profile), out, extra))]
    if cores is not None:
        argv += ["--cores", str(cores)]
    if profile is not None and not accounting and STATUS_COMMAND_OPTION not in extra:
        argv += [STATUS_COMMAND_OPTION, "squeue"]
    if profile is not None:
        argv += software_args(profile_dir(profile), extra, env)
    return argv + list(extra)


def software_args(profile: Path, extra: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
    """How the run gets its tools when the profile deploys them with conda and conda is not here.
    On the twin: the Debian bwa, samtools and bcftools of the node image, on PATH (``--sdm
    env-modules`` with no module named: conda's channels are out of the twin's reach; the one
    difference, docs/twin.md). Elsewhere that is an error: a cluster must not run other tools
    than the pinned environments without saying so."""
    if any(arg.split("=")[0] in SDM_OPTIONS for arg in extra):
        return []
    if "conda" not in _profile_setting(profile, "software-deployment-method"):
        return []
    path = (env if env is not None else os.environ).get("PATH")
    if shutil.which("conda", path=path):
        return []
    if on_twin(env):
        return ["--sdm", "env-modules"]
    raise SetupError(f"the profile {profile.name} deploys the workflow's tools with conda, and conda is not on PATH",
                     "on a cluster the bootstrap's conda step installs Miniforge (docs/bootstrap.md): put its bin "
                     "folder on PATH; or run with the tools on PATH: --snakemake=--sdm=env-modules")


def _profile_setting(profile: Path, key: str) -> list[str]:
    """A profile value as a list of words ([] when unset or unreadable: Snakemake then says why)."""
    try:
        settings = yaml.safe_load((profile / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    value = settings.get(key) if isinstance(settings, dict) else None
    return [str(v) for v in value] if isinstance(value, list) else str(value or "").split()


def cluster_has_accounting(env: dict[str, str] | None = None) -> bool:
    """Whether the Slurm the run submits to keeps accounting; True when it cannot be asked (the
    run then meets the real error itself, from the plugin)."""
    try:
        return Slurm(env_slurm_conf(env)).accounting_enabled()
    except HpctoolError:
        return True


def env_slurm_conf(env: dict[str, str] | None) -> str | None:
    return (env if env is not None else os.environ).get("SLURM_CONF")


def profile_for_run(profile: Path, out: Path, extra: Sequence[str] = ()) -> Path:
    """The profile as given, or, when the command line asks for ``--slurm-no-requeue``, a copy
    without ``slurm-requeue`` in the run folder: the Slurm plugin refuses both together, and a
    profile value cannot be switched off from the command line."""
    if "--slurm-no-requeue" not in extra:
        return profile
    try:
        settings = yaml.safe_load((profile / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"profile {profile}: cannot read config.yaml ({error})", "check the profile") from None
    if not isinstance(settings, dict) or "slurm-requeue" not in settings:
        return profile
    derived = out.resolve() / RUN_STATE_DIR / f"profile-{profile.name}-no-requeue"
    derived.mkdir(parents=True, exist_ok=True)
    settings.pop("slurm-requeue")
    write_atomic(derived / "config.yaml", f"# {profile / 'config.yaml'} without slurm-requeue "
                 "(--slurm-no-requeue was given)\n" + yaml.safe_dump(settings, sort_keys=False))
    return derived


def make_test_data(out: Path, seed: int = 7, progress: Progress = quiet) -> Path:
    """The seeded test data under ``out/test-data`` (kept when it is already there)."""
    target = out / TEST_DATA_DIR
    if (target / "samples.tsv").is_file():
        return target
    progress(f"making test data (seed {seed}) in {target}")
    result = subprocess.run([sys.executable, str(TEST_DATA_SCRIPT), str(target), "--seed", str(seed)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise SetupError(f"making the test data in {target} failed (exit {result.returncode}):\n{detail}",
                         "it needs samtools' wgsim and bgzip: `make setup` installs them")
    return target


def _die_with_parent() -> None:
    """In the Snakemake child, before exec: SIGTERM when hpctool dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so a killed `hpctool run` never leaves Snakemake running on its own."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the signal forwarding below still covers every ordinary stop


def _pid_file(out: Path) -> Path:
    return out / RUN_STATE_DIR / "snakemake.pid"


def _running_pid(out: Path) -> int | None:
    """The PID of a Snakemake that `hpctool run` started in ``out`` and that still runs."""
    try:
        pid = int(_pid_file(out).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    # A reused PID runs something else: only our launcher with this run folder counts.
    ours = b"hpctool.workflow.snakemake_main" in cmdline and str(out.resolve()).encode() in cmdline
    return pid if ours else None


def stale_lock(out: Path) -> bool:
    """Snakemake's lock is in ``out`` but no Snakemake of ours runs there: a run killed hard."""
    locks = out / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir()) and _running_pid(out) is None


def unlock_command(argv: Sequence[str]) -> list[str]:
    """The run's own command line with ``--unlock``: what removes a stale lock."""
    return [*argv, "--unlock"]


def prepare_run(argv: Sequence[str], out: Path, progress: Progress = quiet) -> bool:
    """Refuse a second run of the same folder; remove the lock a run killed hard left behind.

    A lock with our PID file but no process is ours and stale: it goes. A lock without our PID
    file belongs to a Snakemake started by hand, which may still run: we tell, not remove."""
    running = _running_pid(out)
    if running is not None:
        raise UsageError(f"Snakemake (PID {running}) is already running in {out}",
                         "wait for it, or stop it first (kill -TERM it: it cancels its Slurm jobs)")
    locks = out / ".snakemake" / "locks"
    if not (locks.is_dir() and any(locks.iterdir())):
        return False
    command = unlock_command(argv)
    if not _pid_file(out).is_file():
        raise UsageError(f"{out} is locked by another Snakemake run",
                         f"if no Snakemake runs there any more, remove the lock with: {shlex.join(command)}")
    progress(f"{out}: the previous run was killed and left its lock; unlocking")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SetupError(f"removing the stale lock of {out} failed: {(result.stderr or result.stdout).strip()[-400:]}",
                         "run the same command with --snakemake=--unlock")
    _pid_file(out).unlink(missing_ok=True)
    return True


def run(workflow: str, out: Path, *, profile: str | None = "twin", configfile: Path | None = None,
        test: bool = False, cores: int | None = None, extra: Sequence[str] = (),
        env: dict[str, str] | None = None, progress: Progress = quiet) -> int:
    """Run a workflow to the end; return Snakemake's exit code. Its output goes to our stderr/stdout.

    SIGINT, SIGTERM and SIGHUP are passed on to Snakemake (which cancels its Slurm jobs and
    exits) and we wait for it; if hpctool itself is killed, Snakemake gets SIGTERM. A run killed
    hard (SIGKILL of both) leaves a stale lock, which the next run removes."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot make the run folder {out}: {error.strerror}",
                         "give a folder to run in (a new one, or one of an earlier run)") from error
    accounting = profile is None or cluster_has_accounting(env)
    if not accounting:
        progress("this cluster has no Slurm accounting: job states come from squeue (slurmctld)")
    argv = snakemake_argv(workflow, out, profile=profile, configfile=configfile, test=test, cores=cores,
                          extra=extra, accounting=accounting, env=env)
    if test:
        make_test_data(out, progress=progress)
    if "--unlock" not in extra and prepare_run(argv, out, progress):
        # A run killed hard leaves the outputs it was writing marked incomplete: redo them.
        argv = [*argv, "--rerun-incomplete"]
    progress("running: " + " ".join(argv[1:]))
    # Its own process group: a Ctrl-C in the terminal reaches Snakemake once, from us, not twice.
    process = subprocess.Popen(argv, env=env if env is not None else dict(os.environ),
                               start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    write_atomic(_pid_file(out), f"{process.pid}\n")

    def forward(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum if signum != signal.SIGHUP else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:  # an exception of ours: never leave it running
            process.terminate()
            process.wait()
    _pid_file(out).unlink(missing_ok=True)
    return code
