"""The instance -> node host planner (hpctool.twin.instances): pure cases, then against a moto server
started here on 127.0.0.1 where ParallelCluster's own resume code (aws-parallelcluster-node 3.16.1
in .tools/pcnode, through support/pcnode_driver.py) launches instances and writes the node table,
with stand-ins for `sudo` and `scontrol` recording the node addresses resume gives Slurm."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hostlist
import pytest

from hpctool import aws
from hpctool.cluster.queues import load_cluster
from hpctool.errors import TwinError
from hpctool.twin.conf import TwinPaths
from hpctool.twin.ec2 import Ec2Server, Seeded, seed
from hpctool.twin.hosts import Network
from hpctool.twin.instances import (
    END_REASONS,
    ComputeInstance,
    HostBoot,
    HostEnd,
    assignments_from_items,
    compute_instances,
    instance_from_ec2,
    node_assignments,
    plan_hosts,
)
from hpctool.twin.layout import plan_layout
from hpctool.twin.pcnode_conf import REGION, HeadInstance, PcnodePaths, render_all, slurm_table
from support.pcnode import run_driver
from support.sshd_lab import free_port

T0 = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
DELAYS = {("compute", "c7i4xl"): 5.0, ("spot", "mixed16"): 2.0}


def instance(iid: str, state: str = "running", ip: str = "10.0.0.4", at: datetime = T0, queue: str = "compute",
             resource: str = "c7i4xl") -> ComputeInstance:
    return ComputeInstance(iid, state, ip, at, queue, resource)


# -- the pure planner --------------------------------------------------------------------------------
def test_an_assigned_running_instance_boots_its_node_after_the_resources_delay():
    plan = plan_hosts([instance("i-1"), instance("i-2", ip="10.0.0.5", queue="spot", resource="mixed16")],
                      {"compute-dy-c7i4xl-1": "i-1", "spot-dy-mixed16-1": "i-2"}, {}, DELAYS)
    assert plan.boot == (HostBoot("compute-dy-c7i4xl-1", "10.0.0.4", "i-1", T0 + timedelta(seconds=5)),
                         HostBoot("spot-dy-mixed16-1", "10.0.0.5", "i-2", T0 + timedelta(seconds=2)))
    assert plan.end == () and plan.waiting == () and plan.conflicts == ()
    assert plan.due(T0 + timedelta(seconds=3)) == plan.boot[1:]
    assert plan.due(T0 + timedelta(seconds=5)) == plan.boot


def test_a_resource_without_a_delay_gets_the_default_and_a_naive_launch_time_is_utc():
    naive = datetime(2026, 12, 7, 16, 0)
    plan = plan_hosts([instance("i-1", at=naive, queue="fpga", resource="f26xl")], {"fpga-dy-f26xl-1": "i-1"}, {},
                      DELAYS, default_delay=7)
    assert plan.boot[0].not_before == T0 + timedelta(seconds=7)


def test_a_pending_instance_boots_too_and_a_host_that_runs_is_left_alone():
    plan = plan_hosts([instance("i-1", "pending"), instance("i-2", ip="10.0.0.5")],
                      {"n1": "i-1", "n2": "i-2"}, {"n2": "i-2"}, DELAYS)
    assert [b.node for b in plan.boot] == ["n1"] and plan.end == ()


def test_instances_without_a_node_or_an_address_wait():
    """Resume writes the table after the launch (and all-or-nothing terminates what it cannot
    use); EC2 may list an instance before its address."""
    plan = plan_hosts([instance("i-1"), instance("i-2", ip=""), instance("i-3", "pending")],
                      {"n2": "i-2"}, {}, DELAYS)
    assert plan.boot == () and plan.waiting == ("i-1", "i-2", "i-3")


@pytest.mark.parametrize(("state", "reason"), [
    ("shutting-down", "terminated"), ("terminated", "terminated"), ("stopping", "stopped"), ("stopped", "stopped")])
def test_a_host_ends_with_its_instance(state, reason):
    plan = plan_hosts([instance("i-1", state)], {"n1": "i-1"}, {"n1": "i-1"}, DELAYS)
    assert plan.end == (HostEnd("n1", "i-1", reason),) and plan.boot == ()
    assert reason in END_REASONS


def test_a_host_whose_instance_is_no_longer_listed_is_gone():
    plan = plan_hosts([], {"n1": "i-1"}, {"n1": "i-1"}, DELAYS)
    assert plan.end == (HostEnd("n1", "i-1", "gone"),)


def test_a_replaced_instance_ends_the_old_host_and_boots_the_new_one():
    """The table now gives the node another instance (resume launched again for it); the old one,
    still running, has no node any more: clustermgtd's orphan, left alone."""
    plan = plan_hosts([instance("i-old"), instance("i-new", ip="10.0.0.9", at=T0 + timedelta(minutes=1))],
                      {"n1": "i-new"}, {"n1": "i-old"}, DELAYS)
    assert plan.end == (HostEnd("n1", "i-old", "replaced"),)
    assert plan.boot == (HostBoot("n1", "10.0.0.9", "i-new", T0 + timedelta(minutes=1, seconds=5)),)
    assert plan.waiting == ("i-old",)


def test_the_instances_fate_names_the_end_before_a_replacement():
    plan = plan_hosts([instance("i-old", "terminated"), instance("i-new", ip="10.0.0.9")],
                      {"n1": "i-new"}, {"n1": "i-old"}, DELAYS)
    assert plan.end == (HostEnd("n1", "i-old", "terminated"),) and [b.instance_id for b in plan.boot] == ["i-new"]


def test_a_stale_item_of_a_terminated_instance_boots_nothing():
    """The table's items are never deleted: a node suspended long ago still points at its dead
    instance."""
    plan = plan_hosts([instance("i-1", "terminated")], {"n1": "i-1"}, {}, DELAYS)
    assert plan == plan_hosts([], {}, {}, DELAYS)


def test_an_instance_the_table_gives_two_nodes_boots_neither():
    plan = plan_hosts([instance("i-1")], {"n1": "i-1", "n2": "i-1"}, {}, DELAYS)
    assert plan.boot == () and plan.conflicts == ("i-1",)


def test_a_host_booted_for_a_node_the_table_lost_keeps_running_while_its_instance_does():
    plan = plan_hosts([instance("i-1")], {}, {"n1": "i-1"}, DELAYS)
    assert plan.end == () and plan.boot == () and plan.waiting == ("i-1",)


def test_boots_and_ends_come_in_a_stable_order():
    instances = [instance(f"i-{n}", ip=f"10.0.0.{n}") for n in (9, 3, 5)]
    plan = plan_hosts(instances, {"c": "i-3", "a": "i-9", "b": "i-5"}, {"z": "i-0", "y": "i-1"}, DELAYS)
    assert [b.instance_id for b in plan.boot] == ["i-3", "i-5", "i-9"]
    assert [e.node for e in plan.end] == ["y", "z"]


def test_instance_dicts_become_planner_instances():
    info = {"InstanceId": "i-1", "State": {"Name": "running"}, "PrivateIpAddress": "10.0.0.4",
            "LaunchTime": datetime(2026, 12, 7, 16, 0),
            "NetworkInterfaces": [{"PrivateIpAddress": "10.0.0.8", "Attachment": {"DeviceIndex": 1}},
                                  {"PrivateIpAddress": "10.0.0.7", "Attachment": {"DeviceIndex": 0}}],
            "Tags": [{"Key": "parallelcluster:queue-name", "Value": "spot"},
                     {"Key": "parallelcluster:compute-resource-name", "Value": "mixed16"}]}
    assert instance_from_ec2(info) == ComputeInstance("i-1", "running", "10.0.0.7", T0, "spot", "mixed16")
    bare = {"InstanceId": "i-2", "State": {"Name": "pending"}, "LaunchTime": T0}
    assert instance_from_ec2(bare) == ComputeInstance("i-2", "pending", "", T0)
    with pytest.raises(TwinError, match="no launch time"):
        instance_from_ec2({"InstanceId": "i-3", "State": {"Name": "pending"}})


def test_table_items_become_assignments():
    items = [{"Id": {"S": "n1"}, "InstanceId": {"S": "i-1"}, "HeadNodePrivateIp": {"S": "10.0.0.10"}},
             {"Id": {"S": "n2"}}, {"InstanceId": {"S": "i-3"}}]
    assert assignments_from_items(items) == {"n1": "i-1"}


# -- against moto, with ParallelCluster's resume -----------------------------------------------------
NETWORK = Network(bridge="hpct-abcdef", subnet="10.210.7.0/24")
CLUSTER = load_cluster()
LAYOUT = plan_layout(CLUSTER.queues, "cluster-configs/default.yaml", base=16817, real_memory_mb=24000,
                     scaledown_idletime_min=CLUSTER.scaledown_idletime_min, time_scale=0.02)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ec2Server, Seeded, PcnodePaths, Path]]:
    folder = tmp_path_factory.mktemp("instances")
    server = Ec2Server(folder / "ec2", "127.0.0.1", free_port())
    server.start()
    try:
        seeded = seed(server.endpoint, LAYOUT, CLUSTER.queues, NETWORK)
        paths = PcnodePaths(TwinPaths(folder / "home"))
        head = HeadInstance(NETWORK.address(0), "head", seeded.head_instance_id)
        for path, text in render_all(LAYOUT, CLUSTER.queues, paths, head, seeded.subnet_id).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        yield server, seeded, paths, folder / "scontrol.log"
    finally:
        server.stop()


def stand_ins(folder: Path, record: Path) -> dict[str, str]:
    """`sudo` that runs its command and an `scontrol` that records its arguments: resume calls
    `sudo $SLURM_BINARIES_DIR/scontrol update nodename=... nodeaddr=... instanceid=...`."""
    sudo_dir, slurm_dir = folder / "path", folder / "slurm" / "bin"
    for directory, name, body in ((sudo_dir, "sudo", 'exec "$@"'), (slurm_dir, "scontrol", f'echo "$*" >>{record}')):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"#!/bin/sh\n{body}\n")
        (directory / name).chmod(0o755)
    return {"PATH": f"{sudo_dir}:/usr/bin:/bin", "SLURM_BINARIES_DIR": str(slurm_dir)}


def resume(server: Ec2Server, paths: PcnodePaths, record: Path, *jobs: list[str]) -> dict:
    """ParallelCluster's resume for ``jobs`` (each a list of nodes), node addresses assigned."""
    every = [node for nodes in jobs for node in nodes]
    resume_file = paths.twin.run / f"resume-{secrets.token_hex(4)}.json"
    resume_file.parent.mkdir(parents=True, exist_ok=True)
    resume_file.write_text(json.dumps({"all_nodes_resume": hostlist.collect_hostlist(every), "jobs": [
        {"extra": None, "features": None, "job_id": 2000 + index, "nodes_alloc": hostlist.collect_hostlist(nodes),
         "nodes_resume": hostlist.collect_hostlist(nodes), "oversubscribe": "OK", "partition": nodes[0].split("-")[0],
         "reservation": None} for index, nodes in enumerate(jobs)]}))
    answer = run_driver("launch", str(paths.conf("slurm_resume")), "--assign", "--resume-file", str(resume_file),
                        *every, endpoint=server.endpoint, env=stand_ins(paths.twin.home / "stand-ins", record))
    assert answer["failed"] == {}, answer["log"][-3000:]
    return answer


def addresses_given_to_slurm(record: Path) -> dict[str, tuple[str, str]]:
    """node -> (nodeaddr, instanceid) from the recorded `scontrol update` calls, the last one winning."""
    found: dict[str, tuple[str, str]] = {}
    for line in record.read_text().splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        nodes = hostlist.expand_hostlist(fields["nodename"])
        found.update(zip(nodes, zip(fields["nodeaddr"].split(","), fields["instanceid"].split(","), strict=True),
                         strict=True))
    return found


def test_resumes_instances_become_node_hosts_and_a_terminated_one_ends_its_host(cloud):
    server, seeded, paths, record = cloud
    resume(server, paths, record, ["compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2"], ["spot-dy-mixed16-1"])
    instances = compute_instances(server.endpoint)
    assignments = node_assignments(server.endpoint)
    assert seeded.head_instance_id not in {i.id for i in instances}  # ParallelCluster's tag filters
    assert set(assignments) == {"compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2", "spot-dy-mixed16-1"}
    items = aws.scan_dynamodb_items(aws.local_client("dynamodb", server.endpoint, REGION), slurm_table())
    assert all(set(item) == {"Id", "InstanceId", "HeadNodePrivateIp", "HeadNodeHostname"} for item in items)
    assert {item["HeadNodePrivateIp"]["S"] for item in items} == {NETWORK.address(0)}

    plan = plan_hosts(instances, assignments, {}, DELAYS)
    by_node = {boot.node: boot for boot in plan.boot}
    assert set(by_node) == set(assignments) and plan.end == () and plan.waiting == ()
    # Each host at the address resume gave Slurm for that node, in the twin's subnet, never the head's.
    assert {node: (b.address, b.instance_id) for node, b in by_node.items()} == addresses_given_to_slurm(record)
    addresses = {b.address for b in plan.boot}
    assert len(addresses) == 3 and NETWORK.address(0) not in addresses
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(NETWORK.subnet) for a in addresses)
    launched = {i.id: i.launch_time for i in instances}
    assert by_node["compute-dy-c7i4xl-1"].not_before == launched[by_node["compute-dy-c7i4xl-1"].instance_id] + \
        timedelta(seconds=5)
    assert by_node["spot-dy-mixed16-1"].not_before == launched[by_node["spot-dy-mixed16-1"].instance_id] + \
        timedelta(seconds=2)

    running = {boot.node: boot.instance_id for boot in plan.boot}
    assert plan_hosts(compute_instances(server.endpoint), node_assignments(server.endpoint), running, DELAYS) == \
        plan_hosts([], {}, {}, DELAYS)  # all booted: nothing to do

    gone = running["compute-dy-c7i4xl-2"]  # clustermgtd's way of ending an instance
    run_driver("delete", str(paths.conf("slurm_resume")), gone, endpoint=server.endpoint)
    plan = plan_hosts(compute_instances(server.endpoint), node_assignments(server.endpoint), running, DELAYS)
    assert plan.end == (HostEnd("compute-dy-c7i4xl-2", gone, "terminated"),) and plan.boot == ()

    # Resumed again, the node gets a new instance (the table's item replaced): its host boots there.
    del running["compute-dy-c7i4xl-2"]
    resume(server, paths, record, ["compute-dy-c7i4xl-2"])
    plan = plan_hosts(compute_instances(server.endpoint), node_assignments(server.endpoint), running, DELAYS)
    assert [(b.node, b.address) for b in plan.boot] == [
        ("compute-dy-c7i4xl-2", addresses_given_to_slurm(record)["compute-dy-c7i4xl-2"][0])]
    assert plan.boot[0].instance_id != gone and plan.end == ()


def test_a_node_resumed_while_its_old_instance_runs_is_replaced(cloud):
    """A second launch for a node whose instance still runs: the table gives the node the new
    instance; the old host ends as replaced and the old instance waits (clustermgtd's orphan)."""
    server, _, paths, record = cloud
    resume(server, paths, record, ["storage-dy-i4i4xl-1"])
    old = node_assignments(server.endpoint)["storage-dy-i4i4xl-1"]
    resume(server, paths, record, ["storage-dy-i4i4xl-1"])
    new = node_assignments(server.endpoint)["storage-dy-i4i4xl-1"]
    assert new != old
    running = {"storage-dy-i4i4xl-1": old}
    plan = plan_hosts([i for i in compute_instances(server.endpoint) if i.id in (old, new)],
                      node_assignments(server.endpoint), running, DELAYS)
    assert plan.end == (HostEnd("storage-dy-i4i4xl-1", old, "replaced"),)
    assert [(b.node, b.instance_id) for b in plan.boot] == [("storage-dy-i4i4xl-1", new)] and plan.waiting == (old,)

