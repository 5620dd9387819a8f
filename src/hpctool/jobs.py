"""Submitting work to the cluster (or the twin) from Python, on submitit.

submitit already does the hard part of spot safety: its jobs catch USR2 (the signal the spot
handler sends), call a ``Checkpointable``'s ``checkpoint()`` and requeue themselves. This module
adds what researchers need on top: queue-aware defaults (``--requeue`` on spot queues), shell
commands that can save their own state (:class:`ShellCommand`), arrays over many inputs, and the
job table from accounting (:func:`list_jobs`).

    from hpctool import jobs
    job = jobs.submit(MyCheckpointable(), queue="spot", cpus=2, mem="4G", time_min=60)
    job.result()
    array = jobs.map_array(process_sample, samples, queue="spot")
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import submitit

from hpctool.errors import ConfigError, UsageError
from hpctool.slurm import Slurm
from hpctool.slurm_parse import AcctJob

DEFAULT_FOLDER = "hpctool-jobs"
SHELL_CHECKPOINT_WAIT_S = 50.0  # inside the handler's 60 s budget
_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)


@dataclass(frozen=True)
class Resources:
    """What one job (or each array task) asks Slurm for."""

    queue: str | None = None
    cpus: int = 1
    mem: str | None = None  # "4G", "500M"; None: the partition's default per CPU
    time_min: int = 60
    requeue: bool | None = None  # None: on for spot queues, off elsewhere
    name: str = "hpctool"


def parse_mem_mb(text: str) -> int:
    """``4G``, ``4GB``, ``500M``, ``1.5G``, ``2048`` (MB) -> megabytes."""
    match = _MEM.match(text.strip())
    if not match:
        raise UsageError(f"--mem {text!r} is not a memory size", "write it like 500M, 4G or 1.5G")
    value, unit = float(match.group(1)), match.group(2).upper()
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]
    megabytes = int(value * factor)
    if megabytes < 1:
        raise UsageError(f"--mem {text!r} is below 1 MB", "ask for at least 1M")
    return megabytes


def spot_queues(config: str | Path | None = None) -> set[str]:
    """Names of the spot queues: from the running twin, else from the cluster config."""
    from hpctool.cluster import DEFAULT_CLUSTER_CONFIG, load_queues

    slurm_conf = os.environ.get("SLURM_CONF", "")
    if config is None and slurm_conf:
        from hpctool.twin import Twin

        twin = Twin()
        layout = twin.layout()
        if layout is not None and Path(slurm_conf) == twin.slurm_conf:
            return {q["name"] for q in layout.queues if q["spot"]}
    path = Path(config) if config is not None else Path(os.environ.get("HPCTOOL_CLUSTER_CONFIG", DEFAULT_CLUSTER_CONFIG))
    try:
        return {q.name for q in load_queues(path) if q.is_spot}
    except ConfigError:
        return set()


def wants_requeue(resources: Resources, spot: set[str] | None = None) -> bool:
    if resources.requeue is not None:
        return resources.requeue
    return resources.queue is not None and resources.queue in (spot if spot is not None else spot_queues())


def executor(resources: Resources, folder: str | Path = DEFAULT_FOLDER, spot: set[str] | None = None,
             array_parallelism: int = 256) -> submitit.SlurmExecutor:
    """A submitit executor for ``resources`` (the Slurm one: the twin and the cluster both are Slurm)."""
    if resources.cpus < 1:
        raise UsageError(f"--cpus {resources.cpus} is below 1", "ask for 1 or more CPUs")
    if resources.time_min < 1:
        raise UsageError(f"--time {resources.time_min} is below 1 minute", "give minutes, e.g. --time 60")
    requeue = wants_requeue(resources, spot)
    extra: dict[str, Any] = {"requeue": True} if requeue else {"no-requeue": True}
    params: dict[str, Any] = {
        "job_name": resources.name,
        "cpus_per_task": resources.cpus,
        "ntasks_per_node": 1,
        "time": resources.time_min,
        "array_parallelism": array_parallelism,
        "additional_parameters": extra,
        # The spot handler signals at the notice; submitit's own signal before the time limit stays.
        "signal_delay_s": 90,
    }
    if resources.queue:
        params["partition"] = resources.queue
    if resources.mem:
        params["mem"] = f"{parse_mem_mb(resources.mem)}M"
    submit_executor = submitit.SlurmExecutor(folder=str(Path(folder) / "%j"), max_num_timeout=3)
    submit_executor.update_parameters(**params)
    return submit_executor


def submit(fn: Callable[..., Any], *args: Any, resources: Resources | None = None,
           folder: str | Path = DEFAULT_FOLDER, **kwargs: Any) -> submitit.Job:
    """Submit one callable (a function, a ``Checkpointable``, a :class:`ShellCommand`)."""
    return executor(resources or Resources(), folder).submit(fn, *args, **kwargs)


def map_array(fn: Callable[..., Any], inputs: Iterable[Any], resources: Resources | None = None,
              folder: str | Path = DEFAULT_FOLDER, array_parallelism: int = 256) -> list[submitit.Job]:
    """One Slurm job array, one task per input: ``fn(input)`` in each."""
    items = list(inputs)
    if not items:
        raise UsageError("the array has no inputs", "give at least one input (one per line in --array FILE)")
    return executor(resources or Resources(), folder, array_parallelism=array_parallelism).map_array(fn, items)


def load_callable(spec: str) -> Callable[..., Any]:
    """``MODULE:FUNCTION`` -> the callable (importable here, and on the nodes when it runs)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UsageError(f"--call {spec!r} is not MODULE:FUNCTION", "e.g. --call mypackage.tasks:align")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--call {spec}: {error}", "the module must be importable here and on the nodes") from error
    if not callable(target):
        raise UsageError(f"--call {spec}: not callable", "name a function or a callable class instance")
    return target


def submit_work(resources: Resources, *, command: str = "", call: str | None = None,
                items: Sequence[str] | None = None,
                folder: str | Path = DEFAULT_FOLDER) -> tuple[list[submitit.Job], bool]:
    """What ``hpctool submit`` sends: a shell command or ``MODULE:FUNCTION``, once or as an array
    over ``items`` (for a command, ``{}`` marks where each item goes). Returns the jobs and whether
    they requeue on an interruption."""
    if bool(command) == bool(call):
        raise UsageError("give either a shell command (after --) or --call MODULE:FUNCTION",
                         "e.g. hpctool submit --queue spot -- 'bwa mem ref.fa reads.fq > out.sam'")
    resources = replace(resources, requeue=wants_requeue(resources))  # look the queues up once
    if items is not None:
        work, inputs = (load_callable(call), items) if call else (ShellCommand(), array_commands(command, items))
        return map_array(work, inputs, resources, folder), bool(resources.requeue)
    work = load_callable(call) if call else ShellCommand(command)
    return [submit(work, resources=resources, folder=folder)], bool(resources.requeue)


def wait_results(submitted: Sequence[submitit.Job]) -> list[dict[str, Any]]:
    """Wait for every job; one row each with its id, state, result and (when it failed) the error."""
    rows = []
    for job in submitted:
        row: dict[str, Any] = {"id": job.job_id, "folder": str(job.paths.folder)}
        try:
            row.update(result=job.result(), state="COMPLETED")
        except Exception as error:  # noqa: BLE001 (a failed job is a result to report, not a crash)
            row.update(result=None, state="FAILED", error=error_line(error))
        rows.append(row)
    return rows


def error_line(error: Exception) -> str:
    """The line that says what failed in submitit's report (the traceback's last exception line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (named or lines or [repr(error)])[-1]


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
        self._process = subprocess.Popen(["bash", "-c", command])
        # poll() rather than wait(): wait() holds a lock the USR2 handler (checkpoint) would need.
        while (code := self._process.poll()) is None:
            time.sleep(0.1)
        self._process = None
        if code != 0:
            raise subprocess.CalledProcessError(code, command)
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        process = self._process
        if process is not None:
            # Give the shell time to save its state; read /proc instead of Popen (see __call__).
            end = time.monotonic() + SHELL_CHECKPOINT_WAIT_S
            while not _ended(process.pid) and time.monotonic() < end:
                time.sleep(0.1)
            if not _ended(process.pid):
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


# -- the job table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    queue: str
    node: str
    state: str
    restarts: int
    elapsed_s: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_jobs(slurm: Slurm | None = None, job_ids: Sequence[str] | None = None,
              since: str = "now-1days") -> list[JobRow]:
    """Jobs from accounting (``sacct``), the requeue count included."""
    records: list[AcctJob] = (slurm or Slurm(os.environ.get("SLURM_CONF"))).sacct(job_ids, since=since)
    return [JobRow(id=r.job_id, name=r.name, queue=r.partition, node=r.node_list, state=r.state,
                   restarts=r.restarts, elapsed_s=r.elapsed_seconds) for r in records]


def read_array_file(path: str | Path) -> list[str]:
    """Inputs of ``--array FILE``: one per line; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise UsageError(f"--array {path}: cannot read: {error.strerror}", "give a file with one input per line") from error
    items = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not items:
        raise UsageError(f"--array {path}: no inputs in it", "put one input per line")
    return items


def array_commands(template: str, items: Sequence[str]) -> list[str]:
    """The command of each array task: ``{}`` in ``template`` becomes the (shell-quoted) input;
    without ``{}`` the input is appended as the last argument."""
    import shlex

    if "{}" in template:
        return [template.replace("{}", shlex.quote(item)) for item in items]
    return [f"{template} {shlex.quote(item)}" for item in items]

