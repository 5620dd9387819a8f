"""hpctool's cross-checks: what ParallelCluster's schema does not catch, offline.

Each check reads the raw parsed YAML (any shape: the schema may have failed) and returns
findings with a YAML path; none of them raises on odd input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from pcluster.constants import (
    CIDR_ALL_IPS,
    DEFAULT_MAX_COUNT,
    MIN_MEMORY_ABSOLUTE_DIFFERENCE,
    MIN_MEMORY_PRECENTAGE_DIFFERENCE,
)
from pcluster.validators.cluster_validators import NAME_MAX_LENGTH, NAME_REGEX

from hpctool.configs.findings import ERROR, WARNING, Finding, NotChecked, PathNamer
from hpctool.configs.instances import InstanceCatalog, catalog

WORLD = {CIDR_ALL_IPS, "::/0"}
# FSx for Lustre capacity steps, as pcluster.validators.fsx_validators.FsxStorageCapacityValidator has them.
FSX_SCRATCH_1 = (1200, 2400, 3600)  # 1200, 2400 or a multiple of 3600 GiB
FSX_SSD = (1200, 2400)  # SCRATCH_2, PERSISTENT_1/2 SSD: 1200 or a multiple of 2400 GiB
FSX_HDD = {12: 6000, 40: 1800}  # PERSISTENT_1 HDD: multiples of 6000 (12 MB/s/TiB) or 1800 (40 MB/s/TiB) GiB
# Placeholders, by what they look like (not by any substring, so "todo-bucket" or JSON pass):
PLACEHOLDER_WORD_RE = re.compile(r"(?<![A-Za-z0-9])(REPLACE[_-]?ME|REPLACE[_-][A-Z_]+|CHANGE[_-]?ME|TODO|FIXME|TBD|"
                                 r"YOUR[_-][A-Z][A-Z_-]*|<[A-Za-z][A-Za-z0-9 _.-]*>)(?![a-z0-9])")
# A template marker: Jinja `{{ name }}` / `{% ... %}` or shell `${NAME}`; `{{"a": 1}}` JSON is not one.
TEMPLATE_RE = re.compile(r"\{\{\s*[A-Za-z_][\w.\[\]'\"]*\s*(\|[^{}]*)?\}\}|\{%-?\s*\w+.*?%\}|\$\{[A-Za-z_]\w*\}")
# ParallelCluster's own examples fill values with `String`/`string1` and x-masks (`subnet-xxxxxxxx`).
FILLER_RE = re.compile(r"^(?:[Ss]tring\d*|STRING)$|x{8}|^(?:subnet|sg|ami|vpc|fs|vol|snap)-x+$")
# Free-form values (JSON for Chef, Slurm settings, script arguments) where braces are content.
# Every hpctool check name (a finding's check is "hpctool:<name>"); `--suppress NAME` takes these.
CHECK_NAMES = frozenset({"counts", "names", "instances", "head-node-memory", "fsx", "placeholders", "ssh", "dcv",
                         "imds", "encryption", "least-privilege", "network", "region", "bootstrap-os",
                         "spot-failover", "spot-requeue", "scaledown"})
TYPICAL_BOOT_MINUTES = 5
MIN_BOOTSTRAP_TIMEOUT_S = 600
FREE_FORM_KEYS = {"ExtraChefAttributes", "CustomSlurmSettings", "Args"}
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
    def __init__(self, config: Any, instances: InstanceCatalog | None, region: str | None = None) -> None:
        self.config = config if isinstance(config, dict) else {}
        self.namer = PathNamer(self.config)
        self.instances = instances
        self.region = region or (self.config.get("Region") if isinstance(self.config.get("Region"), str) else None)
        self.slurm_settings = _dict(_dict(self.config.get("Scheduling")).get("SlurmSettings"))
        self.memory_scheduling = self.slurm_settings.get("EnableMemoryBasedScheduling") is True
        self.findings: list[Finding] = []
        self.not_checked: list[NotChecked] = []

    def add(self, level: str, path: str, message: str, hint: str, check: str) -> None:
        assert check in CHECK_NAMES, check  # a new check must be listed for --suppress
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

    @staticmethod
    def instance_types(resource: dict) -> tuple[list[str], str]:
        """The instance types of a compute resource and the key they are under."""
        if resource.get("InstanceType") is not None:
            types, key = [resource.get("InstanceType")], "InstanceType"
        else:
            types, key = [_dict(i).get("InstanceType") for i in _list(resource.get("Instances"))], "Instances"
        return [t for t in types if isinstance(t, str)], key

    def check_instances(self) -> None:
        for path, _, resource in self.compute_resources():
            types, key = self.instance_types(resource)
            smt_off = resource.get("DisableSimultaneousMultithreading") is True
            self._instance_facts(types, f"{path}.{key}", smt_off)
        head_type = _dict(self.config.get("HeadNode")).get("InstanceType")
        if isinstance(head_type, str):
            self._instance_facts([head_type], "HeadNode.InstanceType", False)
            self._head_node_memory(head_type)

    def _instance_facts(self, types: list[str], path: str, smt_off: bool) -> None:
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
        # pcluster's InstancesCPUValidator: the same vCPUs, or the same cores when SMT is disabled.
        unit, count = ("cores", lambda i: i.cores) if smt_off else ("vCPUs", lambda i: i.vcpus)
        if all(count(i) > 0 for i in known) and len({count(i) for i in known}) > 1:  # 0: no data, no verdict
            sizes = ", ".join(f"{i.name}: {count(i)}" for i in known)
            self.add(ERROR, path, f"instance types of one compute resource differ in {unit} ({sizes})",
                     f"list only types with the same {unit} count; put other sizes in their own compute resource",
                     "instances")
        # pcluster's InstancesMemorySchedulingWarningValidator: only with memory-based scheduling, and
        # only when the difference passes both of its thresholds (Slurm then sees the smallest memory).
        memories = [i.memory_mib for i in known]
        if self.memory_scheduling and len(known) > 1 and max(memories) - min(memories) > \
                MIN_MEMORY_ABSOLUTE_DIFFERENCE and (max(memories) - min(memories)) / min(memories) > \
                MIN_MEMORY_PRECENTAGE_DIFFERENCE:
            sizes = ", ".join(f"{i.name}: {i.memory_mib // 1024} GiB" for i in known)
            self.add(WARNING, path, f"instance types of one compute resource differ in memory ({sizes}) and "
                     "memory-based scheduling is on", "Slurm sees the smallest memory of the list; group types "
                     "of the same memory", "instances")

    def _head_node_memory(self, head_type: str) -> None:
        # pcluster's HeadNodeMemorySizeValidator (it runs only with --deep): 0.6 GB for the OS plus
        # 1 GB per 25 compute nodes, capped at 16 GB; MaxCount defaults to DEFAULT_MAX_COUNT.
        info = self.instances.get(head_type) if self.instances else None
        if info is None:
            return
        total = 0
        for _, _, resource in self.compute_resources():
            count = _int(resource.get("MaxCount"))
            total += DEFAULT_MAX_COUNT if count is None else max(count, 0)
        required = min(total / 25 + 0.6, 16)
        memory_gb = info.memory_mib / 1024
        if memory_gb < required:
            self.add(ERROR, "HeadNode.InstanceType", f"head node {head_type} has {memory_gb:g} GB of memory; "
                     f"{total} compute nodes (sum of MaxCount) need at least {required:g} GB",
                     "choose a head node instance type with more memory (ParallelCluster's "
                     "HeadNodeMemorySizeValidator) or lower MaxCount", "head-node-memory")

    def check_fsx(self) -> None:
        # The rules of pcluster's FsxStorageCapacityValidator, offline: not checked for an existing
        # file system or a backup, and HDD sizes go by PerUnitStorageThroughput.
        storages = _list(self.config.get("SharedStorage"))
        for index, storage in enumerate(storages):
            settings = _dict(_dict(storage).get("FsxLustreSettings"))
            capacity = _int(settings.get("StorageCapacity"))
            if capacity is None or settings.get("FileSystemId") or settings.get("BackupId"):
                continue
            deployment = settings.get("DeploymentType", "SCRATCH_2")  # the schema's default
            hdd = settings.get("StorageType") == "HDD"
            throughput = _int(settings.get("PerUnitStorageThroughput"))
            if deployment == "SCRATCH_1":
                ok, rule = capacity in FSX_SCRATCH_1[:2] or capacity % FSX_SCRATCH_1[2] == 0, \
                    "1200 or 2400 GiB, or a multiple of 3600 GiB"
            elif deployment == "PERSISTENT_1" and hdd:
                step = FSX_HDD.get(throughput or 0)
                if step is None:
                    continue  # pcluster's FsxPersistentOptionsValidator reports the throughput itself
                ok, rule = capacity % step == 0, f"a multiple of {step} GiB at {throughput} MB/s/TiB (HDD)"
            elif deployment in ("SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"):
                ok, rule = capacity == FSX_SSD[0] or capacity % FSX_SSD[1] == 0, "1200 GiB, or a multiple of 2400 GiB"
            else:
                continue
            if not ok or capacity <= 0:
                path = self.namer.item("SharedStorage", storages, index)
                kind = f"{deployment} HDD" if hdd and deployment == "PERSISTENT_1" else deployment
                self.add(ERROR, f"{path}.FsxLustreSettings.StorageCapacity",
                         f"FSx {kind} capacity {capacity} GiB is not a valid size", f"use {rule}", "fsx")

    def check_placeholders(self) -> None:
        for path, value in _strings(self.config, [], self.namer):
            reason = placeholder_reason(path, value)
            if reason:
                self.add(ERROR, path, f"placeholder left in the config ({reason}): {value[:80]!r}",
                         "replace it with your account's value (render with --set KEY=VALUE)", "placeholders")

    def check_ssh(self) -> None:
        # ParallelCluster's defaults (pcluster.config.cluster_config): HeadNode Ssh/Dcv AllowedIps default to
        # CIDR_ALL_IPS, a login pool without Ssh.AllowedIps inherits the head node's, and the rules only
        # apply to the security group ParallelCluster manages: with Networking.SecurityGroups the user's
        # own groups replace it (their rules cannot be seen offline).
        head = _dict(self.config.get("HeadNode"))
        head_own_groups = bool(_list(_dict(head.get("Networking")).get("SecurityGroups")))
        head_ssh = _dict(head.get("Ssh"))
        self._open_port("SSH (port 22)", head_ssh.get("AllowedIps"), "HeadNode.Ssh.AllowedIps", head_own_groups,
                        "ssh")
        self._dcv(_dict(head.get("Dcv")), "HeadNode.Dcv", head_own_groups)
        pools = _list(_dict(self.config.get("LoginNodes")).get("Pools"))
        for index, pool in enumerate(pools):
            pool = _dict(pool)
            path = self.namer.item("LoginNodes.Pools", pools, index)
            own = bool(_list(_dict(pool.get("Networking")).get("SecurityGroups")))
            allowed = _dict(pool.get("Ssh")).get("AllowedIps")
            if allowed is None and not head_own_groups:
                pass  # inherits the head node's AllowedIps: the head node's finding, if any, covers it
            else:
                self._open_port("SSH (port 22)", allowed if allowed is not None else head_ssh.get("AllowedIps"),
                                f"{path}.Ssh.AllowedIps", own, "ssh")
            self._dcv(_dict(pool.get("Dcv")), f"{path}.Dcv", own)
        if head_own_groups or _list(_dict(head.get("Networking")).get("AdditionalSecurityGroups")):
            self.not_checked.append(NotChecked("hpctool:open-ports", "the rules of your own security groups "
                                               "(HeadNode.Networking): no port (SSH, DCV, a web UI such as "
                                               "JupyterHub) should be open to 0.0.0.0/0, and head and compute "
                                               "nodes must reach each other (else nodes miss ResumeTimeout: "
                                               "aws-parallelcluster 5919); they cannot be seen offline"))

    def _open_port(self, what: str, allowed: Any, path: str, own_groups: bool, check: str) -> None:
        if own_groups:
            return  # ParallelCluster's managed group, and so AllowedIps, is replaced by the user's groups
        if allowed is None:
            self.add(WARNING, path, f"{what} AllowedIps is not set: ParallelCluster opens it to 0.0.0.0/0",
                     "set AllowedIps to your office/VPN CIDR or a prefix list", check)
        elif isinstance(allowed, str) and allowed.strip() in WORLD:
            self.add(WARNING, path, f"{what} is open to the whole internet ({allowed})",
                     "set AllowedIps to your office/VPN CIDR or a prefix list", check)

    def _dcv(self, dcv: dict, path: str, own_groups: bool) -> None:
        # DCV is a web server (port 8443 by default): pcluster's DcvValidator warns only under --deep.
        if dcv.get("Enabled") is True:
            port = _int(dcv.get("Port")) or 8443
            self._open_port(f"DCV's web port ({port})", dcv.get("AllowedIps"), f"{path}.AllowedIps", own_groups,
                            "dcv")

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
                if not isinstance(settings, dict) or settings.get("FileSystemId") or settings.get("VolumeId"):
                    continue
                # pcluster's schema defaults: SharedEbs encrypted=True, SharedEfs encrypted=False.
                encrypted = settings.get("Encrypted", key == "EbsSettings")
                if encrypted is not True:
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

    def check_autoscaling(self) -> None:
        """What aws-parallelcluster's autoscaling issues taught (5731, 6641, 5670, 7577, 5919)."""
        for q_path, queue in self.queues():
            if queue.get("CapacityType") != "SPOT":
                continue
            resources = [r for r in _list(queue.get("ComputeResources")) if isinstance(r, dict)]
            types = {t for r in resources for t in self.instance_types(r)[0]}
            if resources and len(types) == 1:
                where = "one compute resource" if len(resources) == 1 else f"{len(resources)} compute resources"
                self.add(WARNING, f"{q_path}.ComputeResources", f"spot queue with {where} and one instance type "
                         f"({next(iter(types))}): nowhere to fail over when EC2 has no spot capacity",
                         "add compute resources with other instance types (ParallelCluster's fast failover moves "
                         "jobs to another compute resource) or list several types under Instances; see "
                         "aws-parallelcluster issues 5670 (resume failures) and 5731", "spot-failover")
            if self.memory_scheduling and queue.get("JobExclusiveAllocation") is True:
                self.add(WARNING, f"{q_path}.JobExclusiveAllocation", "exclusive allocation with memory-based "
                         "scheduling on a spot queue: a job requeued after a spot reclaim can stay pending with "
                         "BadConstraints", "turn off Scheduling.SlurmSettings.EnableMemoryBasedScheduling or "
                         "JobExclusiveAllocation here, or have jobs ask for whole nodes with -N/-c instead of "
                         "--exclusive; see aws-parallelcluster issues 6641 and 5731", "spot-requeue")
        idle = self.slurm_settings.get("ScaledownIdletime")
        # A dynamic node takes minutes to boot and run its bootstrap (field reports: 2-5 min); powering it
        # down sooner than that after a job makes every next job wait a whole boot again.
        if _int(idle) is not None and idle < TYPICAL_BOOT_MINUTES:
            self.add(WARNING, "Scheduling.SlurmSettings.ScaledownIdletime", f"ScaledownIdletime {idle} min is "
                     f"shorter than a typical node boot (~{TYPICAL_BOOT_MINUTES} min)", "idle nodes power down "
                     "before the next job arrives, and jobs keep waiting for boots; use 10 (the default) or more; "
                     "see aws-parallelcluster issues 5919 and 7577", "scaledown")
        timeouts = _dict(_dict(self.config.get("DevSettings")).get("Timeouts"))
        boot = _int(timeouts.get("ComputeNodeBootstrapTimeout"))
        if boot is not None and boot < MIN_BOOTSTRAP_TIMEOUT_S:
            self.add(WARNING, "DevSettings.Timeouts.ComputeNodeBootstrapTimeout", f"ComputeNodeBootstrapTimeout "
                     f"{boot} s is Slurm's ResumeTimeout: nodes whose boot and OnNodeConfigured scripts take "
                     "longer are marked down and their jobs requeued", f"keep it at {MIN_BOOTSTRAP_TIMEOUT_S} s or "
                     "more (default 1800); see aws-parallelcluster issues 5919 (ResumeTimeout exceeded) and 7577 "
                     "(nodes stuck POWERED_DOWN+NOT_RESPONDING after a failed resume)", "scaledown")

    def run(self) -> tuple[list[Finding], list[NotChecked]]:
        for check in self.all_checks():
            check()
        return self.findings, self.not_checked

    def all_checks(self) -> list[Callable[[], None]]:
        return [self.check_counts, self.check_names, self.check_instances, self.check_fsx,
                self.check_placeholders, self.check_ssh, self.check_imds, self.check_encryption,
                self.check_s3_access, self.check_networking, self.check_regions, self.check_bootstrap_os,
                self.check_autoscaling]


def placeholder_reason(path: str, value: str) -> str | None:
    """Why ``value`` at ``path`` looks like a placeholder, or None.

    Template markers count anywhere except in free-form fields (JSON for Chef, Slurm settings, script
    arguments), where only a value that is nothing but a marker counts; JSON text never does.
    """
    keys = {part.split("[")[0] for part in path.split(".")}
    text = value.strip()
    if keys & FREE_FORM_KEYS:
        whole = TEMPLATE_RE.fullmatch(text)
        return "an unrendered template marker" if whole else None
    if text[:1] in "{[":
        try:
            json.loads(text)
            return None  # JSON content, braces and all
        except ValueError:
            pass
    if TEMPLATE_RE.search(text):
        return "an unrendered template marker"
    if PLACEHOLDER_WORD_RE.search(text):
        return "a placeholder word"
    if FILLER_RE.search(text):
        return "an example filler value"
    return None


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


def hpctool_findings(config: Any, region: str | None = None) -> tuple[list[Finding], list[NotChecked]]:
    """Run every hpctool cross-check on a parsed config."""
    instances = catalog()
    checker = Checker(config, instances, region)
    findings, not_checked = checker.run()
    if instances is None:
        not_checked.append(NotChecked("hpctool:instances", "instance-type facts (vCPUs, memory, regional "
                                      "offering): moto's EC2 data is not installed (uv sync --group dev)"))
    return findings, not_checked
