"""Which node hosts the twin should run for the EC2 instances ParallelCluster's daemons launch.

On a cluster, ``slurm_resume`` launches an instance per Slurm node and records the assignment in
the node table ``parallelcluster-slurm-<cluster>`` (an item ``{Id: <node>, InstanceId: <id>,
HeadNodePrivateIp, HeadNodeHostname}`` per node, replaced on the next launch for that node and
never deleted); the instance boots and learns its node name from the table by its instance id (the
``InstanceId`` index). moto has no instance lifecycle: nothing boots. The twin watches EC2 and the
table instead and boots a node host per assigned instance, at the instance's private address, and
ends the host when its instance goes (terminated, stopped, gone) or the table gives the node another
instance.

:func:`plan_hosts` is the pure decision (data in, a :class:`HostPlan` out); :func:`compute_instances`
and :func:`node_assignments` read its inputs from the twin's moto (through :mod:`hpctool.aws`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hpctool import aws
from hpctool.errors import TwinError
from hpctool.twin.pcnode_conf import CLUSTER_NAME, REGION, slurm_table

# EC2's instance states as ParallelCluster groups them (slurm_plugin.slurm_resources): a host runs
# for a healthy instance only; a stopping or stopped one lost its node (clustermgtd replaces it).
HEALTHY_STATES = ("pending", "running")
STOP_STATES = ("stopping", "stopped")
# What the twin reads: every state, so an ended host's reason says what became of its instance
# (moto keeps terminated instances for good; the twin's few hundred at most are a cheap read).
# An instance not listed at all (moto restarted, state lost) is "gone".
READ_STATES = (*HEALTHY_STATES, *STOP_STATES, "shutting-down", "terminated")
END_REASONS = ("terminated", "stopped", "gone", "replaced")
QUEUE_TAG = "parallelcluster:queue-name"
RESOURCE_TAG = "parallelcluster:compute-resource-name"


@dataclass(frozen=True)
class ComputeInstance:
    """A compute instance as the planner needs it: its private address is "" until EC2 has one."""

    id: str
    state: str
    private_ip: str
    launch_time: datetime
    queue: str = ""
    compute_resource: str = ""


@dataclass(frozen=True)
class HostBoot:
    """Boot node ``node``'s host at ``address`` for ``instance_id``, not before ``not_before``
    (the instance's launch time plus its compute resource's boot delay)."""

    node: str
    address: str
    instance_id: str
    not_before: datetime


@dataclass(frozen=True)
class HostEnd:
    """End the host of ``node`` (booted for ``instance_id``); ``reason`` is one of END_REASONS."""

    node: str
    instance_id: str
    reason: str


@dataclass(frozen=True)
class HostPlan:
    """What to do now. Apply ``end`` before ``boot``: a replaced node's new host takes the same name,
    and EC2 may give a new instance a terminated one's address."""

    boot: tuple[HostBoot, ...] = ()
    end: tuple[HostEnd, ...] = ()
    # Healthy instances without a host yet and left alone: no node assigned (resume writes the
    # table after the launch, and an all-or-nothing launch terminates what it cannot use), or no
    # private address yet (EC2's eventual consistency).
    waiting: tuple[str, ...] = ()
    # Healthy instances the table gives to more than one node: no host, rather than two at one address.
    conflicts: tuple[str, ...] = ()

    def due(self, now: datetime) -> tuple[HostBoot, ...]:
        """The boots whose time has come."""
        return tuple(boot for boot in self.boot if boot.not_before <= now)


def plan_hosts(instances: Iterable[ComputeInstance], assignments: Mapping[str, str], running: Mapping[str, str],
               boot_delays: Mapping[tuple[str, str], float], default_delay: float = 0.0) -> HostPlan:
    """The hosts to boot and end. ``instances``: the cluster's compute instances (any states; one
    not among them is gone); ``assignments``: the node table, node -> instance id; ``running``: the
    node hosts that run now, node -> the instance id each was booted for; ``boot_delays``: seconds
    per (queue, compute resource), ``default_delay`` for others."""
    by_id = {instance.id: instance for instance in instances}
    ends = []
    for node, instance_id in sorted(running.items()):
        reason = _end_reason(by_id.get(instance_id), assignments.get(node, instance_id), instance_id)
        if reason:
            ends.append(HostEnd(node, instance_id, reason))
    nodes_of: dict[str, list[str]] = defaultdict(list)
    for node, instance_id in assignments.items():
        nodes_of[instance_id].append(node)
    boots, waiting, conflicts = [], [], []
    for instance in sorted(by_id.values(), key=lambda i: i.id):
        if instance.state not in HEALTHY_STATES:
            continue
        nodes = sorted(nodes_of.get(instance.id, []))
        if len(nodes) > 1:
            conflicts.append(instance.id)
        elif not nodes or not instance.private_ip:
            waiting.append(instance.id)
        elif running.get(nodes[0]) != instance.id:
            delay = boot_delays.get((instance.queue, instance.compute_resource), default_delay)
            boots.append(HostBoot(nodes[0], instance.private_ip, instance.id,
                                  _utc(instance.launch_time) + timedelta(seconds=delay)))
    return HostPlan(boot=tuple(boots), end=tuple(ends), waiting=tuple(waiting), conflicts=tuple(conflicts))


def _end_reason(instance: ComputeInstance | None, assigned: str, booted_for: str) -> str:
    # The instance's own fate first: a replaced node's old instance is usually terminated as well.
    if instance is None:
        return "gone"
    if instance.state in STOP_STATES:
        return "stopped"
    if instance.state not in HEALTHY_STATES:
        return "terminated"
    return "replaced" if assigned != booted_for else ""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# -- reading the inputs from the twin's moto ---------------------------------------------------------
def instance_from_ec2(info: Mapping[str, Any]) -> ComputeInstance:
    """A DescribeInstances instance dict as the planner's instance. The address is the one
    ParallelCluster takes (common.ec2_utils): the interface at device 0 of network card 0."""
    address = str(info.get("PrivateIpAddress") or "")
    for interface in info.get("NetworkInterfaces", []):
        attachment = interface.get("Attachment", {})
        if attachment.get("DeviceIndex", -1) == 0 and attachment.get("NetworkCardIndex", 0) == 0:
            address = str(interface.get("PrivateIpAddress") or address)
    tags = {tag["Key"]: tag["Value"] for tag in info.get("Tags", [])}
    launched = info.get("LaunchTime")
    if not isinstance(launched, datetime):
        raise TwinError(f"instance {info.get('InstanceId')} has no launch time: {launched!r}",
                        "is the endpoint the twin's moto (hpctool.twin.ec2)?")
    return ComputeInstance(id=str(info["InstanceId"]), state=str(info["State"]["Name"]), private_ip=address,
                           launch_time=_utc(launched), queue=tags.get(QUEUE_TAG, ""),
                           compute_resource=tags.get(RESOURCE_TAG, ""))


def assignments_from_items(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The node table's items (typed form) as node -> instance id; items without an instance id
    (none are written so, but the table is not ours) are skipped."""
    found = {}
    for item in items:
        node, instance_id = item.get("Id", {}).get("S"), item.get("InstanceId", {}).get("S")
        if node and instance_id:
            found[str(node)] = str(instance_id)
    return found


def compute_instances(endpoint: str, cluster: str = CLUSTER_NAME) -> list[ComputeInstance]:
    """The cluster's compute instances in READ_STATES, found by ParallelCluster's tags."""
    ec2 = aws.local_client("ec2", endpoint, REGION)
    return [instance_from_ec2(info) for info in aws.cluster_compute_instances(ec2, cluster, READ_STATES)]


def node_assignments(endpoint: str, cluster: str = CLUSTER_NAME) -> dict[str, str]:
    """The node table of ``cluster``: node -> instance id (a scan: the twin's table is small)."""
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    return assignments_from_items(aws.scan_dynamodb_items(dynamodb, slurm_table(cluster), ("Id", "InstanceId")))
