"""Slurm without Slurm: runners and an SSH connection that answer from pasted output
(``tests/data/slurm/``), so the feature logic above Slurm is tested in milliseconds."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from hpctool.remote.connection import Result
from hpctool.slurm.runner import command_failed

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm" / "22.05"
Answer = str | tuple[int, str, str]  # stdout, or (exit code, stdout, stderr)


def pasted(name: str) -> str:
    return (DATA / name).read_text()


def _answer(answers: Mapping[tuple[str, ...], Answer], argv: Sequence[str]) -> tuple[int, str, str]:
    """The answer of the longest argv prefix that matches; a command nobody expected exits 0, silent."""
    best = max((prefix for prefix in answers if tuple(argv[: len(prefix)]) == prefix), key=len, default=None)
    if best is None:
        return 0, "", ""
    answer = answers[best]
    return (0, answer, "") if isinstance(answer, str) else answer


class FakeRunner:
    """A :class:`hpctool.slurm.runner.Runner` answering from ``answers`` (argv prefix -> output)."""

    def __init__(self, answers: Mapping[tuple[str, ...], Answer] | None = None, where: str = "") -> None:
        self.answers = dict(answers or {})
        self.where = where
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = 30, check: bool = True,
            env: Mapping[str, str] | None = None, umask: int | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        code, out, err = _answer(self.answers, argv)
        if check and code != 0:
            raise command_failed(argv, code, (err or out).strip(), self.where)
        return subprocess.CompletedProcess(argv, code, out, err)


class FakeRemote:
    """Stands in for :class:`hpctool.remote.connection.Remote`: records every command line (as the
    head node's shell would get it) and answers Slurm's commands from ``answers``."""

    def __init__(self, answers: Mapping[tuple[str, ...], Answer] | None = None, host: str = "head",
                 root: str = "/shared/hpctool-runs") -> None:
        self.answers = dict(answers or {})
        self.host, self.root = host, root
        self.address = f"user@{host}.example:22"
        self.commands: list[str] = []
        self.uploads: list[tuple[Path, str]] = []

    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None, timeout: float = 120,
            check: bool = False) -> Result:
        text = command if isinstance(command, str) else shlex.join(command)
        self.commands.append(text)
        if "pwd -P" in text:  # the run root, made
            return Result(0, f"{self.root}\n", "")
        argv = shlex.split(text.split("; ", 1)[1] if text.startswith("umask ") else text)
        code, out, err = _answer(self.answers, argv)
        return Result(code, out, err)

    def put_tree(self, sources: Sequence[tuple[Path, str]]) -> int:
        self.uploads += list(sources)
        return sum(local.stat().st_size for local, _ in sources)

    def close(self) -> None:
        pass
