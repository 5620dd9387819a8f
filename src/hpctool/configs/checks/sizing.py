"""The checks of sizes and names: node counts, queue and compute resource names, instance types,
the head node's memory, FSx for Lustre capacities (ParallelCluster's own rules, offline)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pcluster.constants import (
    DEFAULT_MAX_COUNT,
    MIN_MEMORY_ABSOLUTE_DIFFERENCE,
    MIN_MEMORY_PRECENTAGE_DIFFERENCE,
)
from pcluster.validators.cluster_validators import NAME_MAX_LENGTH, NAME_REGEX

from hpctool.configs.checks.registry import (
    Config,
    Issue,
    as_dict,
    as_int,
    as_list,
    check,
    instance_types,
)
from hpctool.configs.findings import ERROR, WARNING

# FSx for Lustre capacity steps, as pcluster.validators.fsx_validators.FsxStorageCapacityValidator has them.
FSX_SCRATCH_1 = (1200, 2400, 3600)  # 1200, 2400 or a multiple of 3600 GiB
FSX_SSD = (1200, 2400)  # SCRATCH_2, PERSISTENT_1/2 SSD: 1200 or a multiple of 2400 GiB
FSX_HDD = {12: 6000, 40: 1800}  # PERSISTENT_1 HDD: multiples of 6000 (12 MB/s/TiB) or 1800 (40 MB/s/TiB) GiB


@check("counts")
def counts(config: Config) -> Iterator[Issue]:
    for path, _, resource in config.compute_resources():
        low, high = as_int(resource.get("MinCount")), as_int(resource.get("MaxCount"))
        if low is not None and high is not None and low > high:
            yield Issue(ERROR, f"{path}.MinCount", f"MinCount {low} is greater than MaxCount {high}",
                        "MinCount is the number of static nodes and must be <= MaxCount")


@check("names")
def names(config: Config) -> Iterator[Issue]:
    queues = as_list(as_dict(config.get("Scheduling")).get("SlurmQueues"))
    yield from _unique(queues, "Scheduling.SlurmQueues", "queue")
    for q_path, queue in config.queues():
        yield from _name_format(queue.get("Name"), f"{q_path}.Name", "queue")
        resources = as_list(queue.get("ComputeResources"))
        yield from _unique(resources, f"{q_path}.ComputeResources", "compute resource")
        for index, resource in enumerate(resources):
            if isinstance(resource, dict):
                yield from _name_format(resource.get("Name"), f"{q_path}.ComputeResources[{index}].Name",
                                        "compute resource")


def _unique(items: list, list_path: str, what: str) -> Iterator[Issue]:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item.get("Name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            yield Issue(ERROR, f"{list_path}[{index}].Name", f"{what} name {name!r} is used twice "
                        f"(also {list_path}[{seen[name]}])", f"give every {what} its own name")
        else:
            seen[name] = index


def _name_format(name: Any, path: str, what: str) -> Iterator[Issue]:
    # ParallelCluster's own rule (its NameValidator runs only with AWS access); Slurm node
    # names are built from it: <queue>-st-<resource>-<n>.
    if not isinstance(name, str):
        return
    if not re.match(NAME_REGEX, name) or len(name) > NAME_MAX_LENGTH or name == "default":
        yield Issue(ERROR, path, f"{what} name {name!r} is not a valid Slurm/ParallelCluster name",
                    f"start with a lowercase letter, then lowercase letters, digits and hyphens, at most "
                    f"{NAME_MAX_LENGTH} characters, not 'default'")


@check("instances")
def instances(config: Config) -> Iterator[Issue]:
    for path, _, resource in config.compute_resources():
        types, key = instance_types(resource)
        smt_off = resource.get("DisableSimultaneousMultithreading") is True
        yield from _instance_facts(config, types, f"{path}.{key}", smt_off)
    head_type = as_dict(config.get("HeadNode")).get("InstanceType")
    if isinstance(head_type, str):
        yield from _instance_facts(config, [head_type], "HeadNode.InstanceType", False)


def _instance_facts(config: Config, types: list[str], path: str, smt_off: bool) -> Iterator[Issue]:
    if config.instances is None:
        return
    known = []
    for name in types:
        info = config.instances.get(name)
        if info is None:
            yield Issue(ERROR, path, f"unknown instance type {name!r}",
                        "check the spelling (e.g. c7i.4xlarge); moto's EC2 data does not list it")
            continue
        known.append(info)
        offered = config.instances.offered_in(config.region) if config.region else None
        if offered is not None and name not in offered:
            level = ERROR if info.fpga else WARNING
            yield Issue(level, path, f"{name} is not offered in {config.region}",
                        "pick a region that offers it (FPGA types: e.g. us-east-1, us-west-2, eu-west-2) "
                        "or another instance type")
    # pcluster's InstancesCPUValidator: the same vCPUs, or the same cores when SMT is disabled.
    unit, count = ("cores", lambda i: i.cores) if smt_off else ("vCPUs", lambda i: i.vcpus)
    if all(count(i) > 0 for i in known) and len({count(i) for i in known}) > 1:  # 0: no data, no verdict
        sizes = ", ".join(f"{i.name}: {count(i)}" for i in known)
        yield Issue(ERROR, path, f"instance types of one compute resource differ in {unit} ({sizes})",
                    f"list only types with the same {unit} count; put other sizes in their own compute resource")
    # pcluster's InstancesMemorySchedulingWarningValidator: only with memory-based scheduling, and
    # only when the difference passes both of its thresholds (Slurm then sees the smallest memory).
    memories = [i.memory_mib for i in known]
    if config.memory_scheduling and len(known) > 1 and max(memories) - min(memories) > \
            MIN_MEMORY_ABSOLUTE_DIFFERENCE and (max(memories) - min(memories)) / min(memories) > \
            MIN_MEMORY_PRECENTAGE_DIFFERENCE:
        sizes = ", ".join(f"{i.name}: {i.memory_mib // 1024} GiB" for i in known)
        yield Issue(WARNING, path, f"instance types of one compute resource differ in memory ({sizes}) and "
                    "memory-based scheduling is on", "Slurm sees the smallest memory of the list; group types "
                    "of the same memory")


@check("head-node-memory")
def head_node_memory(config: Config) -> Iterator[Issue]:
    # pcluster's HeadNodeMemorySizeValidator (it runs only with --deep): 0.6 GB for the OS plus
    # 1 GB per 25 compute nodes, capped at 16 GB; MaxCount defaults to DEFAULT_MAX_COUNT.
    head_type = as_dict(config.get("HeadNode")).get("InstanceType")
    info = config.instances.get(head_type) if config.instances and isinstance(head_type, str) else None
    if info is None:
        return
    total = 0
    for _, _, resource in config.compute_resources():
        count = as_int(resource.get("MaxCount"))
        total += DEFAULT_MAX_COUNT if count is None else max(count, 0)
    required = min(total / 25 + 0.6, 16)
    memory_gb = info.memory_mib / 1024
    if memory_gb < required:
        yield Issue(ERROR, "HeadNode.InstanceType", f"head node {head_type} has {memory_gb:g} GB of memory; "
                    f"{total} compute nodes (sum of MaxCount) need at least {required:g} GB",
                    "choose a head node instance type with more memory (ParallelCluster's "
                    "HeadNodeMemorySizeValidator) or lower MaxCount")


@check("fsx")
def fsx(config: Config) -> Iterator[Issue]:
    # The rules of pcluster's FsxStorageCapacityValidator, offline: not checked for an existing
    # file system or a backup, and HDD sizes go by PerUnitStorageThroughput.
    storages = as_list(config.get("SharedStorage"))
    for index, storage in enumerate(storages):
        settings = as_dict(as_dict(storage).get("FsxLustreSettings"))
        capacity = as_int(settings.get("StorageCapacity"))
        if capacity is None or settings.get("FileSystemId") or settings.get("BackupId"):
            continue
        deployment = settings.get("DeploymentType", "SCRATCH_2")  # the schema's default
        hdd = settings.get("StorageType") == "HDD"
        throughput = as_int(settings.get("PerUnitStorageThroughput"))
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
            path = config.namer.item("SharedStorage", storages, index)
            kind = f"{deployment} HDD" if hdd and deployment == "PERSISTENT_1" else deployment
            yield Issue(ERROR, f"{path}.FsxLustreSettings.StorageCapacity",
                        f"FSx {kind} capacity {capacity} GiB is not a valid size", f"use {rule}")
