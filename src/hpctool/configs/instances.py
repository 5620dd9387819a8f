"""Instance-type facts offline (vCPUs, memory, FPGA, instance store, regional offering).

From the EC2 data moto ships (``moto/ec2/resources``), read as files without importing moto, so
the facts come from AWS's own describe-instance-types output rather than a table kept by hand.
Without moto installed, :func:`catalog` returns None and the checks that need it say "not checked".
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    cores: int
    memory_mib: int
    fpga: bool
    instance_store_gb: int


class InstanceCatalog:
    def __init__(self, resources: Path) -> None:
        self.resources = resources
        with gzip.open(resources / "instance_types.json.gz", "rt") as handle:
            raw = json.load(handle)
        self.types = {
            name: InstanceType(
                name=name,
                vcpus=int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
                cores=int(info.get("VCpuInfo", {}).get("DefaultCores", 0)),
                memory_mib=int(info.get("MemoryInfo", {}).get("SizeInMiB", 0)),
                fpga="FpgaInfo" in info,
                instance_store_gb=int(info.get("InstanceStorageInfo", {}).get("TotalSizeInGB", 0)),
            )
            for name, info in raw.items()
        }
        self._offerings: dict[str, frozenset[str] | None] = {}

    def get(self, name: str) -> InstanceType | None:
        return self.types.get(name)

    def offered_in(self, region: str) -> frozenset[str] | None:
        """Instance types offered in ``region``; None if the data has no such region."""
        if region not in self._offerings:
            path = self.resources / "instance_type_offerings" / "region" / f"{region}.json.gz"
            if not path.is_file():
                self._offerings[region] = None
            else:
                with gzip.open(path, "rt") as handle:
                    self._offerings[region] = frozenset(o["InstanceType"] for o in json.load(handle))
        return self._offerings[region]


def moto_resources() -> Path | None:
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "ec2" / "resources"
    return path if (path / "instance_types.json.gz").is_file() else None


@lru_cache(maxsize=1)
def catalog() -> InstanceCatalog | None:
    resources = moto_resources()
    return InstanceCatalog(resources) if resources else None


@lru_cache(maxsize=1)
def known_regions() -> frozenset[str] | None:
    """Regions in EC2's offering data (moto's copy); None without moto."""
    resources = moto_resources()
    if resources is None:
        return None
    folder = resources / "instance_type_offerings" / "region"
    return frozenset(p.name.removesuffix(".json.gz") for p in folder.glob("*.json.gz"))
