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

from hpctool.configs.findings import ERROR, INFO, WARNING, Finding, NotChecked, PathNamer

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
_LEVELS = {"ERROR": ERROR, "WARNING": WARNING, "INFO": INFO}
_ID_RE = {"subnet": re.compile(r"^subnet-[0-9a-f]{8,17}$"), "sg": re.compile(r"^sg-[0-9a-f]{8,17}$"),
          "ami": re.compile(r"^ami-[0-9a-f]{8,17}$")}


def run_deep(config: dict, cluster_name: str = "hpctool", timeout: float = 180) -> tuple[list[Finding],
                                                                                      list[NotChecked], list[str]]:
    """Run the child and return (findings, not checked, validators that ran)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        done = subprocess.run([sys.executable, "-m", "hpctool.configs.deep"], input=json.dumps(
            {"config": config, "cluster_name": cluster_name}), capture_output=True, text=True, timeout=timeout,
            env=env, check=False)
    except subprocess.TimeoutExpired:
        return [], [NotChecked("pcluster:validators", f"ParallelCluster's validators did not finish in "
                               f"{timeout:.0f} s under moto")], []
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [], [NotChecked("pcluster:validators", f"ParallelCluster's validators could not run under moto: "
                               f"{tail}")], []
    findings = [Finding(**f) for f in result["findings"]]
    not_checked = [NotChecked(**n) for n in result["not_checked"]]
    return findings, not_checked, result["ran"]


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

    renames = {"queues": "SlurmQueues"}  # the one attribute whose YAML key is not its PascalCase
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


def _run_validators(config: dict, cluster_name: str) -> dict[str, Any]:
    import moto

    region = config["Region"]
    with moto.mock_aws():
        renamed = _stub_account(config, region)
        text = json.dumps(config)
        for original, created in renamed.items():
            text = text.replace(json.dumps(original), json.dumps(created))
        stubbed_config = json.loads(text)

        from pcluster.config.common import Resource, TypeMatchValidatorsSuppressor, ValidatorContext
        from pcluster.schemas.cluster_schema import ClusterSchema

        model = ClusterSchema(cluster_name=cluster_name).load(stubbed_config)
        paths = _resource_paths(model, config)
        ran: dict[str, list[tuple[Any, str]]] = {}
        current: list[str] = [""]
        original_validate_self = Resource._validate_self
        original_execute = Resource._validator_execute

        # Why patch private methods: pcluster's results carry no path; these two hooks are where a
        # validator meets the resource it checks, so each result can name its YAML path.
        def validate_self(resource: Any, context: Any, suppressors: Any) -> None:
            current.append(paths.get(id(resource), ""))
            try:
                original_validate_self(resource, context, suppressors)
            finally:
                current.pop()

        def execute(validator_class: Any, args: Any, suppressors: Any, executor: Any) -> Any:
            path = current[-1]
            ran.setdefault(validator_class.__name__, [])
            result = original_execute(validator_class, args, suppressors, executor)
            if result is None or isinstance(result, list):
                for failure in result or []:
                    failure.hpctool_path = path
                return result

            async def tagged() -> Any:
                failures = await result
                for failure in failures or []:
                    failure.hpctool_path = path
                return failures

            return tagged()

        Resource._validate_self = validate_self
        Resource._validator_execute = staticmethod(execute)
        try:
            failures = model.validate({TypeMatchValidatorsSuppressor(set(SUPPRESSED))}, ValidatorContext())
        finally:
            Resource._validate_self = original_validate_self
            Resource._validator_execute = staticmethod(original_execute)

    back = {created: original for original, created in renamed.items()}
    findings, not_checked = [], []
    for failure in failures:
        message = str(failure.message)
        for created, original in back.items():
            message = message.replace(created, original)
        kind = failure.validator_type
        if kind in STUBBED or kind in SUPPRESSED:
            continue  # listed below as not checked; a stub's verdict says nothing about the account
        path = getattr(failure, "hpctool_path", "") or _path_from_message(message, config)
        findings.append(Finding(_LEVELS.get(str(failure.level), ERROR), path, message, f"ParallelCluster's {kind}: fix the value at this "
                                "path (see the ParallelCluster configuration reference)", f"{DEEP_CHECK}:{kind}"))
    for kind in SUPPRESSED:
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", "needs your AWS account (suppressed offline, as "
                                      "`pcluster create-cluster --suppress-validators` allows)"))
    for kind in sorted(set(ran) & set(STUBBED)):
        not_checked.append(NotChecked(f"{DEEP_CHECK}:{kind}", f"{STUBBED[kind]}: checked only against stubs "
                                      "in moto, needs your AWS account"))
    return {"findings": [f.to_dict() for f in findings], "not_checked": [n.to_dict() for n in not_checked],
            "ran": sorted(ran)}


def _path_from_message(message: str, config: dict) -> str:
    """Validators registered on the whole cluster name the queue in their message; use it."""
    namer = PathNamer(config)
    queues = (config.get("Scheduling") or {}).get("SlurmQueues") or []
    queue = re.search(r"queue '([^']+)'", message)
    resource = re.search(r"ComputeResource '([^']+)'", message)
    for q_index, item in enumerate(queues):
        if queue and isinstance(item, dict) and item.get("Name") == queue.group(1):
            path = namer.join(["Scheduling", "SlurmQueues", q_index])
            for r_index, res in enumerate(item.get("ComputeResources") or []):
                if resource and isinstance(res, dict) and res.get("Name") == resource.group(1):
                    return f"{path}.ComputeResources[{r_index}]"
            return path
    return "(top level)"


def _child_main() -> int:
    request = json.load(sys.stdin)
    config, cluster_name = request["config"], request["cluster_name"]
    from importlib.metadata import version

    with tempfile.TemporaryDirectory(prefix="hpctool-deep-") as scratch:
        amis = os.path.join(scratch, "amis.json")
        with open(amis, "w") as handle:
            json.dump(_ami_stubs(config, version("aws-parallelcluster")), handle)
        os.environ.update({
            "MOTO_AMIS_PATH": amis,  # read by moto at import: set before the first `import moto`
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": config["Region"], "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        result = _run_validators(config, cluster_name)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
