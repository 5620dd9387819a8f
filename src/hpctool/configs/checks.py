"""hpctool's cross-checks: what ParallelCluster's schema does not catch, offline.

Each check reads the raw parsed YAML (any shape: the schema may have failed) and returns
findings with a YAML path; none of them raises on odd input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from pcluster.validators.cluster_validators import NAME_MAX_LENGTH, NAME_REGEX

from hpctool.configs.findings import ERROR, WARNING, Finding, NotChecked, PathNamer
from hpctool.configs.instances import InstanceCatalog, catalog

WORLD = {"0.0.0.0/0", "::/0"}
# FSx for Lustre SSD capacity in GiB, by deployment type: the small sizes, then any multiple of the step.
FSX_STEPS = {
    "PERSISTENT_2": ((1200,), 2400),
    "PERSISTENT_1": ((1200,), 2400),
    "SCRATCH_2": ((1200,), 2400),
    "SCRATCH_1": ((1200, 2400), 3600),
}
PLACEHOLDER_RE = re.compile(
    r"REPLACE|CHANGE[-_]?ME|TODO|FIXME|<[^<>]*>|\{\{|\}\}|\$\{|x{6,}|^subnet-x+$|^sg-x+$|^ami-x+$|YOUR[-_]",
    re.IGNORECASE,
)
REGION_IN_NAME_RE = re.compile(r"(?<![a-z])((?:af|ap|ca|eu|il|me|mx|sa|us)-(?:gov-)?"
                               r"(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-\d)(?!\d)")
HTTPS_S3_RE = re.compile(r"^(?P<bucket>[^.]+)\.s3[.-](?P<region>[a-z0-9-]+)\.amazonaws\.com$")


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Checker:
    def __init__(self, config: Any, instances: InstanceCatalog | None) -> None:
        self.config = config if isinstance(config, dict) else {}
        self.namer = PathNamer(self.config)
        self.instances = instances
        self.region = self.config.get("Region") if isinstance(self.config.get("Region"), str) else None
        self.findings: list[Finding] = []
        self.not_checked: list[NotChecked] = []

    def add(self, level: str, path: str, message: str, hint: str, check: str) -> None:
        self.findings.append(Finding(level, path, message, hint, f"hpctool:{check}"))

    def queues(self) -> Iterator[tuple[str, dict]]:
        items = _list(_dict(self.config.get("Scheduling")).get("SlurmQueues"))
        for index, queue in enumerate(items):
            if isinstance(queue, dict):
                yield self.namer.item("Scheduling.SlurmQueues", items, index), queue

    def compute_resources(self) -> Iterator[tuple[str, dict, dict]]:
        for q_path, queue in self.queues():
            for index, resource in enumerate(_list(queue.get("ComputeResources"))):
                if isinstance(resource, dict):
                    yield f"{q_path}.ComputeResources[{index}]", queue, resource

    # --- the checks -------------------------------------------------------------------------------

    def check_counts(self) -> None:
        for path, _, resource in self.compute_resources():
            low, high = _int(resource.get("MinCount")), _int(resource.get("MaxCount"))
            if low is not None and high is not None and low > high:
                self.add(ERROR, f"{path}.MinCount", f"MinCount {low} is greater than MaxCount {high}",
                         "MinCount is the number of static nodes and must be <= MaxCount", "counts")

    def check_names(self) -> None:
        queues = _list(_dict(self.config.get("Scheduling")).get("SlurmQueues"))
        self._unique(queues, "Scheduling.SlurmQueues", "queue")
        for q_path, queue in self.queues():
            self._name_format(queue.get("Name"), f"{q_path}.Name", "queue")
            resources = _list(queue.get("ComputeResources"))
            self._unique(resources, f"{q_path}.ComputeResources", "compute resource")
            for index, resource in enumerate(resources):
                if isinstance(resource, dict):
                    self._name_format(resource.get("Name"), f"{q_path}.ComputeResources[{index}].Name",
                                      "compute resource")

    def _unique(self, items: list, list_path: str, what: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            name = item.get("Name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add(ERROR, f"{list_path}[{index}].Name", f"{what} name {name!r} is used twice "
                         f"(also {list_path}[{seen[name]}])", f"give every {what} its own name", "names")
            else:
                seen[name] = index

    def _name_format(self, name: Any, path: str, what: str) -> None:
        # ParallelCluster's own rule (its NameValidator runs only with AWS access); Slurm node
        # names are built from it: <queue>-st-<resource>-<n>.
        if not isinstance(name, str):
            return
        if not re.match(NAME_REGEX, name) or len(name) > NAME_MAX_LENGTH or name == "default":
            self.add(ERROR, path, f"{what} name {name!r} is not a valid Slurm/ParallelCluster name",
                     f"start with a lowercase letter, then lowercase letters, digits and hyphens, at most "
                     f"{NAME_MAX_LENGTH} characters, not 'default'", "names")

    def check_instances(self) -> None:
        for path, queue, resource in self.compute_resources():
            if resource.get("InstanceType") is not None:
                types, types_path = [resource.get("InstanceType")], f"{path}.InstanceType"
            else:
                types = [_dict(i).get("InstanceType") for i in _list(resource.get("Instances"))]
                types_path = f"{path}.Instances"
            types = [t for t in types if isinstance(t, str)]
            if queue.get("CapacityType") == "SPOT" and len(set(types)) == 1:
                self.add(WARNING, types_path, f"spot compute resource has one instance type ({types[0]})",
                         "list two or more instance types of the same size under Instances, so a spot "
                         "shortage of one type does not stop the queue", "spot-diversity")
            self._instance_facts(types, types_path)
        head_type = _dict(self.config.get("HeadNode")).get("InstanceType")
        if isinstance(head_type, str):
            self._instance_facts([head_type], "HeadNode.InstanceType")

    def _instance_facts(self, types: list[str], path: str) -> None:
        if self.instances is None:
            return
        known = []
        for name in types:
            info = self.instances.get(name)
            if info is None:
                self.add(ERROR, path, f"unknown instance type {name!r}",
                         "check the spelling (e.g. c7i.4xlarge); moto's EC2 data does not list it", "instances")
                continue
            known.append(info)
            offered = self.instances.offered_in(self.region) if self.region else None
            if offered is not None and name not in offered:
                level = ERROR if info.fpga else WARNING
                self.add(level, path, f"{name} is not offered in {self.region}",
                         "pick a region that offers it (FPGA types: e.g. us-east-1, us-west-2, eu-west-2) "
                         "or another instance type", "instances")
        if len({i.vcpus for i in known}) > 1:
            sizes = ", ".join(f"{i.name}: {i.vcpus}" for i in known)
            self.add(ERROR, path, f"instance types of one compute resource differ in vCPUs ({sizes})",
                     "list only types with the same vCPU count; put other sizes in their own compute resource",
                     "instances")
        if len({i.memory_mib for i in known}) > 1:
            sizes = ", ".join(f"{i.name}: {i.memory_mib // 1024} GiB" for i in known)
            self.add(WARNING, path, f"instance types of one compute resource differ in memory ({sizes})",
                     "Slurm sees the smallest memory of the list; group types of the same memory", "instances")

    def check_fsx(self) -> None:
        storages = _list(self.config.get("SharedStorage"))
        for index, storage in enumerate(storages):
            settings = _dict(_dict(storage).get("FsxLustreSettings"))
            capacity = _int(settings.get("StorageCapacity"))
            deployment = settings.get("DeploymentType", "SCRATCH_2")
            if capacity is None or not isinstance(deployment, str) or deployment not in FSX_STEPS:
                continue
            firsts, step = FSX_STEPS[deployment]
            if capacity not in firsts and (capacity <= 0 or capacity % step):
                path = self.namer.item("SharedStorage", storages, index)
                self.add(ERROR, f"{path}.FsxLustreSettings.StorageCapacity",
                         f"FSx {deployment} capacity {capacity} GiB is not a valid size",
                         f"use {' or '.join(map(str, firsts))} GiB, or a multiple of {step} GiB",
                         "fsx")

    def check_placeholders(self) -> None:
        for path, value in _strings(self.config, [], self.namer):
            if PLACEHOLDER_RE.search(value):
                self.add(ERROR, path, f"placeholder left in the config: {value!r}",
                         "replace it with your account's value (render with --set KEY=VALUE)", "placeholders")

    def check_ssh(self) -> None:
        head = _dict(self.config.get("HeadNode"))
        self._ssh(head.get("Ssh"), "HeadNode.Ssh")
        pools = _list(_dict(self.config.get("LoginNodes")).get("Pools"))
        for index, pool in enumerate(pools):
            self._ssh(_dict(pool).get("Ssh"), f"{self.namer.item('LoginNodes.Pools', pools, index)}.Ssh")

    def _ssh(self, ssh: Any, path: str) -> None:
        ssh = _dict(ssh)
        allowed = ssh.get("AllowedIps")
        if allowed is None:
            self.add(WARNING, f"{path}.AllowedIps", "SSH AllowedIps is not set: ParallelCluster opens port 22 "
                     "to 0.0.0.0/0", "set AllowedIps to your office/VPN CIDR or a prefix list", "ssh")
        elif isinstance(allowed, str) and allowed.strip() in WORLD:
            self.add(WARNING, f"{path}.AllowedIps", f"SSH is open to the whole internet ({allowed})",
                     "set AllowedIps to your office/VPN CIDR or a prefix list", "ssh")

    def check_imds(self) -> None:
        support = _dict(self.config.get("Imds")).get("ImdsSupport")
        if support is not None and support != "v2.0":
            self.add(ERROR, "Imds.ImdsSupport", f"IMDSv2 is not required (ImdsSupport: {support})",
                     "set Imds.ImdsSupport: v2.0 so instance credentials need a session token", "imds")
        head_imds = _dict(_dict(self.config.get("HeadNode")).get("Imds"))
        if head_imds.get("Secured") is False:
            self.add(ERROR, "HeadNode.Imds.Secured", "the head node's IMDS is open to every local user",
                     "set HeadNode.Imds.Secured: true (the default) so only root and admins reach "
                     "the instance profile credentials", "imds")

    def check_encryption(self) -> None:
        storages = _list(self.config.get("SharedStorage"))
        for index, storage in enumerate(storages):
            storage = _dict(storage)
            path = self.namer.item("SharedStorage", storages, index)
            for key in ("EfsSettings", "EbsSettings"):
                settings = storage.get(key)
                if isinstance(settings, dict) and settings.get("Encrypted") is not True \
                        and not settings.get("FileSystemId") and not settings.get("VolumeId"):
                    self.add(WARNING, f"{path}.{key}.Encrypted", f"{key[:3].upper()} storage is not encrypted",
                             "set Encrypted: true", "encryption")
        root = _dict(_dict(_dict(self.config.get("HeadNode")).get("LocalStorage")).get("RootVolume"))
        if root.get("Encrypted") is False:
            self.add(WARNING, "HeadNode.LocalStorage.RootVolume.Encrypted", "the head node root volume is not "
                     "encrypted", "set Encrypted: true (the default)", "encryption")

    def check_s3_access(self) -> None:
        places = [("HeadNode", _dict(self.config.get("HeadNode")))] + list(self.queues())
        for path, node in places:
            entries = _list(_dict(node.get("Iam")).get("S3Access"))
            for index, entry in enumerate(entries):
                entry = _dict(entry)
                bucket, write = entry.get("BucketName"), entry.get("EnableWriteAccess")
                if bucket == "*":
                    self.add(WARNING, f"{path}.Iam.S3Access[{index}].BucketName", "S3 access to every bucket",
                             "name the buckets the cluster needs", "least-privilege")
                elif write is True and not entry.get("KeyName"):
                    self.add(WARNING, f"{path}.Iam.S3Access[{index}]", f"write access to all of bucket {bucket}",
                             "add KeyName (e.g. results/*) so the cluster writes only its results prefix",
                             "least-privilege")

    def check_networking(self) -> None:
        for q_path, queue in self.queues():
            if _dict(queue.get("Networking")).get("AssignPublicIp") is True:
                self.add(WARNING, f"{q_path}.Networking.AssignPublicIp", "compute nodes get public IPs",
                         "run compute nodes in private subnets with a NAT gateway or VPC endpoints", "network")

    def check_regions(self) -> None:
        unknown: set[str] = set()
        for path, uri in self._s3_references():
            bucket, region = _bucket_region(uri)
            if not bucket:
                continue
            if region is None:
                unknown.add(bucket)
            elif self.region and region != self.region:
                self.add(WARNING, path, f"bucket {bucket} looks like it is in {region}, the cluster in "
                         f"{self.region}", "keep data and compute in one region: cross-region transfer is "
                         "slower and billed per GB", "region")
        if unknown:
            self.not_checked.append(NotChecked(
                "hpctool:region", f"region of bucket(s) {', '.join(sorted(unknown))}: an s3:// URI does not name "
                "its region; needs s3:GetBucketLocation on your account"))

    def _s3_references(self) -> Iterator[tuple[str, str]]:
        for path, value in _strings(self.config, [], self.namer):
            if value.startswith(("s3://", "https://")) and (".amazonaws.com" in value or value.startswith("s3://")):
                yield path, value
            elif path.endswith("S3Access") or re.search(r"S3Access\[\d+\]\.BucketName$", path):
                yield path, f"s3://{value}"

    def check_bootstrap_os(self) -> None:
        # hpctool's bootstrap installs Lmod from the OS (Ubuntu) or EPEL (RHEL, Rocky); Amazon
        # Linux 2023 has no Lmod package, so its nodes would fail the lmod step unless the AMI has it.
        image = _dict(self.config.get("Image"))
        if image.get("Os") != "alinux2023" or image.get("CustomAmi"):
            return
        scripts = [_dict(_dict(_dict(self.config.get("HeadNode")).get("CustomActions")).get("OnNodeConfigured"))]
        scripts += [_dict(_dict(q.get("CustomActions")).get("OnNodeConfigured")) for _, q in self.queues()]
        if any(str(s.get("Script", "")).endswith("/on-node-configured.sh") for s in scripts):
            self.add(WARNING, "Image.Os", "Amazon Linux 2023 has no Lmod package: hpctool's bootstrap "
                     "(step lmod) will fail on its nodes",
                     "use ubuntu2204, ubuntu2404, rocky9 or rhel9, or set Image.CustomAmi to an AMI with Lmod",
                     "bootstrap-os")

    def run(self) -> tuple[list[Finding], list[NotChecked]]:
        for check in self.all_checks():
            check()
        return self.findings, self.not_checked

    def all_checks(self) -> list[Callable[[], None]]:
        return [self.check_counts, self.check_names, self.check_instances, self.check_fsx,
                self.check_placeholders, self.check_ssh, self.check_imds, self.check_encryption,
                self.check_s3_access, self.check_networking, self.check_regions, self.check_bootstrap_os]


def _bucket_region(uri: str) -> tuple[str | None, str | None]:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        match = REGION_IN_NAME_RE.search(bucket)
        return bucket or None, match.group(1) if match else None
    match = HTTPS_S3_RE.match(parsed.netloc or "")
    if match:
        return match.group("bucket"), match.group("region")
    return None, None


def _strings(node: Any, keys: list[Any], namer: PathNamer) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, [*keys, str(key)], namer)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, [*keys, index], namer)
    elif isinstance(node, str):
        yield namer.join(keys), node


def hpctool_findings(config: Any) -> tuple[list[Finding], list[NotChecked]]:
    """Run every hpctool cross-check on a parsed config."""
    instances = catalog()
    checker = Checker(config, instances)
    findings, not_checked = checker.run()
    if instances is None:
        not_checked.append(NotChecked("hpctool:instances", "instance-type facts (vCPUs, memory, regional "
                                      "offering): moto's EC2 data is not installed (uv sync --group dev)"))
    return findings, not_checked
