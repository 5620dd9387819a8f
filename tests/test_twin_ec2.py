"""The twin's EC2 and DynamoDB (hpctool.twin.ec2): moto in server mode started here on 127.0.0.1,
seeded as ParallelCluster's stacks leave an account, and ParallelCluster's own node daemon code
(aws-parallelcluster-node 3.16.1 in .tools/pcnode, a process of its own) launching instances through
it, with and without capacity faults injected by the fault front. No Slurm: node addresses are not
pushed to scontrol (see support/pcnode_driver.py)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hostlist
import pytest

from hpctool import aws
from hpctool.cluster.queues import ComputeResource, Queue
from hpctool.errors import AwsError, SetupError, TwinError
from hpctool.twin import daemons
from hpctool.twin.conf import TwinPaths
from hpctool.twin.ec2 import (
    CAPACITY_CODES,
    Ec2Server,
    Fault,
    Seeded,
    clear_faults,
    mark_fault,
    read_faults,
    seed,
)
from hpctool.twin.ec2_health import EVENT_CODES, clear_health, mark_unhealthy, request_filters
from hpctool.twin.fleet_status import (
    SCRIPTS,
    fleet_status,
    iso_time,
    render_fleet_status_script,
    write,
)
from hpctool.twin.layout import TwinLayout, plan_layout
from hpctool.twin.pcnode_conf import (
    REGION,
    HeadInstance,
    PcnodePaths,
    render_all,
    render_resume_conf,
)
from support.pcnode import CLUSTER, LAYOUT, NETWORK, PCNODE_PYTHON, aws_env, run_driver
from support.sshd_lab import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ec2Server]:
    instance = Ec2Server(tmp_path_factory.mktemp("ec2"), "127.0.0.1", free_port())
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def seeded(server: Ec2Server) -> Seeded:
    return seed(server.endpoint, LAYOUT, CLUSTER.queues, NETWORK)


def write_files(home: Path, layout: TwinLayout, queues: list[Queue], seeded: Seeded) -> PcnodePaths:
    """The daemons' files as `up` would write them, for the seeded subnet and head instance."""
    paths = PcnodePaths(TwinPaths(home))
    head = HeadInstance(NETWORK.address(0), "head", seeded.head_instance_id)
    for path, text in render_all(layout, queues, paths, head, seeded.subnet_id).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    return paths


@contextmanager
def own_twin(folder: Path, layout: TwinLayout, queues: list[Queue]) -> Iterator[tuple[Ec2Server, Seeded, PcnodePaths]]:
    """A moto of its own, seeded for ``layout``: for tests whose instances must not meet the others'."""
    instance = Ec2Server(folder / "ec2", "127.0.0.1", free_port())
    instance.start()
    try:
        seeded = seed(instance.endpoint, layout, queues, NETWORK)
        yield instance, seeded, write_files(folder / "home", layout, queues, seeded)
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def twin_files(server: Ec2Server, seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> PcnodePaths:
    return write_files(tmp_path_factory.mktemp("twin-home"), LAYOUT, CLUSTER.queues, seeded)


@pytest.fixture
def no_faults(server: Ec2Server) -> Iterator[Path]:
    clear_faults(server.faults_file)
    yield server.faults_file
    clear_faults(server.faults_file)


def ec2(server: Ec2Server):
    return aws.local_client("ec2", server.endpoint, REGION)


def launch(server: Ec2Server, paths: PcnodePaths, *jobs: str | list[str], conf: Path | None = None) -> dict:
    """Resume's launch for ``jobs`` (a node name: a one-node job; a list: one job on those nodes),
    with the resume file slurmctld would write for them (Slurm 24.11's fields)."""
    nodes_of = [[job] if isinstance(job, str) else job for job in jobs]
    every = [node for nodes in nodes_of for node in nodes]
    resume = {"all_nodes_resume": hostlist.collect_hostlist(every), "jobs": [
        {"extra": None, "features": None, "job_id": 1000 + index, "nodes_alloc": hostlist.collect_hostlist(nodes),
         "nodes_resume": hostlist.collect_hostlist(nodes), "oversubscribe": "NO" if len(nodes) > 1 else "OK",
         "partition": nodes[0].split("-")[0], "reservation": None} for index, nodes in enumerate(nodes_of)]}
    resume_file = paths.twin.run / f"resume-{secrets.token_hex(4)}.json"
    resume_file.parent.mkdir(parents=True, exist_ok=True)
    resume_file.write_text(json.dumps(resume))
    return run_driver("launch", str(conf or paths.conf("slurm_resume")), "--resume-file", str(resume_file), *every,
                      endpoint=server.endpoint)


def resume_conf(paths: PcnodePaths, seeded: Seeded, name: str, **options: object) -> Path:
    """A resume conf with other scaling options (the config's ScalingStrategy, job-level scaling)."""
    conf = paths.plugin_dir / f"{name}.conf"
    head = HeadInstance(NETWORK.address(0), "head", seeded.head_instance_id)
    conf.write_text(render_resume_conf(LAYOUT, paths, head, **options))  # type: ignore[arg-type]
    return conf


def tags_of(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def instances_of(server: Ec2Server, queue: str, resource: str) -> list[dict]:
    return aws.describe_instances(ec2(server), [
        {"Name": "tag:parallelcluster:queue-name", "Values": [queue]},
        {"Name": "tag:parallelcluster:compute-resource-name", "Values": [resource]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])


# -- the faults file -------------------------------------------------------------------------------
def test_faults_are_marked_expire_and_clear(tmp_path):
    faults = tmp_path / "faults.json"
    assert read_faults(faults) == {}  # no file: no fault
    mark_fault(faults, "twin-compute-c7i4xl")
    mark_fault(faults, "twin-spot-mixed16", "SpotMaxPriceTooLow", seconds=30)
    mark_fault(faults, "twin-fpga-f26xl", capacity=2)
    assert read_faults(faults) == {"twin-compute-c7i4xl": Fault("InsufficientInstanceCapacity"),
                                   "twin-spot-mixed16": Fault("SpotMaxPriceTooLow"),
                                   "twin-fpga-f26xl": Fault("InsufficientInstanceCapacity", capacity=2)}
    until = json.loads(faults.read_text())["twin-spot-mixed16"]["until"]
    assert set(read_faults(faults, now=until + 1)) == {"twin-compute-c7i4xl", "twin-fpga-f26xl"}
    clear_faults(faults, "twin-fpga-f26xl")
    clear_faults(faults, "twin-compute-c7i4xl")
    assert set(read_faults(faults)) == {"twin-spot-mixed16"}
    clear_faults(faults)
    assert read_faults(faults) == {} and not list(tmp_path.glob(".faults.json.tmp*"))
    with pytest.raises(SetupError, match="not a capacity error"):
        mark_fault(faults, "twin-compute-c7i4xl", "AccessDenied")
    with pytest.raises(SetupError, match="below 0"):
        mark_fault(faults, "twin-compute-c7i4xl", capacity=-1)
    faults.write_text("{half a file")
    assert read_faults(faults) == {}


# -- the server ------------------------------------------------------------------------------------
def test_the_server_runs_detached_with_its_pid_file_and_refuses_a_taken_port(server):
    pid = daemons.read_pid(server.pid_file)
    assert server.running() and daemons.runs_program(pid, "hpctool.twin.ec2")
    server.start()  # running: nothing new
    assert daemons.read_pid(server.pid_file) == pid
    other = Ec2Server(server.folder / "other", server.host, server.port)
    with pytest.raises(SetupError, match=f"port {server.port}"):
        other.start()
    assert not other.running() and not other.stop()


def test_a_stopped_server_is_gone_and_its_log_kept(tmp_path):
    instance = Ec2Server(tmp_path, "127.0.0.1", free_port())
    instance.start()
    pid = daemons.read_pid(instance.pid_file)
    assert aws.describe_instances(ec2(instance), []) == []  # a fresh moto answers
    assert instance.stop()
    assert not daemons.pid_alive(pid) and not instance.pid_file.exists() and not instance.running()
    assert "POST / HTTP/1.1" in instance.log_file.read_text()


def test_a_server_that_dies_at_start_says_so_and_leaves_no_pid_file(tmp_path):
    instance = Ec2Server(tmp_path, "127.0.0.1", free_port())
    with pytest.raises(TwinError, match="exited during start-up"):
        instance.start(python="/bin/false")
    assert not instance.pid_file.exists() and not instance.running()


# -- seeding -----------------------------------------------------------------------------------------
def test_seeding_leaves_what_parallelclusters_stacks_leave(server, seeded):
    client = ec2(server)
    subnet = client.describe_subnets(SubnetIds=[seeded.subnet_id])["Subnets"][0]
    assert (subnet["CidrBlock"], subnet["VpcId"]) == (NETWORK.subnet, seeded.vpc_id)
    assert client.describe_vpcs(VpcIds=[seeded.vpc_id])["Vpcs"][0]["CidrBlock"] == "10.210.0.0/16"
    head = aws.describe_instances(client, [{"Name": "tag:parallelcluster:node-type", "Values": ["HeadNode"]}])
    assert [(i["InstanceId"], i["PrivateIpAddress"]) for i in head] == [(seeded.head_instance_id, NETWORK.address(0))]
    expected = {f"twin-{q.name}-{r.name}" for q in CLUSTER.queues for r in q.compute_resources}
    assert set(seeded.launch_templates) == expected
    data = client.describe_launch_template_versions(LaunchTemplateName="twin-spot-mixed16")[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceMarketOptions"]["MarketType"] == "spot"
    tags = {t["Key"]: t["Value"] for spec in data["TagSpecifications"] if spec["ResourceType"] == "instance"
            for t in spec["Tags"]}
    assert tags["parallelcluster:compute-resource-name"] == "mixed16" and tags["parallelcluster:node-type"] == "Compute"
    single = client.describe_launch_template_versions(LaunchTemplateName="twin-compute-c7i4xl")[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert single["InstanceType"] == "c7i.4xlarge" and "InstanceMarketOptions" not in single

    dynamodb = aws.local_client("dynamodb", server.endpoint, REGION)
    table = dynamodb.describe_table(TableName="parallelcluster-slurm-twin")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "Id", "KeyType": "HASH"}]
    assert [(i["IndexName"], i["KeySchema"][0]["AttributeName"]) for i in table["GlobalSecondaryIndexes"]] == [
        ("InstanceId", "InstanceId")]
    assert fleet_status(server.endpoint) == "RUNNING"
    assert seed(server.endpoint, LAYOUT, CLUSTER.queues, NETWORK) == seeded  # again: the same resources


# -- ParallelCluster's own launches ------------------------------------------------------------------
def test_resume_launches_instances_in_the_twins_subnet_with_parallelclusters_tags(server, seeded, twin_files,
                                                                                   no_faults):
    before = {i["InstanceId"] for i in aws.describe_instances(ec2(server), [])}
    # A two-node job all-or-nothing (ParallelCluster's default) and a one-node spot job.
    answer = launch(server, twin_files, ["compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2"], "spot-dy-mixed16-1")
    assert answer["failed"] == {}
    assert "Launching instances with run_instances API" in answer["log"]
    assert "Launching instances with create_fleet API" in answer["log"]
    run = [i for i in instances_of(server, "compute", "c7i4xl") if i["InstanceId"] not in before]
    fleet = [i for i in instances_of(server, "spot", "mixed16") if i["InstanceId"] not in before]
    assert (len(run), len(fleet)) == (2, 1)  # both nodes of the RunInstances batch (moto alone: MinCount)
    for instance in run + fleet:
        assert instance["SubnetId"] == seeded.subnet_id
        assert ipaddress.ip_address(instance["PrivateIpAddress"]) in ipaddress.ip_network(NETWORK.subnet)
        assert instance["PrivateIpAddress"] != NETWORK.address(0)  # the head node keeps its own
        tags = tags_of(instance)
        assert tags["parallelcluster:cluster-name"] == "twin" and tags["parallelcluster:node-type"] == "Compute"
    assert {i["InstanceType"] for i in run} == {"c7i.4xlarge"}
    assert fleet[0]["InstanceType"] in {"c7i.4xlarge", "c6i.4xlarge", "c6a.4xlarge"}
    assert fleet[0].get("InstanceLifecycle") == "spot"
    # clustermgtd's view of the cluster: every compute instance, with the subnet's addresses.
    found = {i["id"]: i["ip"] for i in answer["instances"]}
    assert {i["InstanceId"]: i["PrivateIpAddress"] for i in run + fleet}.items() <= found.items()
    assert seeded.head_instance_id not in found


def test_an_injected_run_instances_fault_is_parallelclusters_insufficient_capacity(server, seeded, twin_files,
                                                                                   no_faults):
    mark_fault(no_faults, "twin-compute-c7i4xl")
    before = len(instances_of(server, "compute", "c7i4xl"))
    answer = launch(server, twin_files, "compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2", "spot-dy-mixed16m-1")
    # The code resume puts in the node's reason: (Code:InsufficientInstanceCapacity)Failure when resuming nodes
    assert answer["failed"] == {"InsufficientInstanceCapacity": ["compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2"]}
    assert "Failed RunInstances request" in answer["log"]
    assert len(instances_of(server, "compute", "c7i4xl")) == before  # nothing launched for it
    assert len(instances_of(server, "spot", "mixed16m")) >= 1  # the other resources launch as before


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded"])
def test_an_injected_create_fleet_fault_comes_back_in_its_error_set(server, seeded, twin_files, no_faults, code):
    mark_fault(no_faults, "twin-spot-mixed16", code)
    answer = launch(server, twin_files, "spot-dy-mixed16-2")
    assert answer["failed"] == {code: ["spot-dy-mixed16-2"]}
    assert "Error in CreateFleet request" in answer["log"] and code in answer["log"]
    clear_faults(no_faults)
    assert launch(server, twin_files, "spot-dy-mixed16-2")["failed"] == {}  # cleared: capacity again


@pytest.mark.parametrize(("template", "nodes"), [
    ("twin-compute-c7i4xl", ["compute-dy-c7i4xl-1", "compute-dy-c7i4xl-2"]),  # RunInstances
    ("twin-spot-mixed16m", ["spot-dy-mixed16m-1", "spot-dy-mixed16m-2"]),  # CreateFleet
])
@pytest.mark.parametrize("strategy", ["all-or-nothing", "best-effort"])
def test_limited_capacity_as_each_scaling_strategy_takes_it(server, seeded, twin_files, no_faults, template, nodes,
                                                            strategy):
    """EC2 running low: one instance for a two-node job. All-or-nothing (MinCount 2, or
    MinTargetCapacity 2) launches nothing and the job's nodes fail for capacity; best-effort keeps
    the one and records the other node as LimitedInstanceCapacity, as on AWS."""
    queue, resource = template.split("-")[1:]
    before = len(instances_of(server, queue, resource))
    mark_fault(no_faults, template, capacity=1)
    conf = resume_conf(twin_files, seeded, strategy, scaling_strategy=strategy)
    answer = launch(server, twin_files, nodes, conf=conf)
    if strategy == "all-or-nothing":
        assert answer["failed"] == {"InsufficientInstanceCapacity": nodes}
        assert len(instances_of(server, queue, resource)) == before
    else:
        assert answer["failed"] == {"LimitedInstanceCapacity": [nodes[1]]}
        assert len(instances_of(server, queue, resource)) == before + 1


def test_without_job_level_scaling_resume_launches_its_node_list(server, seeded, twin_files, no_faults):
    """job_level_scaling off (what Slurm 26.05 needs with 3.16.1): the node list alone, no resume file."""
    conf = resume_conf(twin_files, seeded, "node-list", job_level_scaling=False, scaling_strategy="best-effort")
    before = len(instances_of(server, "fpga", "f26xl"))
    answer = run_driver("launch", str(conf), "fpga-dy-f26xl-1", "fpga-dy-f26xl-2", endpoint=server.endpoint)
    assert answer["config"]["job_level_scaling"] is False and answer["failed"] == {}
    assert len(instances_of(server, "fpga", "f26xl")) == before + 2
    # With job-level scaling and no resume file, ParallelCluster launches nothing (its own check).
    default = run_driver("launch", str(twin_files.conf("slurm_resume")), "fpga-dy-f26xl-1", endpoint=server.endpoint)
    assert "Slurm resume file content is empty" in default["log"]
    assert len(instances_of(server, "fpga", "f26xl")) == before + 2


def test_the_fronts_codes_are_the_ones_parallelcluster_acts_on():
    """Capacity codes: aws-parallelcluster-node's EC2_ICE_ERROR_CODES; scheduled events: its
    EC2_SCHEDULED_EVENT_CODES."""
    code = ("import json; from slurm_plugin.slurm_resources import SlurmNode, EC2_SCHEDULED_EVENT_CODES as E\n"
            "print(json.dumps([sorted(SlurmNode.EC2_ICE_ERROR_CODES), sorted(E)]))")
    result = subprocess.run([str(PCNODE_PYTHON), "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [sorted(CAPACITY_CODES), sorted(EVENT_CODES)]


def test_resume_records_assigned_nodes_where_compute_nodes_look_them_up(server, seeded, twin_files, no_faults):
    """resume's DynamoDB write, read back as a compute node does at boot (the InstanceId index)."""
    answer = launch(server, twin_files, "storage-dy-i4i4xl-1")
    assert answer["failed"] == {}
    instance = instances_of(server, "storage", "i4i4xl")[0]["InstanceId"]
    run_driver("assign", str(twin_files.conf("slurm_resume")), f"storage-dy-i4i4xl-1={instance}",
               endpoint=server.endpoint)
    dynamodb = aws.local_client("dynamodb", server.endpoint, REGION)
    found = dynamodb.query(TableName="parallelcluster-slurm-twin", IndexName="InstanceId",
                           KeyConditionExpression="InstanceId = :id",
                           ExpressionAttributeValues={":id": {"S": instance}})["Items"]
    assert [item["Id"]["S"] for item in found] == ["storage-dy-i4i4xl-1"]


def test_clustermgtds_health_query_sees_only_the_instances_marked_unhealthy(server, seeded, twin_files, no_faults):
    """moto alone reports every instance "ok" and ignores the status filters; through the front,
    clustermgtd's query (impaired instance or system status, scheduled events) gets exactly the
    instances marked in the health file, and its own checks fail them."""
    clear_health(server.health_file)
    assert launch(server, twin_files, ["fpga-dy-f26xl-1", "fpga-dy-f26xl-2"])["failed"] == {}
    answer = run_driver("health", str(twin_files.conf("slurm_resume")), endpoint=server.endpoint)
    assert answer["cluster"] and answer["reported"] == [] and answer["failing"] == []  # all healthy
    first, second = (i["InstanceId"] for i in instances_of(server, "fpga", "f26xl")[:2])
    try:
        mark_unhealthy(server.health_file, first, since=time.time() - 3600)
        mark_unhealthy(server.health_file, second, instance="ok", event="instance-retirement")
        answer = run_driver("health", str(twin_files.conf("slurm_resume")), endpoint=server.endpoint)
        assert answer["reported"] == sorted([first, second]) and answer["failing"] == sorted([first, second])
        statuses = ec2(server).describe_instance_status(InstanceIds=[first, second])["InstanceStatuses"]
        by_id = {s["InstanceId"]: s for s in statuses}
        assert by_id[first]["InstanceStatus"]["Status"] == "impaired"
        assert by_id[first]["InstanceStatus"]["Details"][0]["ImpairedSince"].timestamp() < time.time() - 3000
        assert [e["Code"] for e in by_id[second]["Events"]] == ["instance-retirement"]
        running = ec2(server).describe_instance_status(Filters=[
            {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "system-status.status", "Values": ["ok"]}])["InstanceStatuses"]
        assert {first, second} <= {s["InstanceId"] for s in running}  # filters AND, values OR
    finally:
        clear_health(server.health_file)
    assert run_driver("health", str(twin_files.conf("slurm_resume")), endpoint=server.endpoint)["reported"] == []


def test_health_marks_are_checked_and_filters_read_as_ec2_sends_them(tmp_path):
    with pytest.raises(SetupError, match="not EC2's"):
        mark_unhealthy(tmp_path / "h.json", "i-1", instance="sick")
    with pytest.raises(SetupError, match="scheduled event"):
        mark_unhealthy(tmp_path / "h.json", "i-1", event="party")
    form = {"Action": "DescribeInstanceStatus", "Filter.1.Name": "event.code", "Filter.1.Value.1": "instance-stop",
            "Filter.1.Value.2": "system-reboot", "Filter.2.Name": "instance-state-name", "Filter.2.Value.1": "running"}
    assert request_filters(form) == {"event.code": {"instance-stop", "system-reboot"}, "instance-state-name": {"running"}}


def test_stopping_the_fleet_terminates_compute_instances_only(tmp_path):
    """terminate_all_compute_nodes (the fleet status manager's stop, and clustermgtd's) finds the
    cluster's compute instances by ParallelCluster's tags: the head node stays. A server of its
    own, so the other tests keep their instances."""
    with own_twin(tmp_path, LAYOUT, CLUSTER.queues) as (instance, seeded, paths):
        assert launch(instance, paths, "compute-dy-c7i4xl-1", "spot-dy-mixed16-1")["failed"] == {}
        answer = run_driver("terminate", str(paths.conf("slurm_resume")), endpoint=instance.endpoint)
        assert len(answer["terminated"]) == 2 and seeded.head_instance_id not in answer["terminated"]
        states = {i["InstanceId"]: i["State"]["Name"] for i in aws.describe_instances(ec2(instance), [])}
        assert states.pop(seeded.head_instance_id) == "running"
        assert set(states) == set(answer["terminated"])
        assert set(states.values()) <= {"shutting-down", "terminated"}


def test_a_single_type_spot_resource_launches_spot_instances(tmp_path):
    """RunInstances ignores the launch template's market options in moto; the rendered overrides
    carry them, so a SPOT queue with one InstanceType gets spot instances, as on EC2."""
    queues = [Queue("sp", "SPOT", (ComputeResource("one", ("c7i.large",), 0, 2),))]
    layout = plan_layout(queues, "x.yaml", base=16817, real_memory_mb=24000)
    with own_twin(tmp_path, layout, queues) as (instance, _, paths):
        assert launch(instance, paths, "sp-dy-one-1")["failed"] == {}
        launched = instances_of(instance, "sp", "one")
        assert [(i["InstanceType"], i.get("InstanceLifecycle")) for i in launched] == [("c7i.large", "spot")]


# -- the compute fleet status ------------------------------------------------------------------------
def test_pclusters_fleet_status_reads_and_writes_the_seeded_item(server, seeded):
    """pcluster's own JsonComputeFleetStatusManager (what `pcluster describe-compute-fleet` and
    `update-compute-fleet` use) against the twin's table."""
    script = ("import sys; from pcluster.models.compute_fleet_status_manager import "
              "JsonComputeFleetStatusManager as M, ComputeFleetStatus as S\n"
              "m = M('twin'); print(m.get_status())\n"
              "m.update_status(S.STOP_REQUESTED, S.STOPPING, S.STOPPED); print(m.get_status())\n")
    result = subprocess.run([sys.executable, "-c", script], env=aws_env(server.endpoint), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RUNNING", "STOP_REQUESTED"]
    assert fleet_status(server.endpoint) == "STOP_REQUESTED"
    write(server.endpoint, "RUNNING")
    assert fleet_status(server.endpoint) == "RUNNING"


def test_clustermgtds_fleet_status_commands_read_and_protect_the_fleet(server, seeded, tmp_path):
    """clustermgtd's own ComputeFleetStatusManager runs get-/update-compute-fleet-status.sh from
    PATH: the twin's stubs answer from the seeded table."""
    for action, name in SCRIPTS.items():
        script = tmp_path / name
        script.write_text(render_fleet_status_script(action, sys.executable, server.endpoint))
        script.chmod(0o755)
    code = ("from slurm_plugin.clustermgtd import ComputeFleetStatusManager as M\n"
            "print(M.get_status()); M.update_status('PROTECTED'); print(M.get_status())\n")
    env = aws_env(server.endpoint)
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    result = subprocess.run([str(PCNODE_PYTHON), "-c", code], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["RUNNING", "PROTECTED"]
        assert fleet_status(server.endpoint) == "PROTECTED"
        update = [str(tmp_path / SCRIPTS["update"]), "--status", "PROTECTED"]
        assert subprocess.run(update, capture_output=True, check=False).returncode == 0  # already: nothing to do
        write(server.endpoint, "STOPPED")
        refused = subprocess.run(update, capture_output=True, text=True, check=False)
        assert refused.returncode == 1 and "cannot set the compute fleet from STOPPED" in refused.stderr
        got = json.loads(subprocess.run([str(tmp_path / SCRIPTS["get"])], capture_output=True, text=True,
                                        check=True).stdout)
        assert got["status"] == "STOPPED" and got["lastStatusUpdatedTime"].endswith("Z")
    finally:
        write(server.endpoint, "RUNNING")


def test_a_conditional_write_loses_to_a_change_in_between(server, seeded):
    write(server.endpoint, "RUNNING")
    with pytest.raises(AwsError, match="ConditionalCheckFailed"):
        write(server.endpoint, "PROTECTED", expected="STOP_REQUESTED")
    assert fleet_status(server.endpoint) == "RUNNING"


def test_fleet_status_times_are_printed_as_iso_utc_with_milliseconds():
    assert iso_time("2026-12-07 16:00:00.123456+00:00") == "2026-12-07T16:00:00.123Z"
    assert iso_time("2026-12-07 17:00:00+01:00") == "2026-12-07T16:00:00.000Z"
    assert iso_time("2026-12-07T16:00:05") == "2026-12-07T16:00:05.000Z"


def test_the_fleet_status_manager_reads_a_running_fleet_without_slurm(twin_files, tmp_path):
    """slurm_fleet_status_manager with a RUNNING status does nothing (no Slurm call); stop and start
    requests need scontrol (the integration's part)."""
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"status": "RUNNING", "lastStatusUpdatedTime": "2026-12-07T16:00:00.000Z"}))
    answer = run_driver("fleet-status", str(twin_files.conf("slurm_fleet_status_manager")), str(status))
    assert answer["exit"] == 0
    log = twin_files.log("slurm_fleet_status_manager").read_text()
    assert "ComputeFleet status is: RUNNING" in log and "FleetManager finished." in log
    status.write_text("{}")  # no status: the daemon's own failure
    assert run_driver("fleet-status", str(twin_files.conf("slurm_fleet_status_manager")), str(status))["exit"] == 1
