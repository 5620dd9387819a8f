"""`hpctool local update NEW.yaml`: a config update applied to the running twin as ParallelCluster
applies `pcluster update-cluster` on the head node.

What may be applied, and what it needs, is `hpctool config diff`'s answer (ParallelCluster's own
ConfigPatch and update policies, :mod:`hpctool.configs.diff`) for a running compute fleet; an
update it refuses is refused here with the same words. What the head node then does, from
ParallelCluster's cookbook (``update_head_node.rb``, 3.11-3.16):

1. queues whose changes have the QUEUE_UPDATE_STRATEGY policy are marked per QueueUpdateStrategy,
   with the node lists of the old config: DRAIN sets their static nodes to DRAIN and their
   dynamic nodes to POWER_DOWN_ASAP; TERMINATE forces every node down (its jobs requeued);
2. slurm.conf is written from the new config;
3. slurmctld is restarted, then ``scontrol reconfigure`` (always both);
4. clustermgtd replaces a drained static node once it is idle (the twin's manager does, for the
   nodes the update drained), and an instance whose node left the config is terminated.

The twin's part is only the partitions and nodes it models (queues, compute resources, counts,
instance types); changes it has no counterpart for (IAM, tags, CustomSlurmSettings...) are
listed as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hpctool.atomic import write_atomic
from hpctool.configs.diff import Diff, diff_files
from hpctool.configs.update_plan import verdict
from hpctool.errors import TwinError, UpdateRefusedError
from hpctool.slurm.parse import node_powered_down
from hpctool.twin import daemons, head, nodes
from hpctool.twin.core import Twin
from hpctool.twin.layout import TwinLayout, TwinNode

# The reason ParallelCluster's update recipe gives the nodes it drains or powers down.
UPDATE_REASON = "updating node state during cluster update"
STRATEGY_POLICY = "QUEUE_UPDATE_STRATEGY"
# Parts of a config the twin models: a change elsewhere is applied to nothing here.
MODELLED = ("Scheduling.SlurmQueues",)


@dataclass
class UpdateResult:
    config: str
    strategy: str
    changes: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)  # replaced by the manager once idle
    replaced: list[str] = field(default_factory=list)  # TERMINATE: at once, jobs requeued
    requeued: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # jobs on removed nodes: Slurm ends them (NODE_FAIL)
    not_modelled: list[str] = field(default_factory=list)  # applied on a cluster, nothing to do here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def update(twin: Twin, new_config: str | Path) -> UpdateResult:
    """Apply ``new_config`` to the running twin, or refuse as ParallelCluster would."""
    layout = twin.layout()
    if layout is None or not twin.is_up():
        raise TwinError("the twin is not up", "`hpctool local up` first; update changes a running twin")
    if not Path(layout.config).is_file():
        raise TwinError(f"the twin's config {layout.config} is gone: nothing to compare the update with",
                        "`hpctool local up --config FILE` with the config it runs, then update")
    diff = diff_files(layout.config, new_config, fleet="running", cluster="twin")
    if not diff.applicable:
        blocking = "; ".join(f"{c.path}: {c.reason or c.meaning}" for c in diff.changes if c.result != "SUCCEEDED")
        raise UpdateRefusedError(f"{verdict(diff)}: {blocking}",
                                 " then ".join(diff.steps) or "`hpctool config diff` explains each change")
    if not diff.changes:
        return UpdateResult(config=layout.config, strategy=diff.queue_update_strategy, changes=0)
    wanted = twin.plan(new_config, static_per_queue=layout.static_per_queue, max_dynamic=layout.max_dynamic,
                       time_scale=layout.time_scale)
    if (wanted.accounting, wanted.shared_storage) != (layout.accounting, layout.shared_storage):
        raise TwinError("the twin applies accounting and shared storage changes only when it starts",
                        "`hpctool local down`, then `hpctool local up --config NEW` (docs/twin.md)")
    merged = carry_over(layout, wanted)
    result = UpdateResult(config=merged.config, strategy=diff.queue_update_strategy, changes=len(diff.changes),
                          not_modelled=[c.path for c in diff.changes if not c.path.startswith(MODELLED)])
    twin.progress(f"applying {len(diff.changes)} change(s) of {Path(new_config).name}")
    with twin.locked():
        _apply(twin, layout, merged, diff, result)
    return result


def carry_over(running: TwinLayout, wanted: TwinLayout) -> TwinLayout:
    """The new layout with what running hosts already have: a kept node keeps its host number
    (its address), nodes keep their memory; new nodes take free host numbers."""
    kept = {n.name: n.index for n in running.nodes}
    free = max([n.index for n in running.nodes] + [0]) + 1
    placed: list[TwinNode] = []
    for node in wanted.nodes:
        if node.name in kept:
            placed.append(replace(node, index=kept[node.name]))
        else:
            placed.append(replace(node, index=free))
            free += 1
    return replace(wanted, nodes=placed, memory_mb_per_node=running.memory_mb_per_node,
                   ports={**running.ports, **wanted.ports})


def strategy_queues(diff: Diff, queues: list[str]) -> set[str]:
    """The queues QueueUpdateStrategy applies to: those with a QUEUE_UPDATE_STRATEGY change (every
    queue when such a change is outside any queue)."""
    marked = {c.queue for c in diff.changes if c.policy == STRATEGY_POLICY}
    return set(queues) if None in marked else {q for q in marked if q is not None}


def _apply(twin: Twin, old: TwinLayout, new: TwinLayout, diff: Diff, result: UpdateResult) -> None:
    old_names, new_names = {n.name for n in old.nodes}, {n.name for n in new.nodes}
    result.added = [n.name for n in new.nodes if n.name not in old_names]
    result.removed = [n.name for n in old.nodes if n.name not in new_names]
    marked = strategy_queues(diff, [q["name"] for q in old.queues])
    states = twin.slurm.node_states()
    # 1. The old config's nodes of the marked queues, per strategy.
    for node in (n for n in old.nodes if n.queue in marked and n.name in new_names):
        if diff.queue_update_strategy == "TERMINATE":
            result.requeued += _requeue_jobs_on(twin, node.name)
            if node.dynamic:
                twin.slurm.update_node(node.name, "power_down_force", UPDATE_REASON)
            else:
                result.replaced.append(node.name)
        elif node.dynamic:
            if not node_powered_down(states.get(node.name, "")):
                twin.slurm.update_node(node.name, "power_down_asap", UPDATE_REASON)
        else:
            twin.slurm.update_node(node.name, "drain", UPDATE_REASON)
            result.drained.append(node.name)
    # Jobs on nodes that leave: slurmctld, restarted without their nodes, ends them (NODE_FAIL).
    for name in result.removed:
        result.ended += _jobs_on(twin, name)
    # 2-3. The new slurm.conf, slurmctld restarted, then reconfigure.
    write_atomic(twin.layout_file, new.to_json())
    head.write_name_service(twin, new)
    head.write_slurm_conf(twin, new)
    twin.progress("restarting slurmctld with the new config")
    daemons.stop_pid(daemons.read_pid(twin.run_dir / "slurmctld.pid"), name="slurmctld", program="slurmctld",
                     timeout=30)
    head.start_slurmctld(twin)
    twin.slurm.run(["scontrol", "reconfigure"])
    # 4. Instances of nodes that left the config end; TERMINATE's static nodes are replaced; new
    # static nodes boot (new dynamic ones start powered down, as CLOUD nodes do).
    for name in result.removed:
        twin.stop_node(name)
    for name in result.replaced:
        twin.stop_node(name)
    booted = [n.name for n in new.static_nodes() if n.name in result.replaced or n.name in result.added]
    for name in booted:
        twin.start_node(name)
    if booted:
        nodes.wait_responding(twin, booted)
        for name in result.replaced:  # down while its host was away: a new instance is in service
            twin.slurm.run(["scontrol", "update", f"nodename={name}", "state=resume"], check=False)
    for service in twin.services:
        service.start(twin, new)


def _jobs_on(twin: Twin, node: str) -> list[str]:
    listed = twin.slurm.run(["squeue", "-h", "-w", node, "-t", "RUNNING,CONFIGURING,COMPLETING", "-o", "%i"])
    return listed.stdout.split()


def _requeue_jobs_on(twin: Twin, node: str) -> list[str]:
    """Jobs running on ``node``, requeued (a node forced down requeues its jobs)."""
    ids = _jobs_on(twin, node)
    for job_id in ids:
        twin.slurm.requeue(job_id)
    return ids
