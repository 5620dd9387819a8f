"""The configuration of ParallelCluster's node daemons for the twin (hpctool.twin.pcnode_conf):
golden files, timings scaled as the twin's slurm.conf, the partition map against the layout, and
the files read by the daemons' own config readers (aws-parallelcluster-node 3.16.1 in .tools/pcnode)."""

from __future__ import annotations

import json
from pathlib import Path

import hostlist
import pytest

from hpctool.cluster.queues import ComputeResource, Queue, load_cluster
from hpctool.twin.conf import HeadNode, TwinPaths, power_timings, render_slurm_conf
from hpctool.twin.hosts import Network
from hpctool.twin.layout import plan_layout
from hpctool.twin.pcnode_conf import (
    DAEMONS,
    HeadInstance,
    PcnodePaths,
    launch_templates,
    pcnode_timings,
    render_all,
    render_clustermgtd_conf,
    render_create_fleet_overrides,
    render_fleet_config,
    render_fleet_status_manager_conf,
    render_logging_conf,
    render_partition_mapping,
    render_resume_conf,
    render_run_instances_overrides,
    render_suspend_conf,
)
from support.golden import assert_golden
from support.pcnode import run_driver

GOLDEN = Path(__file__).parent / "golden" / "pcnode"
PATHS = PcnodePaths(TwinPaths(Path("/root/.local/share/hpctool")))
NETWORK = Network(bridge="hpct-abcdef", subnet="10.210.7.0/24")
HEAD = HeadInstance(address=NETWORK.address(0), hostname="head", instance_id="i-0123456789abcdef0")
SUBNET = "subnet-0123456789abcdef0"
CLUSTER = load_cluster()


def layout_at(time_scale: float = 0.1, **options):
    return plan_layout(CLUSTER.queues, "cluster-configs/default.yaml", base=16817, real_memory_mb=24000,
                       scaledown_idletime_min=CLUSTER.scaledown_idletime_min, time_scale=time_scale, **options)


def conf_values(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)


@pytest.mark.parametrize(("name", "render"), [
    ("parallelcluster_slurm_resume.conf", lambda layout: render_resume_conf(layout, PATHS, HEAD)),
    ("parallelcluster_slurm_suspend.conf", lambda layout: render_suspend_conf(layout, PATHS)),
    ("parallelcluster_clustermgtd.conf", lambda layout: render_clustermgtd_conf(layout, PATHS, HEAD)),
    ("parallelcluster_slurm_fleet_status_manager.conf", lambda layout: render_fleet_status_manager_conf(PATHS)),
    ("parallelcluster_clustermgtd_logging.conf", lambda layout: render_logging_conf("clustermgtd", PATHS)),
    ("parallelcluster_partition_nodelist_mapping.json", render_partition_mapping),
    ("fleet-config.json", lambda layout: render_fleet_config(layout, CLUSTER.queues, SUBNET)),
    ("run_instances_overrides.json", lambda layout: render_run_instances_overrides(layout, CLUSTER.queues, SUBNET)),
    ("create_fleet_overrides.json", lambda layout: render_create_fleet_overrides()),
    ("launch-templates.json",
     lambda layout: json.dumps(launch_templates(layout, CLUSTER.queues, SUBNET, "ami-0123456789abcdef0"), indent=2)),
])
def test_daemon_files_of_the_default_twin_match_golden(name, render):
    assert_golden(render(layout_at()), GOLDEN / name)


def test_at_scale_1_the_timings_are_parallelclusters_own():
    """The cookbook's and the daemons' defaults: loop 60 s, bootstrap 1800 s, capacity 600 s."""
    values = conf_values(render_clustermgtd_conf(layout_at(1), PATHS, HEAD))
    assert {k: values[k] for k in ("loop_time", "node_replacement_timeout", "insufficient_capacity_timeout",
                                   "orphaned_instance_timeout", "health_check_timeout",
                                   "compute_console_wait_time")} == {
        "loop_time": "60", "node_replacement_timeout": "1800", "insufficient_capacity_timeout": "600",
        "orphaned_instance_timeout": "300", "health_check_timeout": "180", "compute_console_wait_time": "300"}
    assert conf_values(render_resume_conf(layout_at(1), PATHS, HEAD))["clustermgtd_timeout"] == "300"


@pytest.mark.parametrize("scale", [0.001, 0.02, 0.1, 0.5])
def test_scaled_timings_are_whole_seconds_in_step_with_slurm_conf(scale):
    layout = layout_at(scale)
    timings = pcnode_timings(layout)
    values = conf_values(render_clustermgtd_conf(layout, PATHS, HEAD))
    for key in ("loop_time", "node_replacement_timeout", "insufficient_capacity_timeout", "orphaned_instance_timeout"):
        assert values[key].isdigit() and int(values[key]) >= 1, (key, values[key])
    assert timings.loop_time == max(1, round(60 * scale))
    # clustermgtd gives up on a boot when Slurm does: slurm.conf's ResumeTimeout.
    head = HeadNode(hostname="head", address=NETWORK.address(0), plugin_dir="/p", munge_socket="/m")
    slurm_conf = render_slurm_conf(layout, PATHS.twin, head, {n.name: NETWORK.address(n.index) for n in layout.nodes})
    assert f"ResumeTimeout={values['node_replacement_timeout']}" in slurm_conf.splitlines()
    assert int(values["insufficient_capacity_timeout"]) == power_timings(layout).capacity_timeout
    # resume and suspend must not call clustermgtd dead between two of its heartbeats (loop + 5 s).
    assert timings.clustermgtd_timeout >= 2 * (timings.loop_time + 5)


def test_the_partition_map_names_exactly_the_layouts_nodes():
    for options in ({}, {"static_per_queue": 2, "max_dynamic": 1}):
        layout = layout_at(**options)
        mapping = json.loads(render_partition_mapping(layout))
        assert list(mapping) == [q["name"] for q in layout.queues]
        for queue in layout.queues:
            assert sorted(hostlist.expand_hostlist(mapping[queue["name"]])) == sorted(queue["nodes"])


def test_fleet_config_launches_as_parallelcluster_chooses():
    """Instances -> CreateFleet with the subnet; one InstanceType -> RunInstances, subnet by override."""
    fleet = json.loads(render_fleet_config(layout_at(), CLUSTER.queues, SUBNET))
    assert fleet["compute"]["c7i4xl"] == {"CapacityType": "on-demand", "Api": "run-instances",
                                          "Instances": [{"InstanceType": "c7i.4xlarge"}]}
    mixed = fleet["spot"]["mixed16"]
    assert (mixed["Api"], mixed["CapacityType"], mixed["Networking"]) == ("create-fleet", "spot", {"SubnetIds": [SUBNET]})
    assert [i["InstanceType"] for i in mixed["Instances"]] == ["c7i.4xlarge", "c6i.4xlarge", "c6a.4xlarge"]
    assert mixed["AllocationStrategy"] == "price-capacity-optimized"
    overrides = json.loads(render_run_instances_overrides(layout_at(), CLUSTER.queues, SUBNET))
    run_instances = {(q, r) for q, rs in fleet.items() for r, e in rs.items() if e["Api"] == "run-instances"}
    assert {(q, r) for q, rs in overrides.items() for r in rs} == run_instances
    assert all(o == {"SubnetId": SUBNET} for rs in overrides.values() for o in rs.values())


def test_a_spot_queue_with_one_instance_type_launches_spot_through_the_overrides():
    queues = [Queue("sp", "SPOT", (ComputeResource("one", ("c7i.large",), 0, 2),))]
    layout = plan_layout(queues, "x.yaml", base=16817, real_memory_mb=24000)
    overrides = json.loads(render_run_instances_overrides(layout, queues, SUBNET))
    assert overrides["sp"]["one"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert json.loads(render_fleet_config(layout, queues, SUBNET))["sp"]["one"]["Api"] == "run-instances"


def test_a_queue_with_instances_and_no_allocation_strategy_gets_parallelclusters_default():
    """lowest-price, as pcluster's SlurmQueue implies it (moto's spot fleets need one too)."""
    queues = [Queue("cheap", "SPOT", (ComputeResource("flex", ("c7i.large", "c6i.large"), 0, 2, flexible=True),)),
              Queue("block", "CAPACITY_BLOCK", (ComputeResource("cb", ("p5.48xlarge",), 0, 1, flexible=True),))]
    layout = plan_layout(queues, "x.yaml", base=16817, real_memory_mb=24000)
    fleet = json.loads(render_fleet_config(layout, queues, SUBNET))
    assert fleet["cheap"]["flex"]["AllocationStrategy"] == "lowest-price"
    assert fleet["cheap"]["flex"]["CapacityType"] == "spot"
    assert "AllocationStrategy" not in fleet["block"]["cb"] and fleet["block"]["cb"]["CapacityType"] == "capacity-block"


def test_launch_templates_carry_parallelclusters_tags_and_spot_options():
    templates = {t["name"]: t["data"] for t in launch_templates(layout_at(), CLUSTER.queues, SUBNET, "ami-1")}
    assert set(templates) == {f"twin-{q.name}-{r.name}" for q in CLUSTER.queues for r in q.compute_resources}
    spot = templates["twin-spot-mixed16"]
    tags = {t["Key"]: t["Value"] for t in spot["TagSpecifications"][0]["Tags"]}
    assert tags["parallelcluster:cluster-name"] == "twin" and tags["parallelcluster:node-type"] == "Compute"
    assert (tags["parallelcluster:queue-name"], tags["parallelcluster:compute-resource-name"]) == ("spot", "mixed16")
    assert tags["hpctool-queue"] == "spot"  # the queue's own Tags, as ParallelCluster adds them
    assert spot["InstanceMarketOptions"]["MarketType"] == "spot" and "InstanceType" not in spot
    compute = templates["twin-compute-c7i4xl"]
    assert compute["InstanceType"] == "c7i.4xlarge" and "InstanceMarketOptions" not in compute


def test_every_file_goes_under_the_twins_home():
    files = render_all(layout_at(), CLUSTER.queues, PATHS, HEAD, SUBNET)
    assert len(files) == 8 + len(DAEMONS)
    assert all(path.is_relative_to(PATHS.twin.home) for path in files)
    for text in files.values():
        for word in text.replace('"', " ").replace("'", " ").split():
            assert not word.startswith(("/var/log", "/opt/slurm", "/etc/parallelcluster")), word


def test_the_daemons_own_config_readers_take_the_rendered_files(tmp_path):
    """ParallelCluster's SlurmResumeConfig, SlurmSuspendConfig, ClustermgtdConfig and
    SlurmFleetManagerConfig read what we render: key names, types (getint), the JSON files."""
    paths = PcnodePaths(TwinPaths(tmp_path))
    layout = layout_at(0.02)
    for path, text in render_all(layout, CLUSTER.queues, paths, HEAD, SUBNET).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths.log_dir.mkdir(parents=True)  # as /var/log/parallelcluster: the daemons never make it
    read = run_driver("read-configs", str(paths.plugin_dir))
    timings = pcnode_timings(layout)
    resume, mgtd = read["slurm_resume"], read["clustermgtd"]
    assert (resume["cluster_name"], resume["dynamodb_table"], resume["head_node_private_ip"]) == (
        "twin", "parallelcluster-slurm-twin", HEAD.address)
    assert resume["job_level_scaling"] is True and resume["scaling_strategy"] == "all-or-nothing"  # PC's defaults
    assert resume["fleet_config"] == json.loads(render_fleet_config(layout, CLUSTER.queues, SUBNET))
    assert resume["run_instances_overrides"]["compute"]["c7i4xl"] == {"SubnetId": SUBNET}
    assert resume["clustermgtd_heartbeat_file_path"] == str(paths.heartbeat)
    assert read["slurm_suspend"]["clustermgtd_timeout"] == timings.clustermgtd_timeout
    assert (mgtd["loop_time"], mgtd["node_replacement_timeout"], mgtd["insufficient_capacity_timeout"]) == (
        timings.loop_time, timings.node_replacement_timeout, timings.insufficient_capacity_timeout)
    assert mgtd["disable_nodes_on_insufficient_capacity"] is True
    assert mgtd["logging_config"] == str(paths.logging_conf("clustermgtd"))
    assert read["slurm_fleet_status_manager"]["cluster_name"] == "twin"
    # Each logging config sends its daemon's log, and resume's events, into the twin's log folder.
    for daemon in DAEMONS:
        assert f"logging of {daemon} configured" in paths.log(daemon).read_text()
    assert "an event of slurm_resume" in (paths.log_dir / "slurm_resume.events").read_text()
    assert "an event of" not in paths.log("slurm_resume").read_text()  # events stay out of the main log
