"""`hpctool config validate`: every rendered config passes; a table of bad configs; legacy; CLI; --deep."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hpctool.cli import main
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.configs.render import VALUES_DIR, render
from hpctool.configs.validate import validate_config, validate_file

ERROR, WARNING = "error", "warning"
DEV = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
SUBNET = DEV["HeadNode"]["Networking"]["SubnetId"]


def queue(config: dict, name: str) -> dict:
    return next(q for q in config["Scheduling"]["SlurmQueues"] if q["Name"] == name)


def resource(config: dict, name: str) -> dict:
    return queue(config, name)["ComputeResources"][0]


def storage(config: dict, name: str) -> dict:
    return next(s for s in config["SharedStorage"] if s["Name"] == name)


def set_path(*keys_and_value):
    """A mutation that sets config[k1][k2]... = value (keys may be list indexes)."""
    *keys, value = keys_and_value

    def mutate(config: dict) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return mutate


def login_pool(config: dict) -> None:
    config["LoginNodes"] = {"Pools": [{"Name": "login", "InstanceType": "c7i.large", "Count": 1,
                                       "Networking": {"SubnetIds": [SUBNET]},
                                       "Ssh": {"KeyName": "old-key", "AllowedIps": "10.0.0.0/16"}}]}


Q = "Scheduling.SlurmQueues"
BAD_CONFIGS: list[tuple[str, Callable[[dict], None], str, str, str]] = [
    # (id, mutation, expected path, expected level, check prefix)
    ("typo-key", lambda c: c["HeadNode"].__setitem__("InstanceTyp", c["HeadNode"].pop("InstanceType")),
     "HeadNode.InstanceTyp", ERROR, "schema"),
    ("missing-required", lambda c: c["HeadNode"].pop("InstanceType"), "HeadNode.InstanceType", ERROR, "schema"),
    ("missing-scheduling", lambda c: c.pop("Scheduling"), "Scheduling", ERROR, "schema"),
    ("wrong-type-maxcount", lambda c: resource(c, "compute").__setitem__("MaxCount", "many"),
     f"{Q}[compute].ComputeResources[0].MaxCount", ERROR, "schema"),
    ("wrong-type-bool", set_path("HeadNode", "Imds", "Secured", "maybe"), "HeadNode.Imds.Secured", ERROR, "schema"),
    ("wrong-type-queues", lambda c: c["Scheduling"].__setitem__("SlurmQueues", "compute"), f"{Q}", ERROR, "schema"),
    ("bad-enum-capacity", lambda c: queue(c, "spot").__setitem__("CapacityType", "spot"),
     f"{Q}[spot].CapacityType", ERROR, "schema"),
    ("bad-enum-fsx", lambda c: storage(c, "fsx")["FsxLustreSettings"].__setitem__("DeploymentType", "PERSISTENT_3"),
     "SharedStorage[fsx].FsxLustreSettings.DeploymentType", ERROR, "schema"),
    ("min-over-max", lambda c: resource(c, "compute").__setitem__("MinCount", 30),
     f"{Q}[compute].ComputeResources[0].MinCount", ERROR, "hpctool:counts"),
    ("duplicate-queue", lambda c: queue(c, "storage").__setitem__("Name", "compute"), f"{Q}[3].Name", ERROR,
     "hpctool:names"),
    ("duplicate-resource", lambda c: queue(c, "compute")["ComputeResources"].append(dict(resource(c, "compute"))),
     f"{Q}[compute].ComputeResources[1].Name", ERROR, "hpctool:names"),
    ("queue-name-case", lambda c: queue(c, "storage").__setitem__("Name", "Storage_Q"), f"{Q}[Storage_Q].Name",
     ERROR, "hpctool:names"),
    ("queue-name-long", lambda c: queue(c, "storage").__setitem__("Name", "s" * 26), f"{Q}[{'s' * 26}].Name",
     ERROR, "hpctool:names"),
    ("queue-name-default", lambda c: queue(c, "storage").__setitem__("Name", "default"), f"{Q}[default].Name",
     ERROR, "hpctool:names"),
    ("resource-name", lambda c: resource(c, "fpga").__setitem__("Name", "F2_6xl"),
     f"{Q}[fpga].ComputeResources[0].Name", ERROR, "hpctool:names"),
    ("single-type-spot", lambda c: queue(c, "spot").__setitem__("ComputeResources", [
        {**resource(c, "spot"), "Instances": [{"InstanceType": "c7i.4xlarge"}]}]),
     f"{Q}[spot].ComputeResources", WARNING, "hpctool:spot-failover"),
    ("spot-exclusive-memory", lambda c: (queue(c, "spot").__setitem__("JobExclusiveAllocation", True),
                                         c["Scheduling"].setdefault("SlurmSettings", {}).__setitem__(
                                             "EnableMemoryBasedScheduling", True)),
     f"{Q}[spot].JobExclusiveAllocation", WARNING, "hpctool:spot-requeue"),
    ("scaledown-too-short", set_path("Scheduling", "SlurmSettings", "ScaledownIdletime", 2),
     "Scheduling.SlurmSettings.ScaledownIdletime", WARNING, "hpctool:scaledown"),
    ("bootstrap-timeout-short", lambda c: c.setdefault("DevSettings", {}).__setitem__(
        "Timeouts", {"ComputeNodeBootstrapTimeout": 300}),
     "DevSettings.Timeouts.ComputeNodeBootstrapTimeout", WARNING, "hpctool:scaledown"),
    ("dcv-open-to-world", set_path("HeadNode", "Dcv", {"Enabled": True}), "HeadNode.Dcv.AllowedIps", WARNING,
     "hpctool:dcv"),
    ("login-pool-own-ssh-open", lambda c: c.__setitem__("LoginNodes", {"Pools": [{
        "Name": "login", "InstanceType": "c7i.large", "Count": 1, "Networking": {"SubnetIds": [SUBNET]},
        "Ssh": {"AllowedIps": "0.0.0.0/0"}}]}), "LoginNodes.Pools[login].Ssh.AllowedIps", WARNING, "hpctool:ssh"),
    ("smt-off-cores-differ", lambda c: resource(c, "spot").update(
        DisableSimultaneousMultithreading=True, Instances=[{"InstanceType": "c7i.4xlarge"},
                                                           {"InstanceType": "c7a.4xlarge"}]),
     f"{Q}[spot].ComputeResources[0].Instances", ERROR, "hpctool:instances"),
    ("head-node-too-small", set_path("HeadNode", "InstanceType", "t3.micro"), "HeadNode.InstanceType", ERROR,
     "hpctool:head-node-memory"),
    ("unknown-region", set_path("Region", "moon-1"), "Region", ERROR, "hpctool:region"),
    ("unknown-region-shaped", set_path("Region", "us-north-7"), "Region", ERROR, "hpctool:region"),
    ("placeholder-string-filler", set_path("HeadNode", "Ssh", "KeyName", "String"), "HeadNode.Ssh.KeyName", ERROR,
     "hpctool:placeholders"),
    ("fsx-hdd-step", lambda c: storage(c, "fsx")["FsxLustreSettings"].update(
        DeploymentType="PERSISTENT_1", StorageType="HDD", PerUnitStorageThroughput=12, StorageCapacity=1800),
     "SharedStorage[fsx].FsxLustreSettings.StorageCapacity", ERROR, "hpctool:fsx"),
    ("vcpu-mismatch", lambda c: resource(c, "spot")["Instances"].append({"InstanceType": "c6i.8xlarge"}),
     f"{Q}[spot].ComputeResources[0].Instances", ERROR, "hpctool:instances"),
    ("memory-mismatch", lambda c: (resource(c, "spot")["Instances"].append({"InstanceType": "m7i.4xlarge"}),
                                   c["Scheduling"].setdefault("SlurmSettings", {}).__setitem__(
                                       "EnableMemoryBasedScheduling", True)),
     f"{Q}[spot].ComputeResources[0].Instances", WARNING, "hpctool:instances"),
    ("unknown-instance-type", lambda c: resource(c, "compute").__setitem__("InstanceType", "c7i.4xlargee"),
     f"{Q}[compute].ComputeResources[0].InstanceType", ERROR, "hpctool:instances"),
    ("fpga-not-in-region", set_path("Region", "eu-west-1"), f"{Q}[fpga].ComputeResources[0].InstanceType", ERROR,
     "hpctool:instances"),
    ("fsx-capacity-step", lambda c: storage(c, "fsx")["FsxLustreSettings"].__setitem__("StorageCapacity", 3600),
     "SharedStorage[fsx].FsxLustreSettings.StorageCapacity", ERROR, "hpctool:fsx"),
    ("placeholder-subnet", set_path("HeadNode", "Networking", "SubnetId", "subnet-REPLACE_ME"),
     "HeadNode.Networking.SubnetId", ERROR, "hpctool:placeholders"),
    ("placeholder-bucket", set_path("HeadNode", "Iam", "S3Access", 1, "BucketName", "<reference-bucket>"),
     "HeadNode.Iam.S3Access[1].BucketName", ERROR, "hpctool:placeholders"),
    ("placeholder-key", set_path("HeadNode", "Ssh", "KeyName", "CHANGE_ME"), "HeadNode.Ssh.KeyName", ERROR,
     "hpctool:placeholders"),
    ("unrendered-jinja", lambda c: queue(c, "compute")["Networking"].__setitem__("SubnetIds", ["{{ subnet }}"]),
     f"{Q}[compute].Networking.SubnetIds[0]", ERROR, "hpctool:placeholders"),
    ("world-open-ssh", set_path("HeadNode", "Ssh", "AllowedIps", "0.0.0.0/0"), "HeadNode.Ssh.AllowedIps",
     WARNING, "hpctool:ssh"),
    ("ssh-not-restricted", lambda c: c["HeadNode"]["Ssh"].pop("AllowedIps"), "HeadNode.Ssh.AllowedIps", WARNING,
     "hpctool:ssh"),
    ("no-imdsv2", set_path("Imds", "ImdsSupport", "v1.0"), "Imds.ImdsSupport", ERROR, "hpctool:imds"),
    ("imds-not-secured", set_path("HeadNode", "Imds", "Secured", False), "HeadNode.Imds.Secured", ERROR,
     "hpctool:imds"),
    ("efs-unencrypted", lambda c: storage(c, "home")["EfsSettings"].__setitem__("Encrypted", False),
     "SharedStorage[home].EfsSettings.Encrypted", WARNING, "hpctool:encryption"),
    ("root-unencrypted", set_path("HeadNode", "LocalStorage", "RootVolume", "Encrypted", False),
     "HeadNode.LocalStorage.RootVolume.Encrypted", WARNING, "hpctool:encryption"),
    ("bucket-other-region", lambda c: storage(c, "fsx")["FsxLustreSettings"]["DataRepositoryAssociations"][0]
     .__setitem__("DataRepositoryPath", "s3://genomes-eu-west-1/reference"),
     "SharedStorage[fsx].FsxLustreSettings.DataRepositoryAssociations[0].DataRepositoryPath", WARNING,
     "hpctool:region"),
    ("script-other-region", set_path("HeadNode", "CustomActions", "OnNodeConfigured", "Script",
                                     "https://boot.s3.eu-central-1.amazonaws.com/on-node-configured.sh"),
     "HeadNode.CustomActions.OnNodeConfigured.Script", WARNING, "hpctool:region"),
    ("write-whole-bucket", lambda c: c["HeadNode"]["Iam"]["S3Access"][2].pop("KeyName"),
     "HeadNode.Iam.S3Access[2]", WARNING, "hpctool:least-privilege"),
    ("any-bucket", set_path("HeadNode", "Iam", "S3Access", 0, "BucketName", "*"),
     "HeadNode.Iam.S3Access[0].BucketName", WARNING, "hpctool:least-privilege"),
    ("public-compute", lambda c: queue(c, "compute")["Networking"].__setitem__("AssignPublicIp", True),
     f"{Q}[compute].Networking.AssignPublicIp", WARNING, "hpctool:network"),
    ("legacy-alinux2", set_path("Image", "Os", "alinux2"), "Image.Os", ERROR, "legacy"),
    ("legacy-login-keyname", login_pool, "LoginNodes.Pools[login].Ssh.KeyName", ERROR, "legacy"),
    ("legacy-awsbatch", set_path("Scheduling", "Scheduler", "awsbatch"), "Scheduling.Scheduler", ERROR, "legacy"),
    ("alinux2023-without-lmod", set_path("Image", "Os", "alinux2023"), "Image.Os", WARNING, "hpctool:bootstrap-os"),
]


@pytest.mark.parametrize("values_file", sorted(VALUES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_rendered_config_passes(values_file: Path) -> None:
    report = validate_config(yaml.safe_load(render(values_file)), values_file.name)
    assert report.valid and not report.warnings, report.findings
    assert {"schema", "hpctool"} <= set(report.checks_run)


def test_bad_config_table_is_large_enough() -> None:
    assert len(BAD_CONFIGS) >= 30


@pytest.mark.parametrize("case_id, mutate, path, level, check", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config(case_id: str, mutate: Callable[[dict], None], path: str, level: str, check: str) -> None:
    config = copy.deepcopy(DEV)
    mutate(config)
    report = validate_config(config, case_id)
    hits = [f for f in report.findings if f.path == path and f.level == level and f.check.startswith(check)]
    assert hits, f"no {level} at {path} from {check}; got: " + "\n".join(
        f"{f.level} {f.path} {f.message} [{f.check}]" for f in report.findings)
    assert all(f.message and f.hint for f in report.findings)
    assert report.exit_code == (1 if level == ERROR else 0)


def test_legacy_replaces_the_bare_schema_message() -> None:
    config = copy.deepcopy(DEV)
    config["Image"]["Os"] = "alinux2"
    findings = [f for f in validate_config(config).findings if f.path == "Image.Os"]
    assert len(findings) == 1
    assert "alinux2023" in findings[0].hint and "Amazon Linux 2" in findings[0].message


def test_not_a_mapping() -> None:
    report = validate_config(["Region", "us-east-1"])
    assert not report.valid and report.findings[0].path == "(top level)"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("Region: us-east-1\nHeadNode:\n  InstanceType: [c7i\n")
    report = validate_file(bad)
    assert not report.valid and "line" in report.findings[0].message


def test_parallelcluster2_ini_gets_a_conversion_hint(tmp_path: Path) -> None:
    ini = tmp_path / "config"
    ini.write_text("[aws]\naws_region_name = us-east-1\n\n[cluster default]\nkey_name = k\nbase_os = alinux2\n")
    report = validate_file(ini)
    assert not report.valid and "pcluster3-config-converter" in report.findings[0].hint


def test_not_checked_is_listed_not_passed() -> None:
    report = validate_config(copy.deepcopy(DEV))
    checks = {n.check for n in report.not_checked}
    assert {"hpctool:region", "account:network", "account:key-pair"} <= checks


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "validate", str(DEFAULT_CLUSTER_CONFIG)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = copy.deepcopy(DEV)
    resource(bad, "compute")["MinCount"] = 99
    bad["HeadNode"]["Ssh"]["AllowedIps"] = "0.0.0.0/0"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    assert main(["config", "validate", str(bad_file), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["errors"] == 1 and report["warnings"] == 1
    assert {f["level"] for f in report["findings"]} == {"error", "warning"}
    assert all({"level", "path", "message", "hint", "check"} <= set(f) for f in report["findings"])
    assert main(["config", "validate", str(tmp_path / "absent.yaml")]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["config", "validate"])
    assert usage.value.code == 2


def test_deep_finds_what_only_parallelcluster_knows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A managed FSx with a queue spread over two subnets: only pcluster's ManagedFsxMultiAzValidator knows.
    config = copy.deepcopy(DEV)
    queue(config, "spot")["Networking"]["SubnetIds"] = [SUBNET.replace("0001", "0002"), SUBNET.replace("0001", "0003")]
    path = tmp_path / "multi-az.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["config", "validate", str(path)]) == 0
    capsys.readouterr()
    assert main(["config", "validate", str(path), "--deep", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    deep_errors = [f for f in report["findings"] if f["check"] == "pcluster:ManagedFsxMultiAzValidator"]
    assert deep_errors and deep_errors[0]["level"] == "error"
    assert "subnet-0a1b2c3d4e5f6" not in json.dumps([n for n in report["not_checked"]])


def test_deep_skipped_while_there_are_errors() -> None:
    config = copy.deepcopy(DEV)
    config["Imds"]["ImdsSupport"] = "v1.0"
    report = validate_config(config, deep=True)
    assert not report.valid
    assert any(n.check == "pcluster:validators" for n in report.not_checked)


# --- no false findings: what ParallelCluster accepts or defaults (issue 11) -----------------------------

GOOD_CONFIGS: list[tuple[str, Callable[[dict], None], str]] = [
    # (id, mutation, a check that must NOT report anything)
    ("json-extra-chef-attributes", lambda c: c.setdefault("DevSettings", {}).__setitem__("Cookbook", {
        "ExtraChefAttributes": '{"cluster": {"nvidia": {"enabled": true}}}'}), "hpctool:placeholders"),
    ("todo-in-bucket-name", set_path("HeadNode", "Iam", "S3Access", 0, "BucketName", "todo-app-data"),
     "hpctool:placeholders"),
    ("fsx-hdd-6000-at-12", lambda c: storage(c, "fsx")["FsxLustreSettings"].update(
        DeploymentType="PERSISTENT_1", StorageType="HDD", PerUnitStorageThroughput=12, StorageCapacity=6000),
     "hpctool:fsx"),
    ("smt-off-same-cores", lambda c: resource(c, "spot").update(
        DisableSimultaneousMultithreading=True, Instances=[{"InstanceType": "c7i.4xlarge"},
                                                           {"InstanceType": "c6i.4xlarge"}]), "hpctool:instances"),
    ("ebs-default-encrypted", lambda c: c["SharedStorage"].append({"Name": "ebs", "StorageType": "Ebs",
                                                                   "MountDir": "/ebs", "EbsSettings": {"Size": 50}}),
     "hpctool:encryption"),
    ("login-pool-inherits-ssh", lambda c: c.__setitem__("LoginNodes", {"Pools": [{
        "Name": "login", "InstanceType": "c7i.large", "Count": 1, "Networking": {"SubnetIds": [SUBNET]}}]}),
     "hpctool:ssh"),
    ("own-security-groups", lambda c: (c["HeadNode"]["Ssh"].pop("AllowedIps"), c["HeadNode"]["Networking"]
                                       .__setitem__("SecurityGroups", ["sg-0a1b2c3d4e5f60003"])), "hpctool:ssh"),
    ("memory-differs-without-memory-scheduling",
     lambda c: resource(c, "spot")["Instances"].append({"InstanceType": "m7i.4xlarge"}), "hpctool:instances"),
]


@pytest.mark.parametrize("case_id, mutate, check", GOOD_CONFIGS, ids=[c[0] for c in GOOD_CONFIGS])
def test_no_false_finding(case_id: str, mutate: Callable[[dict], None], check: str) -> None:
    config = copy.deepcopy(DEV)
    mutate(config)
    report = validate_config(config, case_id)
    assert not [f for f in report.findings if f.check == check and f.level != "info"], report.findings


def test_own_security_groups_are_listed_as_not_checked() -> None:
    config = copy.deepcopy(DEV)
    config["HeadNode"]["Networking"]["SecurityGroups"] = ["sg-0a1b2c3d4e5f60003"]
    report = validate_config(config)
    assert any(n.check == "hpctool:open-ports" and "JupyterHub" in n.reason for n in report.not_checked)


def test_levels_are_parallelclusters() -> None:
    from pcluster.validators.common import FailureLevel

    from hpctool.configs.findings import Level

    assert {level.name for level in Level} == {level.name for level in FailureLevel}
    assert Level.from_pcluster(FailureLevel.WARNING) is Level.WARNING and Level.WARNING == "warning"


def test_suppress_drops_one_check_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = copy.deepcopy(DEV)
    config["HeadNode"]["Ssh"]["AllowedIps"] = "0.0.0.0/0"
    path = tmp_path / "open.yaml"
    path.write_text(yaml.safe_dump(config))
    report = validate_file(path, suppress=["ssh"])
    assert not report.warnings and [f.check for f in report.suppressed] == ["hpctool:ssh"]
    assert main(["config", "validate", str(path), "--suppress", "hpctool:ssh", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["suppressed"][0]["check"] == "hpctool:ssh"
    assert main(["config", "validate", str(path), "--suppress", "no-such-check"]) == 2


def test_missing_region_is_defaulted_out_loud(tmp_path: Path) -> None:
    config = copy.deepcopy(DEV)
    config.pop("Region")
    report = validate_config(config, region="eu-west-2")
    info = [f for f in report.findings if f.path == "Region"]
    assert info and info[0].level == "info" and "eu-west-2" in info[0].message and "--region" in info[0].message


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["config", "validate", str(tmp_path)]) == 2


def test_deep_incomplete_exit_code_is_documented() -> None:
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, "-m", "hpctool.cli", "config", "validate", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "3 incomplete" in " ".join(help_text.split())
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "3 incomplete" in readme
