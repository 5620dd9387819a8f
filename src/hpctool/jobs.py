"""Submitting work to the cluster (or the twin) from Python, on submitit.

submitit already does the hard part of spot safety: its jobs catch USR2 (the signal the spot
handler sends), call a ``Checkpointable``'s ``checkpoint()`` and requeue themselves. This module
adds what researchers need on top: queue-aware defaults (``--requeue`` on spot queues), requests
checked against the queue's nodes before sbatch, sbatch's refusals as clear errors, shell commands
that can save their own state (:class:`ShellCommand`), arrays over many inputs (split at Slurm's
``MaxArraySize``), and a runner (:mod:`hpctool.job_runner`) that never takes a spot notice for a
timeout. What it needs to know about the cluster comes from the caller, resolved once.

    from hpctool import jobs
    cluster = jobs.resolve_cluster(arrays=True)
    job = jobs.submit(MyCheckpointable(), resources=jobs.Resources(queue="spot", cpus=2, mem="4G"),
                      cluster=cluster)
    job.result()
    array = jobs.map_array(process_sample, samples, jobs.Resources(queue="spot"), cluster=cluster)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError

from hpctool.errors import ConfigError, SlurmError, UsageError
from hpctool.job_table import JobRow, list_jobs  # noqa: F401 (hpctool.jobs' public API)
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import QueueNode

SHELL_CHECKPOINT_WAIT_S = 50.0  # inside the handler's 60 s budget
# Slurm signals USR2 this long before the time limit (`--signal=USR2@90`); hpctool.job_runner
# uses the same figure to tell a time limit from a preemption.
SIGNAL_DELAY_S = 90
MAX_NUM_TIMEOUT = 3  # requeues a checkpointable job gets at its time limit (preemptions are free)
_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)


def default_folder() -> Path:
    """Where job files and logs go unless ``--folder`` says otherwise: ``$HPCTOOL_JOBS_DIR``, else
    ``$XDG_STATE_HOME/hpctool/jobs`` (``~/.local/state/hpctool/jobs``), never the current directory.
    On ParallelCluster, /home is shared with the compute nodes, which read the job files there."""
    explicit = os.environ.get("HPCTOOL_JOBS_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hpctool" / "jobs"


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


def spot_queues(config: str | Path) -> set[str]:
    """Names of the queues a ParallelCluster config declares ``CapacityType: SPOT``."""
    from hpctool.cluster import load_queues

    return {q.name for q in load_queues(Path(config)) if q.is_spot}


# -- the cluster jobs go to -------------------------------------------------------------------
@dataclass(frozen=True)
class SlurmCluster:
    """What submission needs to know about the cluster, resolved once by the caller
    (:func:`resolve_cluster`) and handed to every function here: the Slurm to talk to, each
    queue's nodes (CPUs, memory, time limit), which queues are spot, and the array limit."""

    slurm: Slurm
    nodes: tuple[QueueNode, ...]
    spot: frozenset[str] = frozenset()
    max_array_size: int | None = None  # Slurm's MaxArraySize: task indices run 0 .. size-1
    queue_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.queue_names:
            object.__setattr__(self, "queue_names", tuple(dict.fromkeys(n.partition for n in self.nodes)))

    def default_queue(self) -> str | None:
        return next((n.partition for n in self.nodes if n.default), None)

    def queue_nodes(self, queue: str) -> list[QueueNode]:
        return [n for n in self.nodes if n.partition == queue]


def resolve_cluster(slurm: Slurm | None = None, *, cluster_config: str | Path | None = None,
                    arrays: bool = False) -> SlurmCluster:
    """Ask Slurm once for its queues' nodes (one ``sinfo``; ``scontrol show config`` too when
    ``arrays``). Spot queues are those whose nodes carry the ``spot`` feature (the twin's nodes
    do) plus those ``cluster_config`` declares SPOT (ParallelCluster's own nodes carry no such
    feature, so on a cluster give its config, or set ``HPCTOOL_CLUSTER_CONFIG``)."""
    slurm = slurm or Slurm()
    nodes = tuple(slurm.queue_nodes())
    spot = {n.partition for n in nodes if "spot" in n.features}
    config = cluster_config or os.environ.get("HPCTOOL_CLUSTER_CONFIG")
    if config:
        try:
            spot |= spot_queues(config)
        except ConfigError as error:
            raise ConfigError(f"cannot tell the spot queues: {error.message}", error.hint) from error
    max_array = None
    if arrays:
        value = slurm.config().get("MaxArraySize", "")
        max_array = int(value) if value.isdigit() else None
    return SlurmCluster(slurm=slurm, nodes=nodes, spot=frozenset(spot), max_array_size=max_array)


def check_resources(cluster: SlurmCluster, resources: Resources, tasks: int = 1) -> str:
    """Refuse, before sbatch, what no node of the queue could ever run (Slurm would accept some
    such jobs and leave them pending forever). Returns the queue the job goes to."""
    names = list(cluster.queue_names)
    queue = resources.queue or cluster.default_queue()
    if queue is None:
        raise UsageError("no --queue given and the cluster has no default queue", f"queues: {', '.join(names)}")
    nodes = cluster.queue_nodes(queue)
    if not nodes:
        raise UsageError(f"unknown queue {queue!r}", f"the queues are: {', '.join(names) or 'none (no partitions)'}")
    most_cpus = max(n.cpus for n in nodes)
    if resources.cpus > most_cpus:
        raise UsageError(f"--cpus {resources.cpus}: no node of queue {queue} has more than {most_cpus} CPUs",
                         f"ask for at most {most_cpus}, or pick a queue with bigger nodes")
    if resources.mem:
        most_mem = max(n.memory_mb for n in nodes)
        if parse_mem_mb(resources.mem) > most_mem:
            raise UsageError(f"--mem {resources.mem}: no node of queue {queue} has more than {most_mem} MB",
                             f"ask for at most {most_mem}M, or pick a queue with bigger nodes")
    limits = [n.time_limit_min for n in nodes]
    if None not in limits:
        longest = max(m for m in limits if m is not None)
        if resources.time_min > longest:
            raise UsageError(f"--time {resources.time_min}: queue {queue} allows at most {longest} minutes",
                             f"ask for at most {longest}, or checkpoint and split the work")
    if tasks > 1 and cluster.max_array_size is None:
        raise SlurmError("cannot read MaxArraySize from Slurm", "resolve the cluster with arrays=True")
    return queue


def wants_requeue(resources: Resources, spot: set[str] | frozenset[str]) -> bool:
    if resources.requeue is not None:
        return resources.requeue
    return resources.queue is not None and resources.queue in spot


class _Executor(submitit.SlurmExecutor):
    """submitit's Slurm executor, whose jobs run through :mod:`hpctool.job_runner` (submitit's
    own runner with a USR2 handler that tells a spot notice from the time limit)."""

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m hpctool.job_runner", shlex.quote(str(self.folder))])


def executor(resources: Resources, folder: str | Path, spot: set[str] | frozenset[str],
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
        "signal_delay_s": SIGNAL_DELAY_S,
    }
    if resources.queue:
        params["partition"] = resources.queue
    if resources.mem:
        params["mem"] = f"{parse_mem_mb(resources.mem)}M"
    submit_executor = _Executor(folder=str(Path(folder) / "%j"), max_num_timeout=MAX_NUM_TIMEOUT)
    submit_executor.update_parameters(**params)
    return submit_executor


def _batch_folder(folder: str | Path | None, name: str) -> Path:
    """One folder per submission inside ``folder``: a failed submission removes it whole, so
    nothing is left behind (submitit writes its pickles before sbatch answers)."""
    base = Path(folder) if folder is not None else default_folder()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]
    return base / f"{stamp}-{safe}-{uuid.uuid4().hex[:6]}"


def _sbatch_hint(message: str, cluster: SlurmCluster | None, queue: str | None) -> str:
    # The most specific first: "Required partition not available (inactive or drain)" names a partition too.
    known = [
        ("inactive", "the queue is not taking jobs now (`sinfo -s` shows its state): ask the admins or pick another"),
        ("invalid partition", f"the queues are: {', '.join(cluster.queue_names)}" if cluster
         else "check --queue (`sinfo -s`)"),
        ("node configuration is not available", "no node can hold the request: ask for fewer CPUs or less memory"),
        ("memory specification", "no node has that much memory: ask for less with --mem"),
        ("time limit", "the queue's time limit is lower (`sinfo -s -o '%P %l'`): ask for less with --time"),
        ("array", "the array is larger than Slurm's MaxArraySize (`scontrol show config | grep MaxArraySize`)"),
        ("qos", "a QOS or account limit refused it (`sacctmgr show assoc user=$USER`): submit fewer jobs at once"),
        ("association", "your user has no account on this cluster (`sacctmgr show assoc user=$USER`)"),
    ]
    lowered = message.lower()
    for needle, hint in known:
        if needle in lowered:
            return hint
    return "sbatch refused the job: check the options against `sinfo -s` and `scontrol show partition`"


def _sbatch_message(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # "sbatch: error: Batch job submission failed: X" says it best; keep every distinct reason.
    reasons = [re.sub(r"^sbatch:\s*error:\s*", "", line) for line in lines]
    return "; ".join(dict.fromkeys(reasons)) or "sbatch failed without a message"


@contextlib.contextmanager
def _sbatch_errors(batch: Path, cluster: SlurmCluster | None, queue: str | None):
    """sbatch's refusal (submitit raises it with sbatch's stderr, after printing it) becomes a
    SlurmError; the batch folder and everything submitit wrote in it go away."""
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stderr(quiet):
            yield
    except (FailedJobError, FailedSubmissionError) as error:
        # FailedJobError: sbatch failed (its stderr); FailedSubmissionError: it printed no job id.
        shutil.rmtree(batch, ignore_errors=True)
        message = _sbatch_message(error)
        raise SlurmError(f"sbatch refused the job: {message}", _sbatch_hint(message, cluster, queue)) from error
    except BaseException:
        shutil.rmtree(batch, ignore_errors=True)
        raise
    sys.stderr.write(quiet.getvalue())  # nothing went wrong: let anything submitit said through


def submit(fn: Callable[..., Any], *args: Any, resources: Resources | None = None,
           folder: str | Path | None = None, cluster: SlurmCluster | None = None, **kwargs: Any) -> submitit.Job:
    """Submit one callable (a function, a ``Checkpointable``, a :class:`ShellCommand`). Without
    ``cluster`` it is resolved here (one ``sinfo``), from ``SLURM_CONF``."""
    resources = resources or Resources()
    cluster = cluster or resolve_cluster()
    check_resources(cluster, resources)
    batch = _batch_folder(folder, resources.name)
    with _sbatch_errors(batch, cluster, resources.queue):
        return executor(resources, batch, cluster.spot).submit(fn, *args, **kwargs)


def map_array(fn: Callable[..., Any], inputs: Iterable[Any], resources: Resources | None = None,
              folder: str | Path | None = None, array_parallelism: int = 256,
              cluster: SlurmCluster | None = None) -> list[submitit.Job]:
    """Slurm job arrays, one task per input: ``fn(input)`` in each. More inputs than Slurm's
    ``MaxArraySize`` are split into several arrays; if one of them is refused, the arrays already
    submitted are cancelled and their files removed."""
    items = list(inputs)
    if not items:
        raise UsageError("the array has no inputs", "give at least one input (one per line in --array FILE)")
    resources = resources or Resources()
    if cluster is None or cluster.max_array_size is None:
        cluster = resolve_cluster(cluster.slurm if cluster else None, arrays=True)
    check_resources(cluster, resources, tasks=len(items))
    batch = _batch_folder(folder, resources.name)
    submitted: list[submitit.Job] = []
    try:
        with _sbatch_errors(batch, cluster, resources.queue):
            run = executor(resources, batch, cluster.spot, array_parallelism=array_parallelism)
            for chunk in split_evenly(items, cluster.max_array_size or len(items)):
                submitted += run.map_array(fn, chunk)
    except BaseException:
        array_ids = sorted({job.job_id.split("_")[0] for job in submitted})
        if array_ids:
            cluster.slurm.cancel(array_ids)
        raise
    return submitted


def split_evenly(items: Sequence[Any], most: int) -> list[Sequence[Any]]:
    """``items`` in as few chunks of at most ``most`` as possible, of near-equal sizes (1,002 tasks
    with a limit of 1,001 are two arrays of 501, not 1,001 and a lone job)."""
    count = -(-len(items) // most)
    base, extra = divmod(len(items), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + base + (index < extra)
        chunks.append(items[start:end])
        start = end
    return chunks


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


def check_work(command: str = "", call: str | None = None) -> Callable[..., Any] | None:
    """Exactly one of a shell command or ``MODULE:FUNCTION``; the callable when it is one. Checked
    before anything asks Slurm, so a wrong command line is a usage error even with Slurm away."""
    if bool(command) == bool(call):
        raise UsageError("give either a shell command (after --) or --call MODULE:FUNCTION",
                         "e.g. hpctool submit --queue spot -- 'bwa mem ref.fa reads.fq > out.sam'")
    return load_callable(call) if call else None


def submit_work(resources: Resources, *, command: str = "", call: str | None = None,
                items: Sequence[str] | None = None, folder: str | Path | None = None,
                cluster: SlurmCluster | None = None) -> tuple[list[submitit.Job], bool]:
    """What ``hpctool submit`` sends: a shell command or ``MODULE:FUNCTION``, once or as an array
    over ``items`` (for a command, ``{}`` marks where each item goes). Returns the jobs and whether
    they requeue on an interruption. ``cluster`` comes from the caller (resolved once)."""
    work = check_work(command, call)
    cluster = cluster or resolve_cluster(arrays=items is not None)
    resources = replace(resources, requeue=wants_requeue(resources, cluster.spot))
    if items is not None:
        fn, inputs = (work, items) if work else (ShellCommand(), array_commands(command, items))
        return map_array(fn, inputs, resources, folder, cluster=cluster), bool(resources.requeue)
    job = submit(work or ShellCommand(command), resources=resources, folder=folder, cluster=cluster)
    return [job], bool(resources.requeue)


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
    if "{}" in template:
        return [template.replace("{}", shlex.quote(item)) for item in items]
    return [f"{template} {shlex.quote(item)}" for item in items]

