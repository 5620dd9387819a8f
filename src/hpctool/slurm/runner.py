"""How a Slurm command runs: a :class:`Runner` takes an argv (never a shell string) and returns a
:class:`subprocess.CompletedProcess`. :class:`LocalRunner` runs it here; the SSH runner of
:mod:`hpctool.remote` runs it on a head node over the open connection. Both word their failures
through :func:`not_installed` and :func:`command_failed`, so a message reads the same from either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from hpctool.errors import AccountingDisabledError, SlurmCommandError, SlurmError

DEFAULT_TIMEOUT = 30.0
# What sacct, sacctmgr and sreport print on a cluster without slurmdbd (no SlurmSettings.Database).
ACCOUNTING_DISABLED = "Slurm accounting storage is disabled"
ACCOUNTING_HINT = ("job history needs accounting: give the cluster config Scheduling.SlurmSettings.Database "
                   "(docs/accounting.md; `hpctool config database-template` makes the database); meanwhile "
                   "`hpctool jobs` and `squeue` show the jobs slurmctld still knows")


class Runner(Protocol):
    """Runs one Slurm command. ``where`` is the host it runs on ("" for this machine); ``env`` is
    the whole environment (local) or the variables to set (remote); ``umask`` the mask the command
    (and so the job files sbatch makes) runs under. With ``check`` a non-zero exit raises
    :class:`~hpctool.errors.SlurmCommandError`."""

    where: str

    def run(self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, env: Mapping[str, str] | None = None,
            umask: int | None = None) -> subprocess.CompletedProcess[str]: ...


def slurm_env(slurm_conf: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The environment for a Slurm command, pointed at ``slurm_conf`` when given."""
    env = dict(os.environ)
    if slurm_conf is not None:
        env["SLURM_CONF"] = str(slurm_conf)
    return env


def not_installed(program: str, where: str = "") -> SlurmError:
    """The error for a Slurm command that is not on the PATH (here, or on ``where``)."""
    if where:
        return SlurmError(f"Slurm is not installed on {where}: {program}: command not found",
                          f"is {where} the cluster's head node? (Slurm's commands must be on its PATH)")
    return SlurmError(f"{program}: command not found",
                      "install Slurm's client tools (`make setup` installs slurm-client)")


def command_failed(argv: Sequence[str], code: int, detail: str, where: str = "") -> SlurmCommandError:
    """The error for a Slurm command that exited non-zero."""
    if ACCOUNTING_DISABLED in detail:
        return AccountingDisabledError(
            f"this cluster has no Slurm accounting{f' ({where})' if where else ''}: {argv[0]} answers "
            f"'{ACCOUNTING_DISABLED}'", ACCOUNTING_HINT, program=argv[0], code=code, detail=detail)
    if where:
        return SlurmCommandError(f"{argv[0]} on {where} failed (exit {code}): {detail}",
                                 "check that slurmctld answers there (`scontrol ping`)",
                                 program=argv[0], code=code, detail=detail)
    return SlurmCommandError(f"{' '.join(argv)} failed (exit {code}): {detail}", failure_hint(argv[0], detail),
                             program=argv[0], code=code, detail=detail)


def failure_hint(program: str, detail: str) -> str:
    """What to do when a Slurm command failed: name the daemon it could not reach. sacct and
    sacctmgr talk to slurmdbd (accounting), the other commands to slurmctld."""
    down = ("Connection refused", "Unable to contact", "Problem talking to the database",
            "persistent connection", "Socket timed out", "Zero Bytes were transmitted")
    if program in {"sacct", "sacctmgr", "sreport"}:
        if any(text in detail for text in down):
            return ("slurmdbd (accounting) is not reachable: on the twin `hpctool local status` names what "
                    "is down and `hpctool local up` starts it; on a cluster `systemctl status slurmdbd` on the "
                    "head node (`squeue` still lists jobs that slurmctld knows)")
        return "check the accounting database (`sacctmgr show cluster`)"
    if any(text in detail for text in down):
        return ("slurmctld is not reachable: on the twin `hpctool local status` names what is down and "
                "`hpctool local up` starts it; on a cluster `scontrol ping`, and check SLURM_CONF")
    return "check that slurmctld is up (`scontrol ping`)"


class LocalRunner:
    """Slurm's commands on this machine: argv lists, a timeout, never a shell."""

    where = ""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env) if env is not None else None

    def run(self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, env: Mapping[str, str] | None = None,
            umask: int | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in argv]
        env = env if env is not None else self.env
        if shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
            raise not_installed(argv[0])
        try:
            result = subprocess.run(argv, env=dict(env) if env is not None else None, input=input_text,
                                    capture_output=True, text=True, timeout=timeout, check=False,
                                    umask=-1 if umask is None else umask)
        except subprocess.TimeoutExpired as exc:
            raise SlurmError(
                f"{' '.join(argv)} did not answer within {timeout:.0f} s",
                "is slurmctld running? (`hpctool local status` for the twin, `scontrol ping` on a cluster)",
            ) from exc
        if check and result.returncode != 0:
            raise command_failed(argv, result.returncode, (result.stderr or result.stdout).strip())
        return result

