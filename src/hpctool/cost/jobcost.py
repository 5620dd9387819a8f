"""Cost per job from Slurm accounting: pure functions over ``sacct`` text and a price book.

A job's cost is, for every node it ran on, the node's hourly price (spot or on-demand, at the
job's start) times its elapsed hours times its share of the node: the larger of its CPU share and
its memory share, so a job that takes half the memory of a node and one CPU pays for half the node.
An exclusive job is allocated every CPU of the node, so its share is the whole node.

With ``sacct -D`` a requeued job shows one record per run; the earlier runs (REQUEUED, NODE_FAIL,
PREEMPTED) are work lost to interruptions and are costed apart from the final run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

import hostlist

from hpctool.cluster.queues import Queue
from hpctool.cost.prices import PriceBook, parse_time
from hpctool.errors import ConfigError

# JobName last: a name may contain '|', which --parsable2 does not escape; it keeps the rest of the line.
COST_FIELDS = ["JobID", "User", "Account", "Partition", "State", "NodeList", "NNodes",
               "AllocCPUS", "AllocTRES", "ElapsedRaw", "Submit", "Start", "End", "JobName"]
LOST_STATES = {"REQUEUED", "EXPEDITING", "NODE_FAIL", "PREEMPTED"}  # EXPEDITING: 25.11
_MEM_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}
_TRES_MEM = re.compile(r"(?:^|,)mem=(\d+(?:\.\d+)?)([KMGT]?)")
# ParallelCluster's node names: <queue>-st-<compute resource>-<n> (static), -dy- (dynamic).
_NODE_NAME = re.compile(r"^(?P<queue>.+?)-(?:st|dy)-(?P<resource>[A-Za-z0-9]+)-\d+$")


class JobRun(NamedTuple):
    """One run of one job (a requeued job has several). A NamedTuple: a week of accounting is
    hundreds of thousands of them, and tuples are built several times faster than frozen dataclasses."""

    job_id: str
    name: str
    user: str
    account: str
    partition: str
    state: str
    node_list: str
    n_nodes: int
    cpus: int
    mem_mb: float
    elapsed_s: int
    submit: str
    start: str
    end: str
    final: bool  # the job's last run (the earlier ones were requeued)

    @property
    def lost(self) -> bool:
        return not self.final and self.state in LOST_STATES


@lru_cache(maxsize=4096)
def tres_mem_mb(tres: str) -> float:
    """Memory in MB from an AllocTRES string (``billing=2,cpu=2,mem=500M,node=1``); 0 when absent."""
    found = _TRES_MEM.search(tres)
    return float(found.group(1)) * _MEM_UNITS[found.group(2) or "M"] if found else 0.0


def parse_cost_records(text: str) -> list[JobRun]:
    """Runs from ``sacct -a -X -D --parsable2 --noheader -o <COST_FIELDS>``, in sacct's order.

    Written with str.split rather than per-row dicts: accounting over a week of a busy cluster is
    hundreds of thousands of rows, and this is the loop they all go through.
    """
    width = len(COST_FIELDS)
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line:
            continue
        values = line.split("|", width - 1)
        if len(values) != width:
            raise ConfigError(f"sacct printed {len(values)} fields where {width} were asked: {line[:120]!r}",
                              "give sacct the fields of hpctool.cost.jobcost.COST_FIELDS, in that order")
        rows.append(values)
    last_index: dict[str, int] = {}
    for index, values in enumerate(rows):
        last_index[values[0]] = index
    runs = []
    for index, v in enumerate(rows):
        runs.append(JobRun(
            job_id=v[0], name=v[13], user=v[1], account=v[2], partition=v[3],
            state=v[4].split(" ", 1)[0], node_list=v[5], n_nodes=int(v[6] or 0), cpus=int(v[7] or 0),
            mem_mb=tres_mem_mb(v[8]), elapsed_s=int(v[9] or 0), submit=v[10], start=v[11], end=v[12],
            final=last_index[v[0]] == index,
        ))
    return runs


@lru_cache(maxsize=4096)
def expand_nodes(node_list: str) -> tuple[str, ...]:
    """``spot-st-mixed16-[1-2]`` -> the node names (python-hostlist, the field's Slurm hostlist library)."""
    if not node_list or node_list.startswith("None"):
        return ()
    return tuple(hostlist.expand_hostlist(node_list))


@dataclass(frozen=True)
class NodeSpec:
    """What a node is: its instance type, what Slurm may allocate on it, and how it is bought."""

    name: str
    queue: str
    instance_type: str
    cpus: int
    memory_mb: float
    spot: bool


class NodeCatalog:
    """Node name -> NodeSpec, from the cluster config's queues and, where known, Slurm's own node
    records (``scontrol show node``: CPUTot, RealMemory, and the features, one of which may name
    the node's instance type: the twin always lists it)."""

    def __init__(self, queues: list[Queue], book: PriceBook, region: str,
                 slurm_nodes: Iterable[Mapping[str, str]] = ()) -> None:
        self.queues = {q.name: q for q in queues}
        self.book = book
        self.region = region
        self.known = {n.get("NodeName", ""): n for n in slurm_nodes}
        self._specs: dict[str, NodeSpec] = {}
        self.unpriced: list[str] = []  # runs on nodes of no queue of the config (a queue removed since)

    def spec(self, node: str, partition: str = "") -> NodeSpec:
        if node not in self._specs:
            self._specs[node] = self._build(node, partition)
        return self._specs[node]

    def _build(self, node: str, partition: str) -> NodeSpec:
        match = _NODE_NAME.match(node)
        queue_name = match.group("queue") if match else partition
        queue = self.queues.get(queue_name) or self.queues.get(partition)
        if queue is None:
            raise UnknownNodeError(f"node {node} (partition {partition or '?'}) belongs to no queue of the cluster "
                                   "config", "give the config of the cluster that ran the job (--config)")
        resource = next((r for r in queue.compute_resources if match and r.name == match.group("resource")),
                        queue.compute_resources[0])
        record = self.known.get(node, {})
        features = set(record.get("AvailableFeatures", "").split(","))
        # A resource with several instance types: the node's features say which one it is;
        # otherwise the first (the one ParallelCluster lists first and the twin models).
        instance_type = next((t for t in resource.instance_types if t in features), resource.instance_types[0])
        price = self.book.instance(instance_type, self.region)
        cpus = int(record.get("CPUTot") or price.vcpus)
        memory = float(record.get("RealMemory") or price.memory_gib * 1024)
        return NodeSpec(node, queue.name, instance_type, cpus, memory, queue.is_spot)


class RunCost(NamedTuple):
    job_id: str
    name: str
    user: str
    account: str
    queue: str
    state: str
    instance_type: str
    spot: bool
    nodes: int
    share: float  # of one node (the larger of CPU and memory share), 1.0 for exclusive jobs
    elapsed_s: int
    cost: float  # USD
    lost: bool  # an earlier run of a requeued job: work lost to an interruption
    start: str
    end: str
    price_date: str
    node_list: str = ""

    def to_dict(self) -> dict[str, object]:
        return self._asdict()


def run_cost(run: JobRun, catalog: NodeCatalog) -> RunCost | None:
    """The cost of one run, or None for a run that never got a node (pending, cancelled before start)."""
    nodes = expand_nodes(run.node_list)
    if not nodes:
        return None
    when = parse_time(run.start) if run.start not in {"Unknown", "None", ""} else None
    cpus_per_node = run.cpus / len(nodes)
    mem_per_node = run.mem_mb / len(nodes)
    hours = run.elapsed_s / 3600.0
    total = 0.0
    shares = []
    first: NodeSpec | None = None
    date = ""
    for node in nodes:
        spec = catalog.spec(node, run.partition)
        first = first or spec
        share = min(1.0, max(cpus_per_node / spec.cpus, mem_per_node / spec.memory_mb))
        shares.append(share)
        price = catalog.book.instance(spec.instance_type, catalog.region)
        date = price.date
        total += hours * share * price.hourly(spec.spot, when)
    assert first is not None
    return RunCost(run.job_id, run.name, run.user, run.account, run.partition or first.queue, run.state,
                   first.instance_type, first.spot, len(nodes), round(max(shares), 6), run.elapsed_s, total,
                   run.lost, run.start, run.end, date, run.node_list)


def costs(runs: Iterable[JobRun], catalog: NodeCatalog) -> list[RunCost]:
    """The priced runs. A run on a node of no queue of the config (its queue removed by an update
    since, so its instance type is unknown) is left out and listed in ``catalog.unpriced``."""
    priced = []
    for run in runs:
        try:
            cost = run_cost(run, catalog)
        except UnknownNodeError:
            catalog.unpriced.append(run.job_id)
            continue
        if cost is not None:
            priced.append(cost)
    return priced


class UnknownNodeError(ConfigError):
    """A node that belongs to no queue of the cluster config."""


@dataclass
class Group:
    key: str
    jobs: int = 0
    hours: float = 0.0  # elapsed node-hours weighted by share
    cost: float = 0.0


@dataclass
class Summary:
    """Costs grouped by one key; work lost to interruptions on its own line."""

    by: str
    groups: list[Group]
    lost_cost: float
    lost_hours: float
    lost_runs: int
    total: float
    price_dates: list[str]
    jobs: int = 0  # distinct jobs with a costed final run

    def to_dict(self) -> dict[str, object]:
        return {"by": self.by, "jobs": self.jobs, "groups": [asdict(g) for g in self.groups],
                "lost_to_interruptions": {"runs": self.lost_runs, "hours": round(self.lost_hours, 4),
                                          "cost": round(self.lost_cost, 6)},
                "total": round(self.total, 6), "price_dates": self.price_dates}


def summarise(items: Iterable[RunCost], by: str, key_of: Mapping[str, list[str]] | None = None) -> Summary:
    """Group run costs ``by`` a RunCost field (user, account, queue), or by ``key_of[job_id]`` (rules,
    samples, runs: a job that ran several rules splits its cost evenly between them)."""
    groups: dict[str, Group] = {}
    lost_cost = lost_hours = 0.0
    lost_runs = 0
    dates: set[str] = set()
    counted: set[tuple[str, str]] = set()
    for item in items:
        dates.add(item.price_date)
        hours = item.elapsed_s / 3600.0 * item.share * item.nodes
        if item.lost:
            lost_cost += item.cost
            lost_hours += hours
            lost_runs += 1
            continue
        keys = (key_of.get(item.job_id) or ["(not in a run)"]) if key_of is not None else [str(getattr(item, by))]
        for key in keys:
            group = groups.setdefault(key, Group(key))
            group.cost += item.cost / len(keys)
            group.hours += hours / len(keys)
            if (item.job_id, key) not in counted:
                counted.add((item.job_id, key))
                group.jobs += 1
    ordered = sorted(groups.values(), key=lambda g: (-g.cost, g.key))
    for group in ordered:
        group.cost = round(group.cost, 6)
        group.hours = round(group.hours, 4)
    total = sum(g.cost for g in ordered) + lost_cost
    return Summary(by, ordered, lost_cost, lost_hours, lost_runs, total, sorted(dates),
                   len({job for job, _ in counted}))

