"""`hpctool config diff`: a table of changes and the update policy ParallelCluster's schema and docs
give them; what each needs in a stated fleet state; shipped pairs (dev to prod, an added and a
removed queue); the steps' order; bad inputs (exit 2, no traceback)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hpctool.cli import main
from hpctool.configs.diff import ConfigChange, Diff, diff_configs, diff_files
from hpctool.configs.render import VALUES_DIR, apply_overrides, render, render_values
from hpctool.configs.update_plan import (
    BY_STRATEGY,
    FLEET_STOP,
    LIVE,
    LOGIN_STOP,
    REFUSED,
)
from hpctool.configs.validate import validate_config
from hpctool.errors import ConfigInputError, UsageError

DEV = yaml.safe_load(render(VALUES_DIR / "dev.yaml"))
PROD = yaml.safe_load(render(VALUES_DIR / "prod.yaml"))
SUBNET = DEV["HeadNode"]["Networking"]["SubnetId"]
Q = "Scheduling.SlurmQueues"


def queue(config: dict, name: str) -> dict:
    return next(q for q in config["Scheduling"]["SlurmQueues"] if q["Name"] == name)


def resource(config: dict, queue_name: str, index: int = 0) -> dict:
    return queue(config, queue_name)["ComputeResources"][index]


def storage(config: dict, name: str) -> dict:
    return next(s for s in config["SharedStorage"] if s["Name"] == name)


def setting(*keys_and_value: object) -> Callable[[dict], None]:
    """A mutation that sets config[k1][k2]... = value; a callable key picks a node from the config."""
    *keys, value = keys_and_value

    def mutate(config: dict) -> None:
        node: object = config
        for key in keys[:-1]:
            node = key(node) if callable(key) else node[key]  # type: ignore[index]
        node[keys[-1]] = value  # type: ignore[index]
    return mutate


def login_pool(count: int = 1) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        config["LoginNodes"] = {"Pools": [{"Name": "login", "InstanceType": "c7i.large", "Count": count,
                                           "Networking": {"SubnetIds": [SUBNET]},
                                           "Ssh": {"AllowedIps": "10.0.0.0/16"}}]}
    return mutate


def both(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        for mutation in mutations:
            mutation(config)
    return mutate


def new_queue(config: dict) -> None:
    extra = copy.deepcopy(queue(config, "compute"))
    extra["Name"] = "highmem"
    extra["ComputeResources"] = [{"Name": "r7i4xl", "InstanceType": "r7i.4xlarge", "MinCount": 0, "MaxCount": 4}]
    extra["Tags"] = [{"Key": "hpctool-queue", "Value": "highmem"}]
    config["Scheduling"]["SlurmQueues"].append(extra)


def external_efs(config: dict) -> None:
    config["SharedStorage"].append({"Name": "data", "MountDir": "/data", "StorageType": "Efs",
                                    "EfsSettings": {"FileSystemId": "fs-0123456789abcdef0"}})


def drop_storage(name: str) -> Callable[[dict], None]:
    return lambda c: c.__setitem__("SharedStorage", [s for s in c["SharedStorage"] if s["Name"] != name])


def drop_queue(name: str) -> Callable[[dict], None]:
    return lambda c: c["Scheduling"].__setitem__("SlurmQueues",
                                                 [q for q in c["Scheduling"]["SlurmQueues"] if q["Name"] != name])


S = "cluster_schema.py"
NOOP: Callable[[dict], None] = lambda config: None
# (id, change of OLD (the shipped dev config), change of NEW, path, ParallelCluster's policy, source)
POLICIES: list[tuple[str, Callable[[dict], None], Callable[[dict], None], str, str, str]] = [
    ("head-node-type", NOOP, setting("HeadNode", "InstanceType", "c7i.2xlarge"), "HeadNode.InstanceType",
     "UNSUPPORTED", f"{S} HeadNodeSchema.instance_type; docs HeadNode: InstanceType, update not allowed"),
    ("head-node-subnet", NOOP, setting("HeadNode", "Networking", "SubnetId", "subnet-0a1b2c3d4e5f6aaaa"),
     "HeadNode.Networking.SubnetId", "UNSUPPORTED", f"{S} HeadNodeNetworkingSchema.subnet_id"),
    ("head-node-security-group", NOOP,
     setting("HeadNode", "Networking", "AdditionalSecurityGroups", ["sg-0123456789abcdef0"]),
     "HeadNode.Networking.AdditionalSecurityGroups", "SUPPORTED",
     f"{S} HeadNodeNetworkingSchema.additional_security_groups"),
    ("head-node-allowed-ips", NOOP, setting("HeadNode", "Ssh", "AllowedIps", "10.1.0.0/16"),
     "HeadNode.Ssh.AllowedIps", "SUPPORTED", f"{S} HeadNodeSshSchema.allowed_ips; docs HeadNode/Ssh/AllowedIps"),
    ("head-node-key", NOOP, setting("HeadNode", "Ssh", "KeyName", "other-key"), "HeadNode.Ssh.KeyName",
     "UNSUPPORTED", f"{S} HeadNodeSshSchema.key_name"),
    ("head-node-root-size", NOOP, setting("HeadNode", "LocalStorage", "RootVolume", "Size", 200),
     "HeadNode.LocalStorage.RootVolume.Size", "UNSUPPORTED", f"{S} HeadNodeRootVolumeSchema.size"),
    ("head-node-elastic-ip", NOOP, setting("HeadNode", "Networking", "ElasticIp", True),
     "HeadNode.Networking.ElasticIp", "UNSUPPORTED", f"{S} HeadNodeNetworkingSchema.elastic_ip"),
    ("head-node-s3-access", NOOP,
     lambda c: c["HeadNode"]["Iam"]["S3Access"].append({"BucketName": "more-data", "EnableWriteAccess": False}),
     "HeadNode.Iam.S3Access[more-data]", "SUPPORTED", f"{S} HeadNodeIamSchema.s3_access (update_key BucketName)"),
    ("head-node-iam-policy", NOOP,
     setting("HeadNode", "Iam", "AdditionalIamPolicies",
             [{"Policy": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}]),
     "HeadNode.Iam.AdditionalIamPolicies[arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore]", "SUPPORTED",
     f"{S} HeadNodeIamSchema.additional_iam_policies (update_key Policy)"),
    ("head-node-bootstrap", NOOP, setting("HeadNode", "CustomActions", "OnNodeConfigured", "Args", []),
     "HeadNode.CustomActions.OnNodeConfigured.Args", "UNSUPPORTED",
     f"{S} HeadNodeCustomActionsSchema.on_node_configured (CustomActionScriptSchema UNSUPPORTED)"),
    ("head-node-on-updated", NOOP,
     setting("HeadNode", "CustomActions", "OnNodeUpdated", {"Script": "s3://hpctool-dev-artifacts/updated.sh"}),
     "HeadNode.CustomActions.OnNodeUpdated", "SUPPORTED", f"{S} HeadNodeCustomActionsSchema.on_node_updated"),
    ("scaledown-idletime", NOOP, setting("Scheduling", "SlurmSettings", "ScaledownIdletime", 20),
     "Scheduling.SlurmSettings.ScaledownIdletime", "COMPUTE_FLEET_STOP",
     f"{S} SlurmSettingsSchema.scaledown_idletime; docs SlurmSettings: compute fleet must be stopped"),
    ("memory-scheduling", NOOP, setting("Scheduling", "SlurmSettings", "EnableMemoryBasedScheduling", True),
     "Scheduling.SlurmSettings.EnableMemoryBasedScheduling", "COMPUTE_FLEET_STOP",
     f"{S} SlurmSettingsSchema.enable_memory_based_scheduling"),
    ("custom-slurm-settings", NOOP,
     setting("Scheduling", "SlurmSettings", "CustomSlurmSettings", [{"JobRequeue": 1}]),
     "Scheduling.SlurmSettings.CustomSlurmSettings", "SUPPORTED", f"{S} SlurmSettingsSchema.custom_slurm_settings"),
    ("queue-update-strategy", NOOP, setting("Scheduling", "SlurmSettings", "QueueUpdateStrategy", "TERMINATE"),
     "Scheduling.SlurmSettings.QueueUpdateStrategy", "IGNORED", f"{S} SlurmSettingsSchema.queue_update_strategy"),
    ("scaling-strategy", NOOP, setting("Scheduling", "ScalingStrategy", "greedy-all-or-nothing"),
     "Scheduling.ScalingStrategy", "SUPPORTED", f"{S} SchedulingSchema.scaling_strategy"),
    ("max-count", NOOP, setting(lambda c: resource(c, "spot"), "MaxCount", 80),
     f"{Q}[spot].ComputeResources[mixed16].MaxCount", "RESIZE_UPDATE_STRATEGY_ON_REMOVE",
     f"{S} SlurmComputeResourceSchema.max_count; docs ComputeResources/MaxCount"),
    ("min-count", NOOP, setting(lambda c: resource(c, "compute"), "MinCount", 1),
     f"{Q}[compute].ComputeResources[c7i4xl].MinCount", "RESIZE_UPDATE_STRATEGY_ON_REMOVE",
     f"{S} SlurmComputeResourceSchema.min_count"),
    ("compute-instance-type", NOOP, setting(lambda c: resource(c, "compute"), "InstanceType", "c6i.4xlarge"),
     f"{Q}[compute].ComputeResources[c7i4xl].InstanceType", "COMPUTE_FLEET_STOP",
     f"{S} SlurmComputeResourceSchema.instance_type; docs ComputeResources/InstanceType"),
    ("spot-instance-added", NOOP,
     lambda c: resource(c, "spot")["Instances"].append({"InstanceType": "c5.4xlarge"}),
     f"{Q}[spot].ComputeResources[mixed16].Instances[c5.4xlarge]", "COMPUTE_FLEET_STOP_ON_REMOVE",
     f"{S} SlurmComputeResourceSchema.instances (update_key InstanceType)"),
    ("smt", NOOP, setting(lambda c: resource(c, "compute"), "DisableSimultaneousMultithreading", True),
     f"{Q}[compute].ComputeResources[c7i4xl].DisableSimultaneousMultithreading", "COMPUTE_FLEET_STOP",
     f"{S} SlurmComputeResourceSchema.disable_simultaneous_multithreading"),
    ("spot-price", NOOP, setting(lambda c: resource(c, "spot"), "SpotPrice", 0.5),
     f"{Q}[spot].ComputeResources[mixed16].SpotPrice", "QUEUE_UPDATE_STRATEGY",
     f"{S} SlurmComputeResourceSchema.spot_price"),
    ("capacity-type", NOOP, setting(lambda c: queue(c, "compute"), "CapacityType", "SPOT"),
     f"{Q}[compute].CapacityType", "QUEUE_UPDATE_STRATEGY",
     f"{S} SlurmQueueSchema.capacity_type; docs SlurmQueues/CapacityType"),
    ("allocation-strategy", NOOP, setting(lambda c: queue(c, "spot"), "AllocationStrategy", "lowest-price"),
     f"{Q}[spot].AllocationStrategy", "QUEUE_UPDATE_STRATEGY", f"{S} SlurmQueueSchema.allocation_strategy"),
    ("queue-root-volume", NOOP,
     setting(lambda c: queue(c, "storage")["ComputeSettings"]["LocalStorage"], "RootVolume", {"Size": 100}),
     f"{Q}[storage].ComputeSettings.LocalStorage.RootVolume", "QUEUE_UPDATE_STRATEGY",
     f"{S} QueueStorageSchema.root_volume"),
    ("queue-ami", NOOP, setting(lambda c: queue(c, "compute"), "Image", {"CustomAmi": "ami-0123456789abcdef0"}),
     f"{Q}[compute].Image", "QUEUE_UPDATE_STRATEGY", f"{S} SlurmQueueSchema.image; docs SlurmQueues/Image"),
    ("queue-bootstrap", NOOP,
     setting(lambda c: queue(c, "compute")["CustomActions"]["OnNodeConfigured"], "Args", ["--envs", "none"]),
     f"{Q}[compute].CustomActions.OnNodeConfigured.Args", "QUEUE_UPDATE_STRATEGY",
     f"{S} QueueCustomActionsSchema.on_node_configured"),
    ("queue-tag", NOOP, setting(lambda c: queue(c, "compute")["Tags"][0], "Value", "cpu"),
     f"{Q}[compute].Tags[hpctool-queue].Value", "QUEUE_UPDATE_STRATEGY", f"{S} QueueTagSchema.value"),
    ("queue-subnet-managed-fsx", NOOP,
     setting(lambda c: queue(c, "compute"), "Networking", "SubnetIds", ["subnet-0a1b2c3d4e5f6bbbb"]),
     f"{Q}[compute].Networking.SubnetIds", "MANAGED_FSX",
     f"{S} SlurmQueueNetworkingSchema.subnet_ids; docs SlurmQueues/Networking/SubnetIds"),
    ("placement-group", NOOP,
     setting(lambda c: queue(c, "compute"), "Networking", "PlacementGroup", {"Enabled": True}),
     f"{Q}[compute].Networking.PlacementGroup", "MANAGED_PLACEMENT_GROUP",
     f"{S} SlurmQueueNetworkingSchema.placement_group"),
    ("queue-exclusive", NOOP, setting(lambda c: queue(c, "compute"), "JobExclusiveAllocation", True),
     f"{Q}[compute].JobExclusiveAllocation", "SUPPORTED", f"{S} SlurmQueueSchema.job_exclusive_allocation"),
    ("queue-added", NOOP, new_queue, f"{Q}[highmem]", "RESIZE_UPDATE_STRATEGY_ON_REMOVE",
     f"{S} SchedulingSchema.slurm_queues (update_key Name)"),
    ("queue-removed", NOOP, drop_queue("storage"), f"{Q}[storage]", "RESIZE_UPDATE_STRATEGY_ON_REMOVE",
     f"{S} SchedulingSchema.slurm_queues"),
    ("compute-resource-added", NOOP,
     lambda c: queue(c, "compute")["ComputeResources"].append(
         {"Name": "c7i8xl", "InstanceType": "c7i.8xlarge", "MinCount": 0, "MaxCount": 4}),
     f"{Q}[compute].ComputeResources[c7i8xl]", "RESIZE_UPDATE_STRATEGY_ON_REMOVE",
     f"{S} SlurmQueueSchema.compute_resources"),
    ("fsx-capacity", NOOP, setting(lambda c: storage(c, "fsx")["FsxLustreSettings"], "StorageCapacity", 2400),
     "SharedStorage[fsx].FsxLustreSettings.StorageCapacity", "UNSUPPORTED",
     f"{S} FsxLustreSettingsSchema.storage_capacity; docs SharedStorage/FsxLustreSettings"),
    ("fsx-compression", NOOP, lambda c: storage(c, "fsx")["FsxLustreSettings"].pop("DataCompressionType"),
     "SharedStorage[fsx].FsxLustreSettings.DataCompressionType", "SUPPORTED",
     f"{S} FsxLustreSettingsSchema.data_compression_type"),
    ("fsx-deletion-policy", NOOP, setting(lambda c: storage(c, "fsx")["FsxLustreSettings"], "DeletionPolicy",
                                          "Retain"),
     "SharedStorage[fsx].FsxLustreSettings.DeletionPolicy", "SUPPORTED",
     f"{S} FsxLustreSettingsSchema.deletion_policy"),
    ("fsx-export-policy", NOOP,
     setting(lambda c: storage(c, "fsx")["FsxLustreSettings"]["DataRepositoryAssociations"][1],
             "AutoExportPolicy", ["NEW"]),
     "SharedStorage[fsx].FsxLustreSettings.DataRepositoryAssociations[results].AutoExportPolicy", "SUPPORTED",
     f"{S} DataRepositoryAssociationSchema.auto_export_policy"),
    ("efs-performance-mode", NOOP, setting(lambda c: storage(c, "home")["EfsSettings"], "PerformanceMode", "maxIO"),
     "SharedStorage[home].EfsSettings.PerformanceMode", "UNSUPPORTED", f"{S} EfsSettingsSchema.performance_mode"),
    ("efs-throughput-mode", NOOP, lambda c: storage(c, "home")["EfsSettings"].update(
        ThroughputMode="provisioned", ProvisionedThroughput=128),
     "SharedStorage[home].EfsSettings.ThroughputMode", "SUPPORTED", f"{S} EfsSettingsSchema.throughput_mode"),
    ("storage-removed", NOOP, drop_storage("fsx"), "SharedStorage[fsx]", "SHARED_STORAGE_UPDATE_POLICY",
     f"{S} ClusterSchema.shared_storage; docs SharedStorage: update policy"),
    ("storage-added", NOOP, external_efs, "SharedStorage[data]", "SHARED_STORAGE_UPDATE_POLICY",
     f"{S} ClusterSchema.shared_storage"),
    ("cluster-tag", NOOP, setting("Tags", 0, "Value", "genomics-x"), "Tags[project].Value", "SUPPORTED_UNLESS_ADC",
     f"{S} TagSchema.value (ClusterSchema.tags)"),
    ("region", NOOP, lambda c: _move_region(c, "us-west-2"), "Region", "UNSUPPORTED", f"{S} ClusterSchema.config_region"),
    ("os", NOOP, setting("Image", "Os", "ubuntu2404"), "Image.Os", "UNSUPPORTED", f"{S} ImageSchema.os"),
    ("detailed-monitoring", NOOP, setting("Monitoring", {"DetailedMonitoring": True}),
     "Monitoring.DetailedMonitoring", "COMPUTE_FLEET_STOP",
     f"{S} MonitoringSchema.detailed_monitoring (Monitoring itself IGNORED: traversed)"),
    ("logs-section-added", NOOP, setting("Monitoring", {"Logs": {"CloudWatch": {"RetentionInDays": 30}}}),
     "Monitoring.Logs", "UNSUPPORTED", f"{S} MonitoringSchema.logs (an added section takes the section's policy)"),
    ("custom-bucket", NOOP, setting("CustomS3Bucket", "my-pcluster-bucket"), "CustomS3Bucket",
     "READ_ONLY_RESOURCE_BUCKET", f"{S} ClusterSchema.custom_s3_bucket"),
    ("login-nodes-added", NOOP, login_pool(), "LoginNodes", "LOGIN_NODES_STOP", f"{S} ClusterSchema.login_nodes"),
    ("login-pool-type", login_pool(), both(login_pool(), setting("LoginNodes", "Pools", 0, "InstanceType",
                                                                 "c7i.xlarge")),
     "LoginNodes.Pools[login].InstanceType", "LOGIN_NODES_POOL_STOP", f"{S} LoginNodesPoolSchema.instance_type"),
    ("login-pool-count", login_pool(), login_pool(3), "LoginNodes.Pools[login].Count", "SUPPORTED",
     f"{S} LoginNodesPoolSchema.count"),
]


def _move_region(config: dict, region: str) -> None:
    """Another region, and the accounting secret with it (a secret must be in the cluster's region)."""
    config["Region"] = region
    database = config["Scheduling"]["SlurmSettings"].get("Database")
    if database:
        database["PasswordSecretArn"] = database["PasswordSecretArn"].replace(":us-east-1:", f":{region}:")


def _pair(old_change: Callable[[dict], None], new_change: Callable[[dict], None]) -> tuple[dict, dict]:
    old, new = copy.deepcopy(DEV), copy.deepcopy(DEV)
    old_change(old)
    old_change(new)
    new_change(new)
    return old, new


def _at(diff: Diff, path: str) -> ConfigChange:
    found = [c for c in diff.changes if c.path == path]
    assert len(found) == 1, f"{path}: {[c.path for c in diff.changes]}"
    return found[0]


def test_the_table_is_large_and_each_row_names_its_source() -> None:
    assert len(POLICIES) >= 25
    assert len({row[0] for row in POLICIES}) == len(POLICIES)
    assert all(row[5].startswith(S) for row in POLICIES)


@pytest.mark.parametrize("name, old_change, new_change, path, policy, source", POLICIES, ids=[r[0] for r in POLICIES])
def test_each_change_gets_parallelclusters_policy(name: str, old_change: Callable, new_change: Callable, path: str,
                                                  policy: str, source: str) -> None:
    old, new = _pair(old_change, new_change)
    diff = diff_configs(old, new)
    change = _at(diff, path)
    assert change.policy == policy, source
    assert change.meaning  # every change is put in words
    assert {c.path for c in diff_configs(old, old).changes} == set()  # and the unchanged config has none


@pytest.mark.parametrize("name, old_change, new_change", [r[:3] for r in POLICIES], ids=[r[0] for r in POLICIES])
def test_the_table_compares_valid_configs(name: str, old_change: Callable, new_change: Callable) -> None:
    """Each pair is what `hpctool config diff` accepts: both configs pass `hpctool config validate`."""
    old, new = _pair(old_change, new_change)
    for config in (new,) if old_change is NOOP else (old, new):  # OLD is the shipped dev config: valid
        report = validate_config(config, name)
        assert report.errors == [], [f"{f.path}: {f.message}" for f in report.errors]


# What each change needs, by the policy's rules in the docs ("Update policies": fleet stopped, or
# QueueUpdateStrategy set; removal only with the fleet stopped or TERMINATE; never).
NEEDS = [
    ("max-count-up-live", setting(lambda c: resource(c, "spot"), "MaxCount", 80), "running",
     f"{Q}[spot].ComputeResources[mixed16].MaxCount", LIVE),
    ("max-count-down-drain", setting(lambda c: resource(c, "spot"), "MaxCount", 10), "running",
     f"{Q}[spot].ComputeResources[mixed16].MaxCount", FLEET_STOP),
    ("max-count-down-terminate", both(setting(lambda c: resource(c, "spot"), "MaxCount", 10),
                                      setting("Scheduling", "SlurmSettings", "QueueUpdateStrategy", "TERMINATE")),
     "running", f"{Q}[spot].ComputeResources[mixed16].MaxCount", BY_STRATEGY),
    ("max-count-down-stopped", setting(lambda c: resource(c, "spot"), "MaxCount", 10), "stopped",
     f"{Q}[spot].ComputeResources[mixed16].MaxCount", LIVE),
    ("instance-type-running", setting(lambda c: resource(c, "compute"), "InstanceType", "c6i.4xlarge"), "running",
     f"{Q}[compute].ComputeResources[c7i4xl].InstanceType", FLEET_STOP),
    ("instance-type-stopped", setting(lambda c: resource(c, "compute"), "InstanceType", "c6i.4xlarge"), "stopped",
     f"{Q}[compute].ComputeResources[c7i4xl].InstanceType", LIVE),
    ("ami-drain", setting(lambda c: queue(c, "compute"), "Image", {"CustomAmi": "ami-0123456789abcdef0"}),
     "running", f"{Q}[compute].Image", BY_STRATEGY),
    ("ami-no-strategy", both(setting(lambda c: queue(c, "compute"), "Image", {"CustomAmi": "ami-0123456789abcdef0"}),
                             lambda c: c["Scheduling"]["SlurmSettings"].pop("QueueUpdateStrategy")),
     "running", f"{Q}[compute].Image", FLEET_STOP),
    ("queue-added-live", new_queue, "running", f"{Q}[highmem]", LIVE),
    ("queue-removed-drain", drop_queue("storage"), "running", f"{Q}[storage]", FLEET_STOP),
    ("queue-removed-terminate", both(drop_queue("storage"),
                                     setting("Scheduling", "SlurmSettings", "QueueUpdateStrategy", "TERMINATE")),
     "running", f"{Q}[storage]", BY_STRATEGY),
    ("head-node-type-stopped", setting("HeadNode", "InstanceType", "c7i.2xlarge"), "stopped",
     "HeadNode.InstanceType", REFUSED),
    ("subnet-with-managed-fsx", setting(lambda c: queue(c, "compute"), "Networking", "SubnetIds",
                                        ["subnet-0a1b2c3d4e5f6bbbb"]), "stopped",
     f"{Q}[compute].Networking.SubnetIds", REFUSED),
    ("cluster-tag-live", setting("Tags", 0, "Value", "genomics-x"), "running", "Tags[project].Value", LIVE),
]


@pytest.mark.parametrize("name, new_change, fleet, path, needs", NEEDS, ids=[r[0] for r in NEEDS])
def test_what_each_change_needs_in_the_stated_fleet_state(name: str, new_change: Callable, fleet: str, path: str,
                                                          needs: str) -> None:
    old, new = _pair(NOOP, new_change)
    diff = diff_configs(old, new, fleet=fleet)
    assert _at(diff, path).needs == needs
    assert diff.applicable == all(c.needs in (LIVE, BY_STRATEGY) for c in diff.changes)
    assert diff.exit_code == (0 if diff.applicable else 1)


def test_with_the_fleet_stopped_only_what_needs_it_says_so() -> None:
    diff = diff_configs(*_pair(NOOP, both(setting("HeadNode", "Ssh", "AllowedIps", "10.1.0.0/16"),
                                          setting(lambda c: resource(c, "compute"), "InstanceType", "c6i.4xlarge"))),
                        fleet="stopped")
    allowed, instance_type = (_at(diff, "HeadNode.Ssh.AllowedIps"),
                              _at(diff, f"{Q}[compute].ComputeResources[c7i4xl].InstanceType"))
    assert allowed.needs == instance_type.needs == LIVE and diff.applicable
    assert not allowed.needs_stopped_fleet and "applied live" in allowed.meaning
    assert instance_type.needs_stopped_fleet and "stopped" in instance_type.meaning


def test_a_subnet_change_without_managed_fsx_follows_the_queue_update_strategy() -> None:
    old, new = _pair(drop_storage("fsx"), setting(lambda c: queue(c, "compute"), "Networking", "SubnetIds",
                                                  ["subnet-0a1b2c3d4e5f6bbbb"]))
    assert _at(diff_configs(old, new), f"{Q}[compute].Networking.SubnetIds").needs == BY_STRATEGY


def test_login_pool_changes_need_its_nodes_stopped_only_while_they_run() -> None:
    change = setting("LoginNodes", "Pools", 0, "InstanceType", "c7i.xlarge")
    path = "LoginNodes.Pools[login].InstanceType"
    running = diff_configs(*_pair(login_pool(2), change))
    assert _at(running, path).needs == LOGIN_STOP and not running.applicable
    assert running.state.login_pools == {"login"}
    assert any("Stop the login nodes" in step for step in running.steps)
    stopped = diff_configs(*_pair(login_pool(0), change))  # stopped the ParallelCluster way: Count 0
    assert _at(stopped, path).needs == LIVE and stopped.applicable


def test_removing_managed_storage_names_the_data_loss_and_saves_it_first() -> None:
    diff = diff_configs(*_pair(NOOP, drop_storage("fsx")))
    change = _at(diff, "SharedStorage[fsx]")
    assert change.storage["deletion_policy"] == "Delete" and not change.storage["external"]
    assert "DELETES" in change.meaning and "/fsx" in change.meaning
    assert diff.steps[0].startswith("Save the data of fsx")
    assert diff.steps.index(diff.steps[0]) < next(i for i, s in enumerate(diff.steps) if s.startswith("Apply"))
    retained = diff_configs(*_pair(setting(lambda c: storage(c, "fsx")["FsxLustreSettings"], "DeletionPolicy",
                                           "Retain"), drop_storage("fsx")))
    kept = _at(retained, "SharedStorage[fsx]")
    assert kept.storage["deletion_policy"] == "Retain" and "DELETES" not in kept.meaning
    assert not any(step.startswith("Save the data") for step in retained.steps)


def test_unmounting_external_storage_keeps_its_data_and_applies_live() -> None:
    diff = diff_configs(*_pair(external_efs, drop_storage("data")))
    change = _at(diff, "SharedStorage[data]")
    assert change.storage["external"] and change.storage["action"] == "unmount"
    assert change.needs == LIVE and "data stay" in change.meaning and diff.applicable


def test_steps_stop_then_update_then_start() -> None:
    diff = diff_configs(*_pair(NOOP, setting(lambda c: resource(c, "compute"), "InstanceType", "c6i.4xlarge")),
                        cluster="genomics")
    order = [next(i for i, s in enumerate(diff.steps) if s.startswith(p))
             for p in ("Stop the compute fleet", "Let ParallelCluster check", "Apply", "Start the compute fleet")]
    assert order == sorted(order)
    assert "pcluster update-compute-fleet --cluster-name genomics --status STOP_REQUESTED" in diff.steps[order[0]]
    assert not diff.applicable


def test_no_change_is_no_step() -> None:
    diff = diff_configs(copy.deepcopy(DEV), copy.deepcopy(DEV))
    assert diff.changes == [] and diff.steps == [] and diff.exit_code == 0


# Pairs from the shipped values, as `hpctool config render` writes them.
def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _prod_values() -> dict:
    return yaml.safe_load((VALUES_DIR / "prod.yaml").read_text())


def test_dev_to_prod_is_refused_with_the_reasons(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = _write(tmp_path, "dev", render(VALUES_DIR / "dev.yaml"))
    new = _write(tmp_path, "prod", render(VALUES_DIR / "prod.yaml"))
    assert main(["config", "diff", str(old), str(new), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    changes = {c["path"]: c for c in report["changes"]}
    assert report["applicable"] is False
    assert changes["HeadNode.InstanceType"]["policy"] == "UNSUPPORTED"
    assert changes["HeadNode.InstanceType"]["needs"] == REFUSED
    assert changes[f"{Q}[fpga-wgs]"]["old"] is None and changes[f"{Q}[fpga-wgs]"]["needs"] == LIVE
    assert changes["SharedStorage[fsx].FsxLustreSettings.StorageCapacity"]["needs"] == REFUSED
    assert report["steps"][0].startswith("Revert in NEW")
    # --fleet stopped does not make a new-cluster change possible
    assert main(["config", "diff", str(old), str(new), "--fleet", "stopped"]) == 1
    out = capsys.readouterr().out
    assert "HeadNode.InstanceType" in out and "REFUSE" in out


def test_an_added_queue_applies_live(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    values = _prod_values()
    old = _write(tmp_path, "old", render_values({**values, "queues": {**values["queues"],
                                                                      "fpga": values["queues"]["fpga"][:1]}}))
    new = _write(tmp_path, "new", render(VALUES_DIR / "prod.yaml"))
    assert main(["config", "diff", str(old), str(new), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["path"] for c in report["changes"]] == [f"{Q}[fpga-wgs]"]
    assert report["changes"][0]["new"]["Name"] == "fpga-wgs" and report["applicable"] is True


def test_a_removed_queue_needs_the_fleet_stopped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    values = _prod_values()
    old = _write(tmp_path, "old", render(VALUES_DIR / "prod.yaml"))
    new = _write(tmp_path, "new", render_values({**values, "queues": {**values["queues"],
                                                                      "fpga": values["queues"]["fpga"][:1]}}))
    assert main(["config", "diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert f"{Q}[fpga-wgs]" in out and "STOP_REQUESTED" in out
    assert main(["config", "diff", str(old), str(new), "--fleet", "stopped"]) == 0
    assert "STOP_REQUESTED" not in capsys.readouterr().out


def test_a_set_override_diff_and_validate_still_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = _write(tmp_path, "old", render(VALUES_DIR / "dev.yaml"))
    values = apply_overrides(yaml.safe_load((VALUES_DIR / "dev.yaml").read_text()), ["queues.spot.max_count=10"])
    new = _write(tmp_path, "new", render_values(values))
    assert main(["config", "validate", str(new)]) == 0
    capsys.readouterr()
    diff = diff_files(old, new)
    assert {c.path for c in diff.changes} == {f"{Q}[spot].ComputeResources[mixed16].MaxCount",
                                              f"{Q}[spot].ComputeResources[mixed16m].MaxCount"}
    assert diff.exit_code == 1 and diff_files(old, new, fleet="stopped").exit_code == 0


# Bad inputs: a clear error, exit 2, no traceback.
def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    dev = yaml.safe_load(render(VALUES_DIR / "dev.yaml"))
    other = copy.deepcopy(dev)
    other["Scheduling"]["Scheduler"] = "awsbatch"
    invalid = copy.deepcopy(dev)
    invalid["HeadNode"]["InstanceTyp"] = invalid["HeadNode"].pop("InstanceType")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    return {
        "binary": (binary, "binary file"),
        "missing": (tmp_path / "absent.yaml", "no such file"),
        "folder": (tmp_path, "is a directory"),
        "scheduler": (_write(tmp_path, "batch", yaml.safe_dump(other)), "these are not two configs of one cluster"),
        "yaml": (_write(tmp_path, "broken", "HeadNode: [c7i,\n"), "not valid YAML"),
        "invalid": (_write(tmp_path, "invalid", yaml.safe_dump(invalid)), "HeadNode.InstanceType"),
        "not-a-mapping": (_write(tmp_path, "list", "- a\n- b\n"), "not a valid config"),
    }


@pytest.mark.parametrize("case", ["binary", "missing", "folder", "scheduler", "yaml", "invalid", "not-a-mapping"])
def test_bad_input_is_a_clear_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    good = _write(tmp_path, "good", render(VALUES_DIR / "dev.yaml"))
    bad, message = _bad_inputs(tmp_path)[case]
    for argv in ([str(good), str(bad)], [str(bad), str(good)]):
        assert main(["config", "diff", *argv]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "hint:" in captured.err, captured.err
        assert "Traceback" not in captured.err and captured.out == ""


def test_input_errors_are_exit_2_errors_of_the_family(tmp_path: Path) -> None:
    good = _write(tmp_path, "good", render(VALUES_DIR / "dev.yaml"))
    with pytest.raises(ConfigInputError) as error:
        diff_files(good, _write(tmp_path, "broken", "a: [\n"))
    assert error.value.exit_code == 2 and error.value.hint
    with pytest.raises(UsageError):
        diff_configs(DEV, DEV, fleet="half")


def test_an_unknown_fleet_state_is_a_usage_error(tmp_path: Path) -> None:
    good = _write(tmp_path, "good", render(VALUES_DIR / "dev.yaml"))
    with pytest.raises(SystemExit) as usage:
        main(["config", "diff", str(good), str(good), "--fleet", "maybe"])
    assert usage.value.code == 2
