"""Reading a ParallelCluster 3 config: the parts hpctool itself builds on (queues and nodes).

Full validation lives in the config feature; this module only turns ``Scheduling.SlurmQueues``
into a small model that the local twin and the cost and workflow features share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpctool import shipped
from hpctool.cluster.config_file import load_config
from hpctool.errors import ConfigError

DEFAULT_CLUSTER_CONFIG = shipped.path("cluster-configs") / "default.yaml"


@dataclass(frozen=True)
class ComputeResource:
    name: str
    instance_types: tuple[str, ...]
    min_count: int
    max_count: int
    # Declared with ``Instances`` (even one): ParallelCluster launches it with CreateFleet, a
    # single ``InstanceType`` with RunInstances.
    flexible: bool = False


@dataclass(frozen=True)
class Queue:
    name: str
    capacity_type: str  # ONDEMAND, SPOT or CAPACITY_BLOCK, as ParallelCluster spells it
    compute_resources: tuple[ComputeResource, ...]
    tags: dict[str, str] = field(default_factory=dict)
    allocation_strategy: str = ""  # the queue's AllocationStrategy, empty when not given

    @property
    def is_spot(self) -> bool:
        return self.capacity_type == "SPOT"


def load_yaml(path: str | Path) -> Any:
    """Parse a config file as ``config validate`` does (:mod:`hpctool.cluster.config_file`): UTF-8,
    duplicate keys refused, alias expansion and size bounded; errors name the file and line."""
    return load_config(path)


def slurm_queues(config: Any, source: str = "config") -> list[Queue]:
    """The Slurm queues of a parsed config; errors name the YAML path that is wrong."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the top level is not a mapping", "a ParallelCluster config is a YAML mapping")
    scheduling = config.get("Scheduling")
    if not isinstance(scheduling, dict) or not scheduling.get("SlurmQueues"):
        raise ConfigError(
            f"{source}: Scheduling.SlurmQueues is missing or empty",
            "declare at least one queue under Scheduling.SlurmQueues (see cluster-configs/default.yaml)",
        )
    if not isinstance(scheduling["SlurmQueues"], list):
        raise ConfigError(f"{source}: Scheduling.SlurmQueues is not a list", "list the queues, each with - Name: ...")
    queues = []
    for q_index, raw_queue in enumerate(scheduling["SlurmQueues"]):
        q_path = f"Scheduling.SlurmQueues[{q_index}]"
        if not isinstance(raw_queue, dict) or not isinstance(raw_queue.get("Name"), str) or not raw_queue["Name"]:
            raise ConfigError(f"{source}: {q_path}.Name is missing", "every queue needs a Name")
        q_path = f"Scheduling.SlurmQueues[{raw_queue['Name']}]"
        resources = []
        raw_resources = raw_queue.get("ComputeResources") or []
        if not isinstance(raw_resources, list):
            raise ConfigError(f"{source}: {q_path}.ComputeResources is not a list", "list the compute resources")
        for r_index, raw in enumerate(raw_resources):
            r_path = f"{q_path}.ComputeResources[{r_index}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str) or not raw["Name"]:
                raise ConfigError(f"{source}: {r_path}.Name is missing", "every compute resource needs a Name")
            types = [raw["InstanceType"]] if raw.get("InstanceType") else [
                i.get("InstanceType") for i in _list(raw.get("Instances")) if isinstance(i, dict)
            ]
            if not types or not all(types):
                raise ConfigError(
                    f"{source}: {r_path} has neither InstanceType nor Instances[].InstanceType",
                    "give one InstanceType, or a list under Instances",
                )
            min_count = _count(raw.get("MinCount", 0), f"{source}: {r_path}.MinCount")
            max_count = _count(raw.get("MaxCount", 10), f"{source}: {r_path}.MaxCount")
            if max_count < min_count:
                raise ConfigError(f"{source}: {r_path}.MaxCount {max_count} is below MinCount {min_count}",
                                  "MaxCount counts static and dynamic nodes together: make it at least MinCount")
            if not all(isinstance(t, str) for t in types):
                raise ConfigError(f"{source}: {r_path} has an InstanceType that is not a string",
                                  "give instance types as names, e.g. c7i.4xlarge")
            resources.append(ComputeResource(name=str(raw["Name"]), instance_types=tuple(types),
                                             min_count=min_count, max_count=max_count,
                                             flexible=not raw.get("InstanceType")))
        if not resources:
            raise ConfigError(f"{source}: {q_path}.ComputeResources is empty", "give the queue a compute resource")
        # ParallelCluster puts the cluster's Tags on every queue's instances; a queue's own Tags win.
        tags = {**_tags(config.get("Tags")), **_tags(raw_queue.get("Tags"))}
        queues.append(
            Queue(
                name=raw_queue["Name"],
                capacity_type=str(raw_queue.get("CapacityType", "ONDEMAND")),
                compute_resources=tuple(resources),
                tags=tags,
                allocation_strategy=str(raw_queue.get("AllocationStrategy") or ""),
            )
        )
    return queues


def _list(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else []


def _tags(raw: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw if isinstance(t, dict) and "Key" in t and "Value" in t} \
        if isinstance(raw, list) else {}


@dataclass(frozen=True)
class Cluster:
    """What the twin and the cost features need of a config: its queues and scale-down time."""

    queues: list[Queue]
    scaledown_idletime_min: int = 10  # ParallelCluster's default
    # (Name, MountDir, StorageType) of each SharedStorage entry: shared by every node.
    shared_storage: tuple[tuple[str, str, str], ...] = ()
    # Slurm accounting (slurmdbd): ParallelCluster sets it up only for SlurmSettings.Database
    # (its own slurmdbd) or ExternalSlurmdbd; without either, sacct has nothing to read.
    accounting: bool = False
    # The config's CustomSlurmSettings that weigh job priority (fair share): (key, value).
    priority: tuple[tuple[str, str], ...] = ()
    # The config's DirectoryService section as written (None: users are the nodes' own).
    directory: dict[str, Any] | None = None


def load_cluster(path: str | Path | None = None) -> Cluster:
    path = Path(path) if path is not None else DEFAULT_CLUSTER_CONFIG
    config = load_yaml(path)
    queues = slurm_queues(config, str(path))
    settings = (config.get("Scheduling") or {}).get("SlurmSettings") or {}
    idle = _count(settings.get("ScaledownIdletime", 10) if isinstance(settings, dict) else 10,
                  f"{path}: Scheduling.SlurmSettings.ScaledownIdletime", minimum=1)
    accounting = isinstance(settings, dict) and bool(settings.get("Database") or settings.get("ExternalSlurmdbd"))
    return Cluster(queues=queues, scaledown_idletime_min=idle, shared_storage=_shared_storage(config, str(path)),
                   accounting=accounting, priority=_priority_settings(settings),
                   directory=config.get("DirectoryService") if isinstance(config.get("DirectoryService"), dict) else None)


def _priority_settings(settings: Any) -> tuple[tuple[str, str], ...]:
    custom = settings.get("CustomSlurmSettings") if isinstance(settings, dict) else None
    return tuple((str(key), str(value)) for entry in _list(custom) if isinstance(entry, dict)
                 for key, value in entry.items() if str(key).lower().startswith("priority"))


def _shared_storage(config: dict[str, Any], source: str) -> tuple[tuple[str, str, str], ...]:
    entries = []
    for index, raw in enumerate(_list(config.get("SharedStorage"))):
        mount_dir = raw.get("MountDir") if isinstance(raw, dict) else None
        if not isinstance(mount_dir, str) or not mount_dir.startswith("/") or ".." in mount_dir.split("/"):
            raise ConfigError(f"{source}: SharedStorage[{index}].MountDir is {mount_dir!r}, not an absolute path",
                              "give each shared storage an absolute MountDir, e.g. /fsx")
        entries.append((str(raw.get("Name", f"storage{index}")), mount_dir.rstrip("/") or "/",
                        str(raw.get("StorageType", ""))))
    return tuple(entries)


def _count(value: Any, where: str, minimum: int = 0) -> int:
    """An integer count from YAML, or a ConfigError naming where (``MinCount: many``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} is {value!r}, not a whole number of at least {minimum}",
                          "give a whole number, e.g. MinCount: 0 and MaxCount: 10")
    return value


def load_queues(path: str | Path | None = None) -> list[Queue]:
    """The queues of the config at ``path`` (the shipped default config when None)."""
    path = Path(path) if path is not None else DEFAULT_CLUSTER_CONFIG
    return slurm_queues(load_yaml(path), str(path))
