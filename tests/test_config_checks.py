"""hpctool's cross-checks one by one: every registered check has a row here (a config it must
flag, where and how), and a clean config none of them flags."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from hpctool.configs.checks.registry import CHECKS, Config
from hpctool.configs.checks.run import CHECK_NAMES, ORDER, hpctool_findings, run_check
from hpctool.configs.instances import catalog

BASE = {
    "Region": "us-east-1",
    "Image": {"Os": "ubuntu2204"},
    "HeadNode": {"InstanceType": "c7i.4xlarge", "Ssh": {"AllowedIps": "10.0.0.0/16"},
                 "Networking": {"SubnetId": "subnet-0123456789abcdef0"}},
    "Scheduling": {"Scheduler": "slurm", "SlurmSettings": {"Database": {
        "Uri": "acct.c0a1b2c3d4e5.us-east-1.rds.amazonaws.com:3306", "UserName": "slurmadmin",
        "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:acct-AbCdEf",
        "DatabaseName": "slurm_acct_db"}}, "SlurmQueues": [
        {"Name": "compute", "Networking": {"SubnetIds": ["subnet-0123456789abcdef0"]},
         "ComputeResources": [{"Name": "c7i", "InstanceType": "c7i.4xlarge", "MinCount": 0, "MaxCount": 10}]}]},
}


def head(config: dict) -> dict:
    return config["HeadNode"]


def queue(config: dict) -> dict:
    return config["Scheduling"]["SlurmQueues"][0]


def resource(config: dict) -> dict:
    return queue(config)["ComputeResources"][0]


def spot(config: dict) -> None:
    queue(config)["CapacityType"] = "SPOT"


# check name -> (what makes the config wrong, the level, the end of the finding's path)
TABLE: dict[str, tuple[Callable[[dict], object], str, str]] = {
    "counts": (lambda c: resource(c).update(MinCount=5, MaxCount=2), "error", ".MinCount"),
    "names": (lambda c: queue(c).update(Name="Compute_1"), "error", ".Name"),
    "instances": (lambda c: resource(c).update(InstanceType="c7i.enormous"), "error", ".InstanceType"),
    "head-node-memory": (lambda c: (head(c).update(InstanceType="t3.micro"), resource(c).update(MaxCount=1000)),
                         "error", "HeadNode.InstanceType"),
    "fsx": (lambda c: c.update(SharedStorage=[{"Name": "fsx", "StorageType": "FsxLustre", "MountDir": "/fsx",
                                                "FsxLustreSettings": {"StorageCapacity": 1000}}]),
            "error", ".FsxLustreSettings.StorageCapacity"),
    "placeholders": (lambda c: head(c)["Networking"].update(SubnetId="REPLACE_ME"), "error",
                     "HeadNode.Networking.SubnetId"),
    "ssh": (lambda c: head(c)["Ssh"].update(AllowedIps="0.0.0.0/0"), "warning", "HeadNode.Ssh.AllowedIps"),
    "dcv": (lambda c: head(c).update(Dcv={"Enabled": True}), "warning", "HeadNode.Dcv.AllowedIps"),
    "imds": (lambda c: c.update(Imds={"ImdsSupport": "v1.0"}), "error", "Imds.ImdsSupport"),
    "encryption": (lambda c: head(c).update(LocalStorage={"RootVolume": {"Encrypted": False}}), "warning",
                   "HeadNode.LocalStorage.RootVolume.Encrypted"),
    "least-privilege": (lambda c: head(c).update(Iam={"S3Access": [{"BucketName": "*"}]}), "warning",
                        "HeadNode.Iam.S3Access[0].BucketName"),
    "network": (lambda c: queue(c)["Networking"].update(AssignPublicIp=True), "warning",
                ".Networking.AssignPublicIp"),
    "region": (lambda c: head(c).update(Iam={"S3Access": [{"BucketName": "genomes-eu-west-1"}]}), "warning",
               "HeadNode.Iam.S3Access[0].BucketName"),
    "bootstrap-os": (lambda c: (c["Image"].update(Os="alinux2023"), head(c).update(CustomActions={
        "OnNodeConfigured": {"Script": "s3://hpctool-bundle/on-node-configured.sh"}})), "warning", "Image.Os"),
    "spot-failover": (spot, "warning", ".ComputeResources"),
    "spot-requeue": (lambda c: (spot(c), queue(c).update(JobExclusiveAllocation=True),
                                c["Scheduling"]["SlurmSettings"].update(EnableMemoryBasedScheduling=True)),
                     "warning", ".JobExclusiveAllocation"),
    "accounting": (lambda c: c["Scheduling"]["SlurmSettings"].pop("Database"), "warning",
                   "Scheduling.SlurmSettings.Database"),
    "scaledown": (lambda c: c["Scheduling"]["SlurmSettings"].update(ScaledownIdletime=2), "warning",
                  "Scheduling.SlurmSettings.ScaledownIdletime"),
    "directory": (lambda c: c.update(DirectoryService={
        "DomainName": "corp.example.com", "DomainAddr": "ldap://ldap.corp.example.com",
        "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ro-AbCdEf",
        "DomainReadOnlyUser": "cn=ReadOnlyUser,ou=Users,ou=CORP,dc=corp,dc=example,dc=com",
        "LdapAccessFilter": "memberOf=cn=hpc-users,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"}), "error",
        "DirectoryService.DomainAddr"),
}
NEEDS_INSTANCE_DATA = {"instances", "head-node-memory"}


def test_every_check_has_a_row_and_runs_once():
    assert set(TABLE) == CHECK_NAMES == set(CHECKS)
    assert sorted(ORDER) == sorted(CHECK_NAMES)


def test_the_clean_config_has_no_finding():
    findings, not_checked = hpctool_findings(copy.deepcopy(BASE))
    assert findings == []
    # instances: only without moto's EC2 data; accounting: the database's reachability needs the account
    assert {n.check for n in not_checked} <= {"hpctool:instances", "hpctool:accounting"}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_each_check_flags_its_case(name):
    instances = catalog()
    if name in NEEDS_INSTANCE_DATA and instances is None:
        pytest.skip("moto's EC2 data is not installed")
    clean, _ = run_check(name, Config(copy.deepcopy(BASE), instances))
    assert clean == []
    spoil, level, path_end = TABLE[name]
    config = copy.deepcopy(BASE)
    spoil(config)
    findings, _ = run_check(name, Config(config, instances))
    assert [(f.check, str(f.level)) for f in findings] == [(f"hpctool:{name}", level)], findings
    assert findings[0].path.endswith(path_end), findings[0].path
