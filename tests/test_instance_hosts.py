"""The instance watcher's side (hpctool.twin.instance_hosts) without a twin: the record of running
hosts, and a plan applied to a recording stand-in of the twin (ends before boots, a boot at the
instance's address with its id, a static node's finalize resume)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hpctool.cluster.queues import load_cluster
from hpctool.errors import TwinError
from hpctool.twin.instance_hosts import apply, read_hosts, record_hosts
from hpctool.twin.instances import HostBoot, HostEnd, HostPlan
from hpctool.twin.layout import plan_layout

CLUSTER = load_cluster()
LAYOUT = plan_layout(CLUSTER.queues, "cluster-configs/default.yaml", base=16817, real_memory_mb=24000,
                     static_per_queue=1, max_dynamic=1, time_scale=0.02)
NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


class RecordingSlurm:
    def __init__(self, refuse: bool) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.refuse = refuse

    def update_node(self, node: str, state: str, reason: str | None = None) -> None:
        self.calls.append((node, state, reason))
        if self.refuse:
            raise TwinError("Invalid node state specified", "")


class RecordingTwin:
    def __init__(self, refuse_resume: bool = False) -> None:
        self.calls: list[tuple] = []
        self.slurm = RecordingSlurm(refuse_resume)

    def stop_node(self, node: str) -> bool:
        self.calls.append(("stop", node))
        return True

    def start_node(self, node: str, boot: bool = False, address: str | None = None,
                   instance_id: str | None = None) -> bool:
        self.calls.append(("start", node, boot, address, instance_id))
        return True

    def node_state(self, node: str) -> str:
        return "down"  # answering (no "*"): the finalize resumes at once


def test_the_record_adds_hosts_and_an_unreadable_one_is_empty(tmp_path):
    path = tmp_path / "instance-hosts.json"
    assert read_hosts(path) == {}
    record_hosts(path, {"compute-st-c7i4xl-1": "i-1"})
    record_hosts(path, {"spot-st-mixed16-1": "i-2"})
    assert read_hosts(path) == {"compute-st-c7i4xl-1": "i-1", "spot-st-mixed16-1": "i-2"}
    path.write_bytes(b"\x00\xff not json")
    assert read_hosts(path) == {}


def test_ends_come_before_boots_and_only_due_boots_run():
    static = LAYOUT.static_nodes()[0].name
    dynamic = LAYOUT.dynamic_nodes()[0].name
    plan = HostPlan(boot=(HostBoot(static, "10.0.0.5", "i-new", NOW),
                          HostBoot(dynamic, "10.0.0.6", "i-later", NOW + timedelta(seconds=5))),
                    end=(HostEnd(static, "i-old", "terminated"),))
    twin = RecordingTwin()
    hosts = {static: "i-old"}
    done = apply(twin, LAYOUT, plan, hosts, NOW)
    assert twin.calls == [("stop", static), ("start", static, True, "10.0.0.5", "i-new")]
    assert hosts == {static: "i-new"}
    assert twin.slurm.calls == [(static, "resume", "Node start up")]  # static: the finalize step
    assert done[0] == f"{static}: host ended, instance i-old terminated"
    assert done[-1] == f"{static}: resumed after start up"


def test_a_dynamic_node_boots_without_a_resume_and_an_unknown_node_gets_no_host():
    dynamic = LAYOUT.dynamic_nodes()[0].name
    plan = HostPlan(boot=(HostBoot(dynamic, "10.0.0.6", "i-6", NOW), HostBoot("nosuch-dy-x-1", "10.0.0.7", "i-7", NOW)))
    twin = RecordingTwin()
    hosts: dict[str, str] = {}
    done = apply(twin, LAYOUT, plan, hosts, NOW)
    assert twin.calls == [("start", dynamic, True, "10.0.0.6", "i-6")] and twin.slurm.calls == []
    assert hosts == {dynamic: "i-6"}
    assert done[-1] == "nosuch-dy-x-1: instance i-7 is for no node of the twin: no host"


def test_a_refused_resume_is_said_and_the_host_stays():
    static = LAYOUT.static_nodes()[0].name
    twin = RecordingTwin(refuse_resume=True)
    hosts: dict[str, str] = {}
    done = apply(twin, LAYOUT, HostPlan(boot=(HostBoot(static, "10.0.0.5", "i-5", NOW),)), hosts, NOW)
    assert hosts == {static: "i-5"}
    assert done[-1].startswith(f"{static}: resume after start up refused (Invalid node state")


def test_boot_faults_give_delays_per_resource_and_hanging_resources_boot_nothing():
    from hpctool.twin import capacity
    from hpctool.twin.instance_hosts import boot_faults, without_hangs

    faults = capacity.CapacityFaults()
    faults.put("spot", "mixed16", capacity.ResourceFaults(boot_delay_s=7.0))
    faults.put("compute", "c7i4xl", capacity.ResourceFaults(boot_hang=True))
    delays, hangs = boot_faults(faults)
    assert delays[("spot", "mixed16")] == 7.0 and delays[("compute", "c7i4xl")] == capacity.DEFAULT_BOOT_DELAY_S
    assert hangs == {("compute", "c7i4xl")}
    hanging = next(n.name for n in LAYOUT.dynamic_nodes() if n.queue == "compute")
    booting = next(n.name for n in LAYOUT.dynamic_nodes() if n.queue == "spot")
    plan = HostPlan(boot=(HostBoot(hanging, "10.0.0.5", "i-5", NOW), HostBoot(booting, "10.0.0.6", "i-6", NOW)))
    assert [b.node for b in without_hangs(plan, LAYOUT, hangs).boot] == [booting]
