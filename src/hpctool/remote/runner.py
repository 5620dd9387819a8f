"""Slurm's commands on the head node: a :class:`~hpctool.slurm.runner.Runner` over the open SSH
connection, so ``hpctool remote`` builds its command lines with the same
:class:`~hpctool.slurm.client.Slurm` client as everything else."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence

from hpctool.remote.connection import Remote
from hpctool.slurm.runner import command_failed, not_installed

DEFAULT_TIMEOUT = 60.0


class SshRunner:
    """Runs an argv on ``remote``'s host (quoted for its shell); exit 127 is Slurm missing there."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.where = remote.host

    def run(self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, env: Mapping[str, str] | None = None,
            umask: int | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in argv]
        command = shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *argv] if env else argv)
        if umask is not None:
            command = f"umask {umask:03o}; {command}"
        result = self.remote.run(command, stdin=None if input_text is None else input_text.encode(),
                                 timeout=timeout)
        if result.code == 127:
            raise not_installed(argv[0], self.where)
        if check and not result.ok:
            raise command_failed(argv, result.code, (result.stderr or result.stdout).strip(), self.where)
        return subprocess.CompletedProcess(argv, result.code, result.stdout, result.stderr)
