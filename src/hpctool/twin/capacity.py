"""Faults of EC2 capacity that a user injects into the twin (``hpctool local capacity``), per
compute resource: no capacity for a while, slow boots, boots that never finish. Kept in one
JSON file that the resume program and the cluster manager read."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hpctool.atomic import write_atomic
from hpctool.errors import TwinError
from hpctool.slurm.parse import node_state_flags
from hpctool.twin.conf import TwinPaths
from hpctool.twin.layout import DEFAULT_BOOT_DELAY_S, TwinLayout

INSUFFICIENT_CODE = "InsufficientInstanceCapacity"
# ParallelCluster's reasons, word for word: users and scripts grep for them.
RESUME_FAILURE_REASON = "(Code:{code})Failure when resuming nodes"
DISABLED_REASON = "(Code:{code})Temporarily disabling node due to insufficient capacity"


@dataclass
class ResourceFaults:
    insufficient_until: float = 0.0  # epoch; 0 = capacity is there
    code: str = INSUFFICIENT_CODE
    boot_delay_s: float | None = None  # None = the twin's default
    boot_hang: bool = False
    disabled_until: float = 0.0  # set by a failed resume: the resource's nodes are down till then

    def insufficient(self, now: float | None = None) -> bool:
        return self.insufficient_until > (now if now is not None else time.time())


@dataclass
class CapacityFaults:
    resources: dict[str, ResourceFaults] = field(default_factory=dict)  # "queue/cr" -> faults

    def get(self, queue: str, resource: str) -> ResourceFaults:
        return self.resources.get(f"{queue}/{resource}", ResourceFaults())

    def put(self, queue: str, resource: str, faults: ResourceFaults) -> None:
        self.resources[f"{queue}/{resource}"] = faults


def faults_file(paths: TwinPaths) -> Path:
    return paths.state / "capacity.json"


def load(paths: TwinPaths) -> CapacityFaults:
    try:
        data = json.loads(faults_file(paths).read_text())
    except FileNotFoundError:
        return CapacityFaults()
    except ValueError:
        return CapacityFaults()  # a torn file cannot happen (atomic writes); an edited one is reset
    return CapacityFaults({key: ResourceFaults(**value) for key, value in data.get("resources", {}).items()})


def save(paths: TwinPaths, faults: CapacityFaults) -> None:
    write_atomic(faults_file(paths), json.dumps({"resources": {k: asdict(v) for k, v in faults.resources.items()}},
                                                indent=2) + "\n")


def resolve_target(layout: TwinLayout, target: str) -> list[tuple[str, str]]:
    """``QUEUE`` or ``QUEUE/CR`` -> the (queue, compute resource) pairs it names."""
    queue_name, _, resource = target.partition("/")
    queue = next((q for q in layout.queues if q["name"] == queue_name), None)
    if queue is None:
        raise TwinError(f"no queue {queue_name!r} on the twin", f"queues: {', '.join(q['name'] for q in layout.queues)}")
    resources = queue.get("compute_resources") or sorted({n.compute_resource for n in layout.nodes
                                                          if n.queue == queue_name})
    if resource and resource not in resources:
        raise TwinError(f"queue {queue_name} has no compute resource {resource!r}",
                        f"its compute resources: {', '.join(resources)}")
    return [(queue_name, r) for r in ([resource] if resource else resources)]


def set_faults(paths: TwinPaths, layout: TwinLayout, target: str, *, insufficient_for: float | None = None,
               boot_delay_s: float | None = None, boot_hang: bool | None = None,
               restore: bool = False) -> dict[str, ResourceFaults]:
    """Change the faults of ``target``; returns the new faults per ``queue/cr``."""
    if insufficient_for is not None and not 0 < insufficient_for <= 86400:
        raise TwinError(f"--for {insufficient_for:g} is out of range", "give seconds from 1 to 86400")
    if boot_delay_s is not None and not 0 <= boot_delay_s <= 3600:
        raise TwinError(f"--slow-boot {boot_delay_s:g} is out of range", "give seconds from 0 to 3600")
    faults = load(paths)
    changed = {}
    for queue, resource in resolve_target(layout, target):
        current = ResourceFaults() if restore else faults.get(queue, resource)
        if insufficient_for is not None:
            current.insufficient_until = time.time() + insufficient_for
        if boot_delay_s is not None:
            current.boot_delay_s = boot_delay_s
        if boot_hang is not None:
            current.boot_hang = boot_hang
        faults.put(queue, resource, current)
        changed[f"{queue}/{resource}"] = current
    save(paths, faults)
    return changed


def boot_delay(faults: ResourceFaults) -> float:
    return faults.boot_delay_s if faults.boot_delay_s is not None else DEFAULT_BOOT_DELAY_S


def is_capacity_reason(reason: str) -> bool:
    """True for a node reason a capacity failure set (either of ParallelCluster's two texts)."""
    return "Failure when resuming nodes" in reason or "due to insufficient capacity" in reason


def describe(fault: ResourceFaults) -> str:
    parts = []
    if fault.insufficient():
        parts.append(f"no capacity ({fault.code}) for {fault.insufficient_until - time.time():.0f} s more")
    if fault.boot_hang:
        parts.append("boots hang")
    elif fault.boot_delay_s is not None:
        parts.append(f"boots take {fault.boot_delay_s:g} s")
    return "; ".join(parts) or "normal"


def reenable(twin, layout: TwinLayout, keys: list[str]) -> list[str]:
    """Capacity is back now (``--restore``): the resources' nodes that a failed resume took down
    go back to powered down at once, without waiting for the manager's timeout."""
    wanted = set(keys)
    records = twin.slurm.nodes()
    reset = []
    for record in records:
        node = layout.node(record.get("NodeName", ""))
        reason = record.get("Reason", "")
        if node is None or f"{node.queue}/{node.compute_resource}" not in wanted:
            continue
        if is_capacity_reason(reason) and node_state_flags(record.get("State", ""))[0] == "DOWN":
            twin.slurm.update_node(node.name, "power_down_force")
            reset.append(node.name)
    return reset
