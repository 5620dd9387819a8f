"""The work a job runs, spot-safe: :class:`ShellCommand` (a shell command that may save its own
state on the notice) and :class:`CheckpointedSum` (the reference checkpointable computation)."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from hpctool.errors import UsageError
from hpctool.polling import poll_until

SHELL_CHECKPOINT_WAIT_S = 50.0  # inside the handler's 60 s budget


class ShellCommand(submitit.helpers.Checkpointable):
    """Runs a shell command (``bash -c``) in the job; spot-safe in the shell's own way.

    On the spot notice every process of the job step gets USR2. A command that traps it can save
    its state (``trap 'echo $i > state; exit 0' USR2``); a command that does not is simply stopped.
    Either way we wait for the shell to end (up to ``SHELL_CHECKPOINT_WAIT_S``), then submitit
    requeues the job, and the command runs again with ``SLURM_RESTART_COUNT`` set, free to read
    back its state. The command's exit code is the job's result; non-zero raises.
    """

    def __init__(self, command: str | None = None) -> None:
        self.command = command
        self._process: subprocess.Popen | None = None

    def __call__(self, command: str | None = None) -> int:
        command = command if command is not None else self.command
        if not command:
            raise UsageError("no command to run", "give a shell command")
        process = self._process = subprocess.Popen(["bash", "-c", command])
        # poll() rather than wait(): wait() holds a lock the USR2 handler (checkpoint) would need.
        poll_until(lambda: process.poll() is not None, timeout=math.inf, interval=0.1, on_timeout=RuntimeError)
        code = process.returncode
        self._process = None
        if code != 0:
            raise subprocess.CalledProcessError(code, command)
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        process = self._process
        if process is not None:
            # Give the shell time to save its state; read /proc instead of Popen (see __call__).
            try:
                poll_until(lambda: _ended(process.pid), timeout=SHELL_CHECKPOINT_WAIT_S, interval=0.1,
                           on_timeout=TimeoutError)
            except TimeoutError:
                os.kill(process.pid, signal.SIGTERM)
        return super().checkpoint(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {"command": self.command, "_process": None}  # a running process is not picklable


def _preempt_signal() -> signal.Signals:
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()  # submitit's own setting
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]


def _ended(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


class CheckpointedSum(submitit.helpers.Checkpointable):
    """The reference spot-safe computation (demo, tests, benchmarks): ``steps`` slow steps, each
    adding a hash-derived number. Its state is two integers; on USR2 submitit pickles it and
    the requeued job goes on from the step it had reached. ``trace`` (a file) gets one line per
    step executed, ``<restart> <step>``, which is how work lost to an interruption is counted.
    A ``checkpointing=False`` instance is the same work without the checkpoint: it starts over.
    """

    def __init__(self, steps: int, step_seconds: float = 0.5, trace: str | None = None,
                 checkpointing: bool = True) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.trace = trace
        self.checkpointing = checkpointing
        self.state = (0, 0)  # (next step, total so far): replaced in one assignment, never half-updated

    @staticmethod
    def value(step: int) -> int:
        return int.from_bytes(hashlib.sha256(str(step).encode()).digest()[:4], "big")

    def __call__(self) -> int:
        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        while self.state[0] < self.steps:
            step, total = self.state
            time.sleep(self.step_seconds)
            # The checkpoint signal waits while a finished step is recorded, so the trace and
            # the state never disagree about it.
            preempt = _preempt_signal()
            signal.pthread_sigmask(signal.SIG_BLOCK, {preempt})
            try:
                if self.trace:
                    with open(self.trace, "a") as handle:
                        handle.write(f"{restart} {step}\n")
                self.state = (step + 1, total + self.value(step))
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {preempt})
        return self.state[1]

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        if not self.checkpointing:
            self.state = (0, 0)  # what a job without a checkpoint has after a requeue: nothing
        return super().checkpoint(*args, **kwargs)
