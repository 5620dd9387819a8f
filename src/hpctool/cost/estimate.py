"""`hpctool cost estimate CLUSTER.yaml`: what a ParallelCluster config costs per hour and per month.

Compute is per queue and compute resource, per node-hour and at MaxCount, on-demand and spot
(what the queue pays is the one its CapacityType says); the head node and the shared storage run
all month, and so does the Slurm accounting database when the config has one (sized as hpctool's
stack deploys it unless told). A resource with several instance types is given from its cheapest to
its dearest type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hpctool.cluster.queues import load_yaml, slurm_queues
from hpctool.configs.database import parameter_defaults
from hpctool.cost.prices import HOURS_PER_MONTH, PriceBook
from hpctool.errors import ConfigError

DEFAULT_ROOT_VOLUME_GIB = 40  # ParallelCluster's default root volume (Ubuntu/Alinux AMIs)
DEFAULT_EFS_GIB = 100  # EFS bills what is stored; the config cannot say, so assume this unless told


@dataclass(frozen=True)
class ResourceEstimate:
    queue: str
    resource: str
    capacity_type: str
    instance_types: tuple[str, ...]
    max_count: int
    on_demand_low: float
    on_demand_high: float
    spot_low: float | None
    spot_high: float | None
    node_hourly: float  # what one node costs the queue per hour (its capacity type, the dearest type)
    max_hourly: float  # at MaxCount


@dataclass(frozen=True)
class StorageEstimate:
    name: str
    kind: str
    detail: str
    gib: float
    per_gib_month: float
    monthly: float


@dataclass(frozen=True)
class DatabaseEstimate:
    """The Slurm accounting database (SlurmSettings.Database) as hpctool's stack deploys it."""

    instance_class: str
    multi_az: bool
    gib: float
    hourly: float  # the instance (both of them with Multi-AZ)
    monthly: float  # instance all month, storage and the password's secret
    price_date: str
    price_source: str
    note: str


@dataclass(frozen=True)
class Estimate:
    source: str
    region: str
    price_date: str
    price_origin: str
    head_node_type: str
    head_node_hourly: float
    head_node_monthly: float  # instance all month plus its root volume
    resources: list[ResourceEstimate]
    storage: list[StorageEstimate]
    database: DatabaseEstimate | None = None

    @property
    def fixed_monthly(self) -> float:
        return self.head_node_monthly + sum(s.monthly for s in self.storage) + \
            (self.database.monthly if self.database else 0.0)

    @property
    def max_hourly(self) -> float:
        return sum(r.max_hourly for r in self.resources)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fixed_monthly"] = round(self.fixed_monthly, 4)
        data["compute_max_hourly"] = round(self.max_hourly, 4)
        return data


def _storage(item: dict[str, Any], book: PriceBook, region: str, efs_gib: float) -> StorageEstimate:
    kind = item.get("StorageType", "")
    name = str(item.get("Name", kind))
    if kind == "Efs":
        price = book.storage("efs", "standard", region)
        return StorageEstimate(name, "efs", f"standard, {efs_gib:g} GiB assumed stored", efs_gib, price,
                               efs_gib * price)
    if kind == "FsxLustre":
        settings = item.get("FsxLustreSettings") or {}
        if settings.get("FileSystemId"):
            return StorageEstimate(name, "fsx_lustre", "existing file system (billed outside this cluster)", 0, 0, 0)
        deployment = str(settings.get("DeploymentType", "SCRATCH_2"))
        tier = deployment if deployment.startswith("SCRATCH") else \
            f"{deployment}/{settings.get('PerUnitStorageThroughput', 125 if deployment == 'PERSISTENT_2' else 200)}"
        gib = float(settings.get("StorageCapacity", 1200))
        price = book.storage("fsx_lustre", tier, region)
        return StorageEstimate(name, "fsx_lustre", tier, gib, price, gib * price)
    if kind == "Ebs":
        settings = item.get("EbsSettings") or {}
        gib = float(settings.get("Size", 35))
        price = book.storage("ebs", str(settings.get("VolumeType", "gp3")), region)
        return StorageEstimate(name, "ebs", str(settings.get("VolumeType", "gp3")), gib, price, gib * price)
    raise ConfigError(f"shared storage {name}: StorageType {kind!r} is not priced",
                      "hpctool prices Efs, FsxLustre and Ebs shared storage")


@dataclass(frozen=True)
class DatabaseSize:
    """What the config cannot say about its database: by default the shipped stack's parameters."""

    instance_class: str
    gib: float
    multi_az: bool = False

    @classmethod
    def shipped(cls) -> DatabaseSize:
        defaults = parameter_defaults()
        return cls(str(defaults["InstanceClass"]), float(defaults["AllocatedStorageGiB"]),
                   str(defaults["MultiAZ"]) == "true")


def _database(data: dict[str, Any], book: PriceBook, region: str, size: DatabaseSize | None) -> DatabaseEstimate | None:
    settings = ((data.get("Scheduling") or {}).get("SlurmSettings") or {})
    if not settings.get("Database"):
        return None  # no accounting (validate warns), or ExternalSlurmdbd: a database of its own
    size = size or DatabaseSize.shipped()
    price = book.database(size.instance_class, region)
    copies = 2 if size.multi_az else 1  # Multi-AZ: a standby instance and its storage
    hourly = price.hourly * copies
    monthly = hourly * HOURS_PER_MONTH + size.gib * price.gp3_gib_month * copies + price.secret_month
    return DatabaseEstimate(size.instance_class, size.multi_az, size.gib, hourly, monthly, price.date, price.source,
                            price.note)


def estimate(config: str | Path, book: PriceBook, efs_gib: float = DEFAULT_EFS_GIB,
             database: DatabaseSize | None = None) -> Estimate:
    data = load_yaml(config)
    queues = slurm_queues(data, str(config))
    region = str(data.get("Region", "us-east-1"))
    resources = []
    for queue in queues:
        for resource in queue.compute_resources:
            found = [book.instance(t, region) for t in resource.instance_types]
            on_demand = [p.on_demand for p in found]
            spot = [p.spot_at() for p in found]
            spot_known = [s for s in spot if s is not None]
            if queue.is_spot and len(spot_known) < len(spot):
                missing = [p.instance_type for p, s in zip(found, spot, strict=True) if s is None]
                raise ConfigError(f"queue {queue.name}: no spot price for {', '.join(missing)} in {region}",
                                  "they are not offered as spot there; move them to an on-demand queue")
            node = max(spot_known) if queue.is_spot else max(on_demand)
            resources.append(ResourceEstimate(
                queue.name, resource.name, queue.capacity_type, resource.instance_types, resource.max_count,
                min(on_demand), max(on_demand), min(spot_known) if spot_known else None,
                max(spot_known) if spot_known else None, node, node * resource.max_count))
    head = data.get("HeadNode") or {}
    head_type = head.get("InstanceType")
    if not head_type:
        raise ConfigError(f"{config}: HeadNode.InstanceType is missing", "give the head node an instance type")
    head_price = book.instance(head_type, region).on_demand
    root_gib = float(((head.get("LocalStorage") or {}).get("RootVolume") or {}).get("Size", DEFAULT_ROOT_VOLUME_GIB))
    head_monthly = head_price * HOURS_PER_MONTH + root_gib * book.storage("ebs", "gp3", region)
    storage = [_storage(item, book, region, efs_gib) for item in data.get("SharedStorage") or []]
    return Estimate(str(config), region, book.region_date(region), book.origin, head_type, head_price, head_monthly,
                    resources, storage, _database(data, book, region, database))
