"""What a config check reports: findings (level, YAML path, message, hint) and checks not run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"
LEVELS = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    level: str  # error, warning or info
    path: str  # YAML path, e.g. Scheduling.SlurmQueues[spot].ComputeResources[0].Instances
    message: str
    hint: str
    check: str  # which check found it: schema, legacy, hpctool:<name>, or pcluster:<Validator>

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class NotChecked:
    """Something that cannot be checked offline: said out loud, never counted as passed."""

    check: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Report:
    source: str
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        """0 valid (warnings allowed), 1 invalid."""
        return 0 if self.valid else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "valid": self.valid,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "not_checked": [n.to_dict() for n in self.not_checked],
            "checks_run": self.checks_run,
        }


class PathNamer:
    """Readable YAML paths: a list item is named by its ``Name`` where it has a unique one.

    ``Scheduling.SlurmQueues[spot].ComputeResources[0]``: queues by name (what admins and
    ParallelCluster call them), other lists by index, and by index when a name is missing or
    repeated, so a path never points at two places.
    """

    NAMED_LISTS = ("SlurmQueues", "LoginNodes.Pools", "SharedStorage")

    def __init__(self, config: Any) -> None:
        self.config = config

    def item(self, list_path: str, items: Any, index: int) -> str:
        label = str(index)
        if any(list_path.endswith(named) for named in self.NAMED_LISTS) and isinstance(items, list):
            item = items[index] if 0 <= index < len(items) else None
            name = item.get("Name") if isinstance(item, dict) else None
            names = [i.get("Name") for i in items if isinstance(i, dict)]
            if isinstance(name, str) and name and names.count(name) == 1 and "]" not in name:
                label = name
        return f"{list_path}[{label}]"

    def join(self, keys: list[Any]) -> str:
        """The path of a key sequence (strings for mappings, ints for list items) in the config."""
        path = ""
        node = self.config
        for key in keys:
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and isinstance(node, list)):
                index = int(key)
                path = self.item(path, node, index)
                node = node[index] if isinstance(node, list) and 0 <= index < len(node) else None
            else:
                path = f"{path}.{key}" if path else str(key)
                node = node.get(key) if isinstance(node, dict) else None
        return path
