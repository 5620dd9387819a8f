"""Submitting work to the cluster (or the twin) from Python, on submitit.

submitit already does the hard part of spot safety: its jobs catch USR2 (the signal the spot
handler sends), call a ``Checkpointable``'s ``checkpoint()`` and requeue themselves. This module
adds what researchers need on top: queue-aware defaults (``--requeue`` on spot queues), requests
checked against the queue's nodes before sbatch, sbatch's refusals as clear errors, shell commands
that can save their own state (:class:`ShellCommand`), arrays over many inputs (split at Slurm's
``MaxArraySize``), and a runner (:mod:`hpctool.jobs.runner`) that never takes a spot notice for a
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
import importlib
import io
import re
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError

from hpctool.errors import SlurmError, UsageError
from hpctool.jobs.requests import (
    MAX_NUM_TIMEOUT,
    SIGNAL_DELAY_S,
    Resources,
    SlurmCluster,
    check_resources,
    default_folder,
    parse_mem_mb,
    resolve_cluster,
    wants_requeue,
)
from hpctool.jobs.watch import QueueWatchedJob
from hpctool.jobs.work import ShellCommand
from hpctool.slurm.runner import not_installed


class _Executor(submitit.SlurmExecutor):
    """submitit's Slurm executor, whose jobs run through :mod:`hpctool.jobs.runner` (submitit's
    own runner with a USR2 handler that tells a spot notice from the time limit)."""

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m hpctool.jobs.runner", shlex.quote(str(self.folder))])


class _QueueWatchedExecutor(_Executor):
    """For a cluster without accounting: its jobs learn their state from squeue (:mod:`hpctool.jobs.watch`)."""

    job_class = QueueWatchedJob

    def _internal_process_submissions(self, delayed_submissions: list) -> list:
        # submitit makes an array's jobs as SlurmJob whatever job_class says: the same jobs, watched here.
        made = super()._internal_process_submissions(delayed_submissions)
        return [job if isinstance(job, QueueWatchedJob) else
                QueueWatchedJob(folder=self.folder, job_id=job.job_id, tasks=tuple(range(job.num_tasks)))
                for job in made]


def executor(resources: Resources, folder: str | Path, spot: set[str] | frozenset[str],
             array_parallelism: int = 256, accounting: bool = True) -> submitit.SlurmExecutor:
    """A submitit executor for ``resources`` (the Slurm one: the twin and the cluster both are Slurm);
    without ``accounting`` its jobs are watched through squeue, not sacct."""
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
    if shutil.which("srun") is None:  # submitit's own check raises a bare RuntimeError
        raise not_installed("srun")
    kind = _Executor if accounting else _QueueWatchedExecutor
    submit_executor = kind(folder=str(Path(folder) / "%j"), max_num_timeout=MAX_NUM_TIMEOUT)
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
        return executor(resources, batch, cluster.spot, accounting=cluster.accounting).submit(fn, *args, **kwargs)


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
            run = executor(resources, batch, cluster.spot, array_parallelism=array_parallelism,
                           accounting=cluster.accounting)
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
