"""What a job asks for and the cluster it asks it of: :class:`Resources` (queue, CPUs, memory,
time), the :class:`SlurmCluster` resolved once by the caller (its queue nodes, spot queues and
``MaxArraySize``), requests checked against it before sbatch, and the queue-aware requeue default.
Light on purpose: no submitit here (the job runner on every node imports it)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hpctool.errors import ConfigError, SlurmError, UsageError
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import QueueNode

# Slurm signals USR2 this long before the time limit (`--signal=USR2@90`); hpctool.jobs.runner
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
    from hpctool.cluster.queues import load_queues

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
    accounting: bool = True  # sacct answers; without it submitit watches jobs through squeue

    def __post_init__(self) -> None:
        if not self.queue_names:
            object.__setattr__(self, "queue_names", tuple(dict.fromkeys(n.partition for n in self.nodes)))

    def default_queue(self) -> str | None:
        return next((n.partition for n in self.nodes if n.default), None)

    def queue_nodes(self, queue: str) -> list[QueueNode]:
        return [n for n in self.nodes if n.partition == queue]


def resolve_cluster(slurm: Slurm | None = None, *, cluster_config: str | Path | None = None,
                    arrays: bool = False) -> SlurmCluster:
    """Ask Slurm once for its queues' nodes (one ``sinfo``) and its settings (one ``scontrol show
    config``: accounting, and the array limit when ``arrays``). Spot queues are those whose nodes carry the ``spot`` feature (the twin's nodes
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
    settings = slurm.config()
    value = settings.get("MaxArraySize", "")
    max_array = int(value) if arrays and value.isdigit() else None
    return SlurmCluster(slurm=slurm, nodes=nodes, spot=frozenset(spot), max_array_size=max_array,
                        accounting=slurm.accounting_enabled(settings))


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
