"""Reading a ParallelCluster 3 config: the parts hpctool itself builds on (queues and nodes).

Full validation lives in the config feature; this module only turns ``Scheduling.SlurmQueues``
into a small model that the local twin and the cost and workflow features share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpctool import resources
from hpctool.errors import ConfigError

# The folder holding bootstrap/, snakemake/, ...: the checkout root, or the wheel's copy (hpctool.resources).
# Kept for spot.py until the twin split moves it onto hpctool.resources.
REPO_ROOT = resources.data_root()
DEFAULT_CLUSTER_CONFIG = resources.path("cluster-configs") / "default.yaml"


@dataclass(frozen=True)
class ComputeResource:
    name: str
    instance_types: tuple[str, ...]
    min_count: int
    max_count: int


@dataclass(frozen=True)
class Queue:
    name: str
    capacity_type: str  # ONDEMAND, SPOT or CAPACITY_BLOCK, as ParallelCluster spells it
    compute_resources: tuple[ComputeResource, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_spot(self) -> bool:
        return self.capacity_type == "SPOT"


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, with errors that name the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file", "give the path of a ParallelCluster config") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", "check the path and its permissions") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}", "fix the YAML syntax") from exc


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
    queues = []
    for q_index, raw_queue in enumerate(scheduling["SlurmQueues"]):
        q_path = f"Scheduling.SlurmQueues[{q_index}]"
        if not isinstance(raw_queue, dict) or not raw_queue.get("Name"):
            raise ConfigError(f"{source}: {q_path}.Name is missing", "every queue needs a Name")
        q_path = f"Scheduling.SlurmQueues[{raw_queue['Name']}]"
        resources = []
        for r_index, raw in enumerate(raw_queue.get("ComputeResources") or []):
            r_path = f"{q_path}.ComputeResources[{r_index}]"
            if not isinstance(raw, dict) or not raw.get("Name"):
                raise ConfigError(f"{source}: {r_path}.Name is missing", "every compute resource needs a Name")
            types = [raw["InstanceType"]] if raw.get("InstanceType") else [
                i.get("InstanceType") for i in raw.get("Instances") or [] if isinstance(i, dict)
            ]
            if not types or not all(types):
                raise ConfigError(
                    f"{source}: {r_path} has neither InstanceType nor Instances[].InstanceType",
                    "give one InstanceType, or a list under Instances",
                )
            resources.append(
                ComputeResource(
                    name=raw["Name"],
                    instance_types=tuple(types),
                    min_count=int(raw.get("MinCount", 0)),
                    max_count=int(raw.get("MaxCount", 10)),
                )
            )
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
            )
        )
    return queues


def _tags(raw: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw if isinstance(t, dict) and "Key" in t and "Value" in t} \
        if isinstance(raw, list) else {}


def load_queues(path: str | Path | None = None) -> list[Queue]:
    """The queues of the config at ``path`` (the shipped default config when None)."""
    path = Path(path) if path is not None else DEFAULT_CLUSTER_CONFIG
    return slurm_queues(load_yaml(path), str(path))
