"""The one exception family of hpctool.

Every error carries a message (what went wrong) and a hint (what to do). The CLI prints both,
without a traceback, and exits with ``exit_code``.
"""

from __future__ import annotations


class HpctoolError(Exception):
    """Base of every error hpctool raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class UsageError(HpctoolError):
    """The command line itself is wrong."""

    exit_code = 2


class WriteError(UsageError):
    """A file could not be written where it was asked for (a folder there, a name too long, no
    permission, a full disk): exit 2, nothing half-written left behind."""


class ConfigError(HpctoolError):
    """A cluster config or values file is missing, unreadable or wrong."""


class ConfigInputError(ConfigError):
    """A config `hpctool config diff` cannot compare (unreadable, invalid, another scheduler): exit 2,
    apart from 1 for an update ParallelCluster would refuse."""

    exit_code = 2


class SetupError(HpctoolError):
    """The machine lacks something hpctool needs (packages, root, a free port)."""


class SlurmError(HpctoolError):
    """A Slurm command failed or Slurm is unreachable."""


class SlurmCommandError(SlurmError):
    """A Slurm command ran and exited non-zero: its program, exit code and what it printed, for a
    caller that words the refusal itself (``sbatch on HOST refused the job: ...``)."""

    def __init__(self, message: str, hint: str = "", *, program: str = "", code: int = 1, detail: str = "") -> None:
        super().__init__(message, hint)
        self.program, self.code, self.detail = program, code, detail


class AccountingDisabledError(SlurmCommandError):
    """The cluster has no Slurm accounting (no slurmdbd): ``sacct`` answers "Slurm accounting
    storage is disabled". Exit 2: nothing can answer from history until the cluster has it."""

    exit_code = 2


class TwinError(HpctoolError):
    """The local Slurm twin could not be started, queried or stopped."""


class UpdateRefusedError(TwinError):
    """ParallelCluster would refuse this config update as the cluster stands (exit 1, as
    `hpctool config diff` for such an update)."""


class AwsError(HpctoolError):
    """An AWS API call failed."""


class VcfError(HpctoolError):
    """A VCF could not be read (missing, unreadable, not a VCF, truncated): exit 2, as
    `hpctool concordance` promises, apart from 1 for VCFs that differ."""

    exit_code = 2


class RemoteError(HpctoolError):
    """An SSH connection, transfer or remote command failed (the hint names the host, key or agent)."""
