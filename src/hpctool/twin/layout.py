"""What the twin is made of, planned from a cluster config: nodes named and laid out as
ParallelCluster lays them out, ports, and the time scale of its autoscaling. Pure: no I/O but
the machine's memory size."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hpctool.cluster.queues import Queue
from hpctool.errors import SetupError

CPUS_PER_NODE = 4  # virtual CPUs a node claims (SlurmdParameters=config_overrides)
MAX_STATIC_PER_RESOURCE = 4  # one machine: MinCount 20 becomes 4 slurmd, not 20
DEFAULT_MAX_DYNAMIC = 2  # dynamic nodes per compute resource (MaxCount - MinCount, capped)
DEFAULT_TIME_SCALE = 0.1  # twin seconds per ParallelCluster second (idle 10 min -> 60 s)
DEFAULT_BOOT_DELAY_S = 1.0  # a powered-down node's simulated boot (EC2 launch + bootstrap)

# Who scales the twin: hpctool's own power programs and manager ("twin"), or ParallelCluster's node
# daemons against moto ("parallelcluster", issue 22; hpctool.twin.pcnode).
SCALINGS = ("twin", "parallelcluster")

SLURMCTLD_PORT, SLURMD_PORT, DBD_PORT, MARIADB_PORT = 6817, 6818, 6819, 3306  # Slurm's and MariaDB's own

# ParallelCluster's weights: the scheduler fills static nodes before it powers up dynamic ones.
STATIC_WEIGHT = 1
DYNAMIC_WEIGHT = 1000

PortPlanner = Callable[[list["TwinNode"], int], dict[str, int]]


@dataclass
class TwinNode:
    name: str
    queue: str
    compute_resource: str
    instance_type: str
    port: int  # the node's slurmd port (SlurmdPort; every node is a host of its own)
    spot: bool
    dynamic: bool = False
    index: int = 0  # the node's host number on the twin's bridge (0 is the head node)
    scratch: bool = False  # its instance type has instance store: /scratch on the node

    @property
    def features(self) -> list[str]:
        """As ParallelCluster writes them: kind, instance type, compute resource (+ spot here)."""
        kind = "dynamic" if self.dynamic else "static"
        return [kind, self.instance_type, self.compute_resource] + (["spot"] if self.spot else [])


@dataclass
class TwinLayout:
    """Derived from a cluster config at ``up``, saved as twin.json."""

    config: str
    static_per_queue: int
    max_dynamic: int
    cpus_per_node: int
    memory_mb_per_node: int
    ports: dict[str, int]
    queues: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[TwinNode] = field(default_factory=list)
    time_scale: float = DEFAULT_TIME_SCALE
    scaledown_idletime_min: int = 10
    shared_storage: list[list[str]] = field(default_factory=list)  # [name, MountDir, StorageType]
    # slurmdbd and its database, as the config's SlurmSettings ask (True: layouts saved before
    # the field always had them).
    accounting: bool = True
    priority: list[list[str]] = field(default_factory=list)  # [key, value] of the config's Priority* settings
    directory: dict[str, Any] | None = None  # the config's DirectoryService (slapd and SSSD on the twin)
    scaling: str = "twin"  # one of SCALINGS

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TwinLayout:
        data = json.loads(text)
        data["nodes"] = [TwinNode(**n) for n in data["nodes"]]
        return cls(**data)

    def node(self, name: str) -> TwinNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def spot_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if n.spot]

    def static_nodes(self) -> list[TwinNode]:
        return [n for n in self.nodes if not n.dynamic]

    def dynamic_nodes(self) -> list[TwinNode]:
        return [n for n in self.nodes if n.dynamic]

    def same_cluster(self, other: TwinLayout) -> bool:
        """Same partitions, nodes and timings: a running twin that already is what ``up`` wants."""
        return ((self.queues, self.nodes, self.time_scale, self.shared_storage, self.accounting, self.priority,
                 self.directory, self.scaling)
                == (other.queues, other.nodes, other.time_scale, other.shared_storage, other.accounting,
                    other.priority, other.directory, other.scaling))

    @property
    def pcnode(self) -> bool:
        """ParallelCluster's own daemons scale this twin."""
        return self.scaling == "parallelcluster"


def machine_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def plan_layout(queues: list[Queue], config: str, *, static_per_queue: int = 0,
                max_dynamic: int = DEFAULT_MAX_DYNAMIC, base: int, time_scale: float = DEFAULT_TIME_SCALE,
                scaledown_idletime_min: int = 10, service_ports: PortPlanner | None = None,
                real_memory_mb: int | None = None, instance_store: Callable[[str], bool] | None = None,
                shared_storage: list[list[str]] | None = None, accounting: bool = True,
                priority: Sequence[Sequence[str]] = (), directory: dict[str, Any] | None = None,
                scaling: str = "twin") -> TwinLayout:
    """Name the nodes as ParallelCluster does: per compute resource, ``MinCount`` static nodes
    ``<queue>-st-<cr>-<n>`` and ``MaxCount - MinCount`` dynamic ones ``<queue>-dy-<cr>-<n>``
    (both capped for one machine). ``static_per_queue`` adds static nodes to queues whose config
    has fewer, spread over their compute resources (tests and demos that want nodes up at once)."""
    if static_per_queue < 0:
        raise SetupError(f"--static {static_per_queue} is below 0", "give 0 or more static nodes per queue")
    if max_dynamic < 0:
        raise SetupError(f"--max-dynamic {max_dynamic} is below 0", "give 0 or more dynamic nodes per compute resource")
    if not 0.001 <= time_scale <= 1:
        raise SetupError(f"--time-scale {time_scale:g} is out of range",
                         "give a factor from 0.001 to 1 (1 = ParallelCluster's own timings)")
    if scaling not in SCALINGS:
        raise SetupError(f"--scaling {scaling!r} is not one the twin knows", f"use one of {', '.join(SCALINGS)}")
    counts: list[tuple[Queue, int, list[int], list[int]]] = []
    total_nodes = 0
    for queue in queues:
        resources = queue.compute_resources
        static = [min(r.min_count, MAX_STATIC_PER_RESOURCE) for r in resources]
        for index in range(max(0, static_per_queue - sum(static))):
            static[index % len(resources)] += 1
        dynamic = [min(max(r.max_count - r.min_count, 0), max_dynamic) for r in resources]
        if sum(static) + sum(dynamic) == 0:
            raise SetupError(f"queue {queue.name} would have no node on the twin",
                             "give it MaxCount above MinCount, or use --static / --max-dynamic of 1 or more")
        counts.append((queue, total_nodes, static, dynamic))
        total_nodes += sum(static) + sum(dynamic)
    real_mb = real_memory_mb if real_memory_mb is not None else machine_memory_mb()
    # Keep the sum of RealMemory well inside the machine, or slurmd jobs would be oversold.
    memory_mb = max(512, min(4096, int(real_mb * 0.6 / max(total_nodes, 1))))
    # Each node is a host of its own on the twin's bridge: Slurm's own ports everywhere.
    ports = {"SlurmctldPort": SLURMCTLD_PORT, "DbdPort": DBD_PORT, "MariaDB port": MARIADB_PORT}
    nodes: list[TwinNode] = []
    queue_rows = []
    for queue, _, static, dynamic in counts:
        names = []
        for kind, per_resource in (("st", static), ("dy", dynamic)):
            for resource, count in zip(queue.compute_resources, per_resource, strict=True):
                for ordinal in range(1, count + 1):
                    node = TwinNode(name=f"{queue.name}-{kind}-{resource.name}-{ordinal}", queue=queue.name,
                                    compute_resource=resource.name, instance_type=resource.instance_types[0],
                                    port=SLURMD_PORT, spot=queue.is_spot, dynamic=kind == "dy",
                                    index=len(nodes) + 1,
                                    scratch=bool(instance_store and instance_store(resource.instance_types[0])))
                    nodes.append(node)
                    names.append(node.name)
        queue_rows.append({"name": queue.name, "capacity_type": queue.capacity_type, "spot": queue.is_spot,
                           "compute_resources": [r.name for r in queue.compute_resources], "nodes": names})
    if service_ports is not None:
        ports.update(service_ports(nodes, base))
    return TwinLayout(config=config, static_per_queue=static_per_queue, max_dynamic=max_dynamic,
                      cpus_per_node=CPUS_PER_NODE, memory_mb_per_node=memory_mb, ports=ports,
                      queues=queue_rows, nodes=nodes, time_scale=time_scale,
                      scaledown_idletime_min=scaledown_idletime_min,
                      shared_storage=[list(entry) for entry in shared_storage or []], accounting=accounting,
                      priority=[list(entry) for entry in priority], directory=directory, scaling=scaling)
