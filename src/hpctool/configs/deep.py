"""``validate --deep``: ParallelCluster's full validators against moto, with no AWS account.

Runs in a child process (``python -m hpctool.configs.deep``): moto reads ``MOTO_AMIS_PATH`` when
it is first imported, and the child's fake credentials and patched botocore never leak into the
caller. The child stubs in moto what the config refers to (subnets, security groups, key pair,
buckets, the bootstrap script, custom AMIs and the official ParallelCluster AMIs), so the
validators can run; the verdicts that only an account can give are reported as "not checked".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any
from urllib.parse import urlparse

from hpctool.configs.findings import INCOMPLETE, Finding, Level, NotChecked, PathNamer
from hpctool.configs.offline import no_network
from hpctool.configs.pcluster_hooks import traced_validators, validator_name

# Validators that need an account (dry-run launches, the key pair): suppressed, as `pcluster` lets one do.
SUPPRESSED = ("HeadNodeLaunchTemplateValidator", "ComputeResourceLaunchTemplateValidator", "KeyPairValidator")
# Validators whose verdict is about resources hpctool stubbed in moto: they run, but their "pass"
# proves nothing about the real account, so they are listed as not checked.
STUBBED = {
    "SubnetsValidator": "the subnets exist in your VPC",
    "QueueSubnetsValidator": "the queue subnets exist and are in distinct AZs of your VPC",
    "SingleInstanceTypeSubnetValidator": "the subnets' availability zones in your account",
    "SecurityGroupsValidator": "the security groups exist",
    "S3BucketValidator": "the buckets exist and are reachable",
    "S3BucketRegionValidator": "the buckets' regions",
    "UrlValidator": "the bootstrap script object exists in S3",
    "S3BucketUriValidator": "the S3 URIs point at existing objects",
    "AmiOsCompatibleValidator": "the custom AMIs exist and match Image.Os",
    "CustomAmiTagValidator": "the custom AMIs were built by ParallelCluster",
    "InstanceTypeBaseAMICompatibleValidator": "the AMI architecture matches the instance types",
    "ArchitectureOsValidator": "the official ParallelCluster AMI for this OS and architecture",
}
DEEP_CHECK = "pcluster"
# Resource attributes whose YAML key is not their PascalCase name (pcluster's schemas give data_key).
RENAMES = {"queues": "SlurmQueues", "settings": "SlurmSettings"}
# Validators registered on the whole cluster: the YAML path their verdict is about.
ROOT_PATHS = {
    "HeadNodeMemorySizeValidator": "HeadNode.InstanceType",
    "DcvValidator": "HeadNode.Dcv",
    "MultiAzEbsVolumeValidator": "SharedStorage",
    "MultiAzRootVolumeValidator": "HeadNode.Networking.SubnetId",
    "SchedulerOsValidator": "Image.Os",
    "RegionValidator": "Region",
    "ClusterNameValidator": "(cluster name)",
    "MaxCountValidator": "Scheduling.SlurmQueues",
    "DuplicateNameValidator": "Scheduling.SlurmQueues",
    "DuplicateMountDirValidator": "SharedStorage",
    "NumberOfStorageValidator": "SharedStorage",
    "ManagedFsxMultiAzValidator": "SharedStorage",
    "UnmanagedFsxMultiAzValidator": "SharedStorage",
    "EfsIdValidator": "SharedStorage",
    "FsxNetworkingValidator": "SharedStorage",
    "MultiNetworkInterfacesInstancesValidator": "Scheduling.SlurmQueues",
    "DeletionPolicyValidator": "SharedStorage",
    "SharedFileCacheNotHomeValidator": "SharedStorage",
    "SharedStorageMountDirValidator": "SharedStorage",
    "SharedStorageNameValidator": "SharedStorage",
    "SchedulerValidator": "Scheduling.Scheduler",
    "HostedZoneValidator": "Scheduling.SlurmSettings.Dns.HostedZoneId",
    "MixedSecurityGroupOverwriteValidator": "HeadNode.Networking.SecurityGroups",
    "SharedEbsPerformanceBottleNeckValidator": "SharedStorage",
    "RootVolumeSizeValidator": "HeadNode.LocalStorage.RootVolume.Size",
    "EbsVolumeIopsValidator": "HeadNode.LocalStorage.RootVolume",
    "EbsVolumeTypeSizeValidator": "HeadNode.LocalStorage.RootVolume",
    "InstanceTypeOSCompatibleValidator": "Image.Os",
    "EfaOsArchitectureValidator": "Image.Os",
    "ComputeResourceTagsValidator": "Tags",
}
_ID_RE = {"subnet": re.compile(r"^subnet-[0-9a-f]{8,17}$"), "sg": re.compile(r"^sg-[0-9a-f]{8,17}$"),
          "ami": re.compile(r"^ami-[0-9a-f]{8,17}$")}


def run_deep_many(configs: list[dict], suppress: list[str] | None = None, cluster_name: str = "hpctool",
                  timeout: float = 600) -> list[tuple[list[Finding], list[NotChecked], list[str]]]:
    """Run ParallelCluster's validators on ``configs`` (each with its Region set) in one child process.

    Returns, per config, (findings, not checked, validators that ran). When the child cannot run, every
    config gets an "incomplete" item: the verdict is then never "valid".
    """
    if not configs:
        return []
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    request = {"configs": configs, "cluster_name": cluster_name, "suppress": list(suppress or [])}
    try:
        done = subprocess.run([sys.executable, "-m", "hpctool.configs.deep"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return [([], [NotChecked("pcluster:validators", f"ParallelCluster's validators did not finish in "
                                 f"{timeout:.0f} s under moto", INCOMPLETE)], []) for _ in configs]
    try:
        results = json.loads(done.stdout)["results"]
    except (json.JSONDecodeError, KeyError, TypeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [([], [NotChecked("pcluster:validators", f"ParallelCluster's validators could not run under moto: "
                                 f"{tail}", INCOMPLETE)], []) for _ in configs]
    return [([Finding(**{**f, "level": Level(f["level"])}) for f in r["findings"]],
             [NotChecked(**n) for n in r["not_checked"]], r["ran"]) for r in results]


# --- the child process ---------------------------------------------------------------------------


def _strings(node: Any):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _ami_stubs(config: dict, version: str) -> list[dict]:
    """The official ParallelCluster AMIs of this release, plus the custom AMIs the config names."""
    from pcluster.constants import OS_TO_IMAGE_NAME_PART_MAP

    stubs = []
    base = {"state": "available", "public": True, "owner_id": "247102896272", "image_location": "amazon/stub",
            "root_device_type": "ebs", "root_device_name": "/dev/xvda", "image_type": "machine",
            "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-01-01T00:00:00.000Z"}
    for index, (os_name, part) in enumerate(sorted(OS_TO_IMAGE_NAME_PART_MAP.items())):
        for arch_index, arch in enumerate(("x86_64", "arm64")):
            stubs.append({**base, "ami_id": f"ami-{index:08x}{arch_index:09x}", "architecture": arch,
                          "name": f"aws-parallelcluster-{version}-{part}-{arch}-202501010000 2025-01-01T00-00-00.000Z",
                          "description": f"stub of the official {os_name} AMI"})
    for ami in sorted({s for s in _strings(config) if _ID_RE["ami"].match(s)}):
        stubs.append({**base, "ami_id": ami, "architecture": "x86_64", "public": False,
                      "owner_id": "123456789012", "name": f"custom-{ami}", "description": "stub of a custom AMI"})
    return stubs


def _stub_account(config: dict, region: str) -> dict[str, str]:
    """Create in moto what the config refers to; return {moto id: config id} for the messages."""
    from hpctool import aws  # late: moto must be patched in first

    ec2 = aws.client("ec2", region)
    s3 = aws.client("s3", region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
        ec2.modify_vpc_attribute(VpcId=vpc, **{attribute: {"Value": True}})
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    renamed: dict[str, str] = {}
    strings = set(_strings(config))
    for index, subnet in enumerate(sorted(s for s in strings if _ID_RE["subnet"].match(s))):
        created = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{index}.0/24",
                                    AvailabilityZone=zones[index % len(zones)])["Subnet"]["SubnetId"]
        renamed[subnet] = created
    for group in sorted(s for s in strings if _ID_RE["sg"].match(s)):
        renamed[group] = ec2.create_security_group(GroupName=group, Description="stub", VpcId=vpc)["GroupId"]
    key_name = (config.get("HeadNode") or {}).get("Ssh", {}).get("KeyName")
    if isinstance(key_name, str):
        ec2.create_key_pair(KeyName=key_name)
    buckets: dict[str, set[str]] = {}
    for value in strings:
        parsed = urlparse(value)
        if parsed.scheme == "s3" and parsed.netloc:
            buckets.setdefault(parsed.netloc, set()).add(parsed.path.lstrip("/"))
    for entry in _s3_access_entries(config):
        buckets.setdefault(entry, set())
    for bucket, keys in buckets.items():
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        for key in keys:
            if key and not key.endswith("/"):
                s3.put_object(Bucket=bucket, Key=key, Body=b"#!/bin/bash\n")
    return renamed


def _s3_access_entries(config: dict):
    places = [config.get("HeadNode") or {}] + list((config.get("Scheduling") or {}).get("SlurmQueues") or [])
    for place in places:
        for entry in ((place.get("Iam") or {}).get("S3Access") or []):
            if isinstance(entry.get("BucketName"), str) and entry["BucketName"] != "*":
                yield entry["BucketName"]


def _resource_paths(root: Any, config: dict) -> dict[int, str]:
    """YAML path of every resource object in ParallelCluster's model of the config."""
    from pcluster.config.common import Resource
    from pcluster.utils import to_pascal_case

    renames = RENAMES
    namer = PathNamer(config)
    paths: dict[int, str] = {id(root): ""}

    def walk(resource: Any, keys: list[Any]) -> None:
        for attribute, value in vars(resource).items():
            if attribute.startswith("_"):
                continue
            key = renames.get(attribute, to_pascal_case(attribute))
            if isinstance(value, Resource):
                paths.setdefault(id(value), namer.join([*keys, key]))
                walk(value, [*keys, key])
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, Resource):
                        paths.setdefault(id(item), namer.join([*keys, key, index]))
                        walk(item, [*keys, key, index])

    walk(root, [])
    return paths


def _run_validators(config: dict, cluster_name: str, suppress: list[str]) -> dict[str, Any]:
    import moto
    from pcluster.aws.aws_api import AWSApi
    from pcluster.aws.common import Cache

    region = config["Region"]
    AWSApi.reset()
    Cache.clear_all()
    with no_network(region) as attempts, moto.mock_aws():
        renamed = _stub_account(config, region)
        text = json.dumps(config)
        for original, created in renamed.items():
            text = text.replace(json.dumps(original), json.dumps(created))
        stubbed_config = json.loads(text)

        from pcluster.config.common import TypeMatchValidatorsSuppressor, ValidatorContext
        from pcluster.schemas.cluster_schema import ClusterSchema

        with traced_validators(attempts) as trace:
            try:
                model = ClusterSchema(cluster_name=cluster_name).load(stubbed_config)
            except Exception as error:  # noqa: BLE001 - pcluster builds its model with AWS lookups moto may lack
                reason = str(error) or type(error).__name__
                return {"findings": [], "ran": [], "not_checked": [NotChecked(
                    "pcluster:validators", "ParallelCluster could not build its model of this config under moto "
                    f"(it needs a lookup moto cannot answer: {_back(reason, renamed)[:300]}); none of its "
                    "validators ran", INCOMPLETE).to_dict()]}
            trace.paths.update(_resource_paths(model, config))
            failures = model.validate({TypeMatchValidatorsSuppressor(set(SUPPRESSED) | set(suppress))},
                                      ValidatorContext())

    findings, not_checked = [], []
    account_only: dict[str, str] = {kind: _back(lookups[0], renamed) for kind, lookups in trace.lookups.items()
                                    if kind not in STUBBED and kind not in SUPPRESSED}
    for failure in failures:
        message = _back(str(failure.message), renamed)
        kind = validator_name(failure.validator_type)
        if kind in STUBBED or kind in SUPPRESSED or kind in suppress:
            continue  # listed below as not checked; a stub's verdict says nothing about the account
        if kind in trace.lookups:
            account_only.setdefault(kind, _back(trace.lookups[kind][0], renamed))
            continue
        if "has not been implemented" in message or "NotImplemented" in message:
            account_only.setdefault(kind, message)  # a lookup moto cannot answer: only the account can
            continue
        # a validator registered on the whole cluster: the queue/compute resource its message names, else
        # the place it is about
        path = getattr(failure, "hpctool_path", "") or _path_from_message(message, config)
        if path == "(cluster)":
            path = ROOT_PATHS.get(kind, path)
        if any(f.path == path and f.message == message and f.check == f"{DEEP_CHECK}:{kind}" for f in findings):
            continue  # the same verdict registered twice (e.g. DcvValidator) is said once
        findings.append(Finding(Level.from_pcluster(failure.level), path, message, f"ParallelCluster's {kind}: fix "
                                "the value at this path (see the ParallelCluster configuration reference)",
                                f"{DEEP_CHECK}:{kind}"))
    for kind, reason in sorted(account_only.items()):
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", f"needs your AWS account: its lookup failed under "
                                      f"moto ({reason[:200]})"))
    for kind, reason in sorted(trace.crashed.items()):
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", f"could not run under moto ({reason[:200]})",
                                      INCOMPLETE))
    for kind in SUPPRESSED:
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", "needs your AWS account (suppressed offline, as "
                                      "`pcluster create-cluster --suppress-validators` allows)"))
    for kind in sorted(set(trace.ran) & set(STUBBED)):
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", f"{STUBBED[kind]}: checked only against stubs "
                                      "in moto, needs your AWS account"))
    return {"findings": [f.to_dict() for f in findings], "not_checked": [n.to_dict() for n in not_checked],
            "ran": sorted(set(trace.ran) - set(trace.crashed) - set(account_only))}


def _back(text: str, renamed: dict[str, str]) -> str:
    """Put the config's own ids back into a message that names moto's stand-ins."""
    for original, created in renamed.items():
        text = text.replace(created, original)
    return text


def _path_from_message(message: str, config: dict) -> str:
    """Validators registered on the whole cluster name the queue or compute resource in their message."""
    namer = PathNamer(config)
    queues = (config.get("Scheduling") or {}).get("SlurmQueues") or []

    def named(name: Any) -> bool:
        return isinstance(name, str) and bool(name) and re.search(
            rf"(?<![\w-]){re.escape(name)}(?![\w-])", message) is not None

    for q_index, item in enumerate(queues):
        if not isinstance(item, dict):
            continue
        for r_index, res in enumerate(item.get("ComputeResources") or []):
            if isinstance(res, dict) and named(res.get("Name")) and res.get("Name") != item.get("Name"):
                return f"{namer.join(['Scheduling', 'SlurmQueues', q_index])}.ComputeResources[{r_index}]"
    for q_index, item in enumerate(queues):
        if isinstance(item, dict) and named(item.get("Name")):
            return namer.join(["Scheduling", "SlurmQueues", q_index])
    return "(cluster)"


def _parse_managed_policies_once() -> None:
    """moto builds its ~1,300 AWS-managed policies again for every IAM backend it creates (about a dozen
    per config, 75,000 objects for four configs). Build them once per account in this child: the
    validators only read them (an AWS-managed policy's ARN has no region), so sharing is safe here."""
    from moto import settings
    from moto.iam import models

    built: dict[str, list] = {}

    def init_aws_policies(backend: Any) -> list:
        if not settings.load_iam_aws_managed_policies():
            return []
        if backend.account_id not in built:
            parsed = json.loads(models.aws_managed_policies_data)
            built[backend.account_id] = [models.AWSManagedPolicy.from_data(name, backend.account_id,
                                                                           backend.region_name, data)
                                         for name, data in parsed.items()]
        return list(built[backend.account_id])

    models.IAMBackend._init_aws_policies = init_aws_policies


def _seed_supported_regions() -> None:
    """pcluster's RegionValidator fetches its region list over https and falls back to the list it ships
    (``pcluster.utils.retrieve_supported_regions``); offline, use the shipped list from the start."""
    from importlib.resources import files

    from pcluster import utils

    shipped = files("pcluster") / "resources" / "supported-regions"
    utils.retrieve_supported_regions.cache = shipped.read_text(encoding="utf-8").split("\n")


def _child_main() -> int:
    request = json.load(sys.stdin)
    configs, cluster_name, suppress = request["configs"], request["cluster_name"], request.get("suppress", [])
    from importlib.metadata import version

    with tempfile.TemporaryDirectory(prefix="hpctool-deep-") as scratch:
        amis = os.path.join(scratch, "amis.json")
        stubs: dict[str, dict] = {}
        for config in configs:
            stubs.update({s["ami_id"]: s for s in _ami_stubs(config, version("aws-parallelcluster"))})
        with open(amis, "w") as handle:
            json.dump(list(stubs.values()), handle)
        os.environ.update({
            "MOTO_AMIS_PATH": amis,  # read by moto at import: set before the first `import moto`
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        _seed_supported_regions()
        _parse_managed_policies_once()
        results = []
        for config in configs:
            # moto's copy of the AWS-managed IAM policies (slow to load: only when the config names one)
            managed = any(v.startswith("arn:aws:iam::aws:policy/") for v in _strings(config))
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true" if managed else "false"
            try:
                results.append(_run_validators(config, cluster_name, suppress))
            except Exception as error:  # noqa: BLE001 - one config's failure must not hide the others' results
                missing = re.search(r"The (\w+) action has not been implemented", str(error))
                reason = (f"they need the AWS call {missing.group(1)}, which moto cannot answer (only your account "
                          "can: e.g. existing FSx volumes, capacity reservations)") if missing else \
                    f"{type(error).__name__}: {str(error)[:300]}"
                results.append({"findings": [], "ran": [], "not_checked": [NotChecked(
                    "pcluster:validators", f"ParallelCluster's validators could not run under moto: {reason}",
                    INCOMPLETE).to_dict()]})
    json.dump({"results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
