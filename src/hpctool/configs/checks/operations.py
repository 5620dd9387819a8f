"""The checks of how a cluster runs: data in the cluster's region, an OS hpctool's bootstrap
supports, spot queues that can fail over and requeue, scale-down and boot timeouts that fit a
node's boot (what aws-parallelcluster's autoscaling issues 5731, 6641, 5670, 7577, 5919 taught)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlparse

from hpctool.configs.checks.registry import (
    Config,
    Issue,
    as_dict,
    as_int,
    as_list,
    check,
    instance_types,
)
from hpctool.configs.findings import WARNING, NotChecked

TYPICAL_BOOT_MINUTES = 5
MIN_BOOTSTRAP_TIMEOUT_S = 600
REGION_IN_NAME_RE = re.compile(r"(?<![a-z])((?:af|ap|ca|eu|il|me|mx|sa|us)-(?:gov-)?"
                               r"(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-\d)(?!\d)")
HTTPS_S3_RE = re.compile(r"^(?P<bucket>[^.]+)\.s3[.-](?P<region>[a-z0-9-]+)\.amazonaws\.com$")


@check("region")
def region(config: Config) -> Iterator[Issue | NotChecked]:
    unknown: set[str] = set()
    for path, uri in _s3_references(config):
        bucket, where = _bucket_region(uri)
        if not bucket:
            continue
        if where is None:
            unknown.add(bucket)
        elif config.region and where != config.region:
            yield Issue(WARNING, path, f"bucket {bucket} looks like it is in {where}, the cluster in "
                        f"{config.region}", "keep data and compute in one region: cross-region transfer is "
                        "slower and billed per GB")
    if unknown:
        yield NotChecked("hpctool:region", f"region of bucket(s) {', '.join(sorted(unknown))}: an s3:// URI does "
                         "not name its region; needs s3:GetBucketLocation on your account")


def _s3_references(config: Config) -> Iterator[tuple[str, str]]:
    for path, value in config.strings():
        if value.startswith(("s3://", "https://")) and (".amazonaws.com" in value or value.startswith("s3://")):
            yield path, value
        elif path.endswith("S3Access") or re.search(r"S3Access\[\d+\]\.BucketName$", path):
            yield path, f"s3://{value}"


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


@check("bootstrap-os")
def bootstrap_os(config: Config) -> Iterator[Issue]:
    # hpctool's bootstrap installs Lmod from the OS (Ubuntu) or EPEL (RHEL, Rocky); Amazon
    # Linux 2023 has no Lmod package, so its nodes would fail the lmod step unless the AMI has it.
    image = as_dict(config.get("Image"))
    if image.get("Os") != "alinux2023" or image.get("CustomAmi"):
        return
    scripts = [as_dict(as_dict(as_dict(config.get("HeadNode")).get("CustomActions")).get("OnNodeConfigured"))]
    scripts += [as_dict(as_dict(q.get("CustomActions")).get("OnNodeConfigured")) for _, q in config.queues()]
    if any(str(s.get("Script", "")).endswith("/on-node-configured.sh") for s in scripts):
        yield Issue(WARNING, "Image.Os", "Amazon Linux 2023 has no Lmod package: hpctool's bootstrap "
                    "(step lmod) will fail on its nodes",
                    "use ubuntu2204, ubuntu2404, rocky9 or rhel9, or set Image.CustomAmi to an AMI with Lmod")


def _spot_queues(config: Config) -> Iterator[tuple[str, dict]]:
    return ((path, queue) for path, queue in config.queues() if queue.get("CapacityType") == "SPOT")


@check("spot-failover")
def spot_failover(config: Config) -> Iterator[Issue]:
    for q_path, queue in _spot_queues(config):
        resources = [r for r in as_list(queue.get("ComputeResources")) if isinstance(r, dict)]
        types = {t for r in resources for t in instance_types(r)[0]}
        if resources and len(types) == 1:
            where = "one compute resource" if len(resources) == 1 else f"{len(resources)} compute resources"
            yield Issue(WARNING, f"{q_path}.ComputeResources", f"spot queue with {where} and one instance type "
                        f"({next(iter(types))}): nowhere to fail over when EC2 has no spot capacity",
                        "add compute resources with other instance types (ParallelCluster's fast failover moves "
                        "jobs to another compute resource) or list several types under Instances; see "
                        "aws-parallelcluster issues 5670 (resume failures) and 5731")


@check("spot-requeue")
def spot_requeue(config: Config) -> Iterator[Issue]:
    for q_path, queue in _spot_queues(config):
        if config.memory_scheduling and queue.get("JobExclusiveAllocation") is True:
            yield Issue(WARNING, f"{q_path}.JobExclusiveAllocation", "exclusive allocation with memory-based "
                        "scheduling on a spot queue: a job requeued after a spot reclaim can stay pending with "
                        "BadConstraints", "turn off Scheduling.SlurmSettings.EnableMemoryBasedScheduling or "
                        "JobExclusiveAllocation here, or have jobs ask for whole nodes with -N/-c instead of "
                        "--exclusive; see aws-parallelcluster issues 6641 and 5731")


@check("scaledown")
def scaledown(config: Config) -> Iterator[Issue]:
    idle = config.slurm_settings.get("ScaledownIdletime")
    # A dynamic node takes minutes to boot and run its bootstrap (field reports: 2-5 min); powering it
    # down sooner than that after a job makes every next job wait a whole boot again.
    if as_int(idle) is not None and idle < TYPICAL_BOOT_MINUTES:
        yield Issue(WARNING, "Scheduling.SlurmSettings.ScaledownIdletime", f"ScaledownIdletime {idle} min is "
                    f"shorter than a typical node boot (~{TYPICAL_BOOT_MINUTES} min)", "idle nodes power down "
                    "before the next job arrives, and jobs keep waiting for boots; use 10 (the default) or more; "
                    "see aws-parallelcluster issues 5919 and 7577")
    timeouts = as_dict(as_dict(config.get("DevSettings")).get("Timeouts"))
    boot = as_int(timeouts.get("ComputeNodeBootstrapTimeout"))
    if boot is not None and boot < MIN_BOOTSTRAP_TIMEOUT_S:
        yield Issue(WARNING, "DevSettings.Timeouts.ComputeNodeBootstrapTimeout", f"ComputeNodeBootstrapTimeout "
                    f"{boot} s is Slurm's ResumeTimeout: nodes whose boot and OnNodeConfigured scripts take "
                    "longer are marked down and their jobs requeued", f"keep it at {MIN_BOOTSTRAP_TIMEOUT_S} s or "
                    "more (default 1800); see aws-parallelcluster issues 5919 (ResumeTimeout exceeded) and 7577 "
                    "(nodes stuck POWERED_DOWN+NOT_RESPONDING after a failed resume)")
