"""The registry of hpctool's cross-checks: one function per check, registered under its name.

A check reads the raw parsed YAML (any shape: the schema may have failed) through a
:class:`Config` and yields :class:`Issue` (level, YAML path, message, hint) or
:class:`~hpctool.configs.findings.NotChecked`; none of them raises on odd input. The name given to
:func:`check` is the only place it is spelled: a finding's check is ``hpctool:<name>`` and
``--suppress NAME`` takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hpctool.configs.findings import NotChecked, PathNamer
from hpctool.configs.instances import InstanceCatalog


@dataclass(frozen=True)
class Issue:
    """What a check found; the registry makes it a finding of that check."""

    level: str
    path: str
    message: str
    hint: str


CheckFunction = Callable[["Config"], Iterable[Issue | NotChecked]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFunction


CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as the check ``name``."""
    def register(function: CheckFunction) -> CheckFunction:
        if name in CHECKS:
            raise ValueError(f"two hpctool checks are named {name!r}")
        CHECKS[name] = Check(name, function)
        return function
    return register


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Config:
    """A parsed config as the checks read it: queues, compute resources, instance facts, region."""

    def __init__(self, config: Any, instances: InstanceCatalog | None, region: str | None = None) -> None:
        self.raw = config if isinstance(config, dict) else {}
        self.namer = PathNamer(self.raw)
        self.instances = instances
        self.region = region or (self.raw.get("Region") if isinstance(self.raw.get("Region"), str) else None)
        self.slurm_settings = as_dict(as_dict(self.raw.get("Scheduling")).get("SlurmSettings"))
        self.memory_scheduling = self.slurm_settings.get("EnableMemoryBasedScheduling") is True

    def get(self, key: str) -> Any:
        return self.raw.get(key)

    def queues(self) -> Iterator[tuple[str, dict]]:
        items = as_list(as_dict(self.raw.get("Scheduling")).get("SlurmQueues"))
        for index, queue in enumerate(items):
            if isinstance(queue, dict):
                yield self.namer.item("Scheduling.SlurmQueues", items, index), queue

    def compute_resources(self) -> Iterator[tuple[str, dict, dict]]:
        for q_path, queue in self.queues():
            for index, resource in enumerate(as_list(queue.get("ComputeResources"))):
                if isinstance(resource, dict):
                    yield f"{q_path}.ComputeResources[{index}]", queue, resource

    def strings(self) -> Iterator[tuple[str, str]]:
        """Every string value of the config with its YAML path."""
        yield from _strings(self.raw, [], self.namer)


def instance_types(resource: dict) -> tuple[list[str], str]:
    """The instance types of a compute resource and the key they are under."""
    if resource.get("InstanceType") is not None:
        types, key = [resource.get("InstanceType")], "InstanceType"
    else:
        types, key = [as_dict(i).get("InstanceType") for i in as_list(resource.get("Instances"))], "Instances"
    return [t for t in types if isinstance(t, str)], key


def _strings(node: Any, keys: list[Any], namer: PathNamer) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, [*keys, str(key)], namer)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, [*keys, index], namer)
    elif isinstance(node, str):
        yield namer.join(keys), node
