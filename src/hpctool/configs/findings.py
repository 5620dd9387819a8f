"""What a config check reports: findings (level, YAML path, message, hint) and checks not run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Level(str, Enum):
    """ParallelCluster's failure levels (``pcluster.validators.common.FailureLevel``: INFO, WARNING, ERROR).

    A ``str`` enum, so a level compares equal to its name in lower case and prints as JSON text.
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_pcluster(cls, level: Any) -> Level:
        """From pcluster's FailureLevel (or its name); an unknown level counts as an error."""
        name = getattr(level, "name", str(level)).lower()
        return cls(name) if name in {"error", "warning", "info"} else cls.ERROR


ERROR = Level.ERROR
WARNING = Level.WARNING
INFO = Level.INFO
LEVELS = tuple(Level)
# Exit codes of `hpctool config validate`.
EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
# What a "not checked" item means: "account" needs your AWS account (expected offline); "incomplete"
# means a check hpctool meant to run could not run, so the verdict is not "valid".
ACCOUNT, INCOMPLETE = "account", "incomplete"


@dataclass(frozen=True)
class Finding:
    level: Level
    path: str  # YAML path, e.g. Scheduling.SlurmQueues[spot].ComputeResources[0].Instances
    message: str
    hint: str
    check: str  # which check found it: schema, legacy, hpctool:<name>, or pcluster:<Validator>

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "level": str(self.level)}


@dataclass(frozen=True)
class NotChecked:
    """Something that cannot be checked offline: said out loud, never counted as passed."""

    check: str
    reason: str
    kind: str = ACCOUNT  # ACCOUNT or INCOMPLETE

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Report:
    source: str
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)

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
    def incomplete(self) -> bool:
        """A check that should have run could not (e.g. --deep's validators): never reported as valid."""
        return any(n.kind == INCOMPLETE for n in self.not_checked)

    @property
    def verdict(self) -> str:
        return "invalid" if not self.valid else "incomplete" if self.incomplete else "valid"

    @property
    def exit_code(self) -> int:
        """0 valid (warnings allowed), 1 invalid, 3 incomplete (no error found, but not everything ran)."""
        return EXIT_INVALID if not self.valid else EXIT_INCOMPLETE if self.incomplete else EXIT_VALID

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "valid": self.valid,
            "incomplete": self.incomplete,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "not_checked": [n.to_dict() for n in self.not_checked],
            "checks_run": self.checks_run,
            "suppressed": [f.to_dict() for f in self.suppressed],
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
        self._names: dict[int, dict[str, int]] = {}  # id(list) -> name -> how often (linear, not quadratic)

    def item(self, list_path: str, items: Any, index: int) -> str:
        label = str(index)
        if any(list_path.endswith(named) for named in self.NAMED_LISTS) and isinstance(items, list):
            item = items[index] if 0 <= index < len(items) else None
            name = item.get("Name") if isinstance(item, dict) else None
            counts = self._names.get(id(items))
            if counts is None:
                counts = {}
                for other in items:
                    other_name = other.get("Name") if isinstance(other, dict) else None
                    if isinstance(other_name, str):
                        counts[other_name] = counts.get(other_name, 0) + 1
                self._names[id(items)] = counts
            if isinstance(name, str) and name and counts.get(name) == 1 and "]" not in name:
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
