"""The price snapshot: on-demand and recent spot prices per instance type and region, storage per
GB-month, spot interruption bands; shipped as package data, refreshed from AWS on request.

The shipped snapshot (``data/prices.json``) is dated; a refresh (`hpctool cost prices --refresh`)
writes a copy with the refreshed region under ``$HPCTOOL_HOME/prices.json``, which wins over the
shipped one from then on. Every price carries the date of the region it comes from, so whoever
prints a price can print its date.
"""

from __future__ import annotations

import bisect
import json
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from hpctool.errors import ConfigError
from hpctool.home import home

HOURS_PER_MONTH = 730.0  # AWS bills a month as 730 hours
SNAPSHOT_NAME = "prices.json"
# The Price List API names regions by code in the `regionCode` attribute; its endpoint is us-east-1.
PRICING_REGION = "us-east-1"


def user_snapshot_path() -> Path:
    """Where a refreshed snapshot is kept: ``$HPCTOOL_HOME/prices.json``."""
    return home() / SNAPSHOT_NAME


def parse_time(text: str) -> datetime | None:
    """A timestamp as sacct or AWS writes it (naive times are taken as UTC); None when unknown."""
    if not text or text in {"Unknown", "None", "N/A"}:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class InstancePrice:
    instance_type: str
    region: str
    vcpus: int
    memory_gib: float
    on_demand: float  # USD per hour
    spot: tuple[tuple[datetime, float], ...]  # (since, USD per hour), oldest first; empty: no spot offer
    interruption_band: str | None
    date: str

    def spot_at(self, when: datetime | None = None) -> float | None:
        """The spot price in force at ``when`` (the latest known when None or after the last point)."""
        if not self.spot:
            return None
        if when is None:
            return self.spot[-1][1]
        index = bisect.bisect_right(self.spot, (when, math.inf)) - 1
        return self.spot[max(index, 0)][1]

    def hourly(self, spot: bool, when: datetime | None = None) -> float:
        if spot:
            price = self.spot_at(when)
            if price is None:
                raise ConfigError(f"{self.instance_type} has no spot price in {self.region} (snapshot {self.date})",
                                  "it is not offered as spot there: use an on-demand queue for it")
            return price
        return self.on_demand


@dataclass(frozen=True)
class DatabasePrice:
    instance_class: str
    hourly: float  # USD per instance-hour, Single-AZ
    gp3_gib_month: float
    secret_month: float  # the Secrets Manager secret holding its password
    date: str
    source: str
    note: str  # set when the price is another region's


class PriceBook:
    """Prices from one snapshot (parsed JSON)."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.data = data
        self.origin = origin
        self.regions: dict[str, dict[str, Any]] = data.get("regions", {})
        self._cache: dict[tuple[str, str], InstancePrice] = {}

    @property
    def date(self) -> str:
        return str(self.data.get("date", "unknown"))

    def _region(self, region: str) -> dict[str, Any]:
        if region not in self.regions:
            raise ConfigError(f"no prices for region {region} in the snapshot ({self.origin})",
                              f"regions in it: {', '.join(sorted(self.regions))}; "
                              f"or run `hpctool cost prices --refresh --region {region}`")
        return self.regions[region]

    def region_date(self, region: str) -> str:
        return str(self._region(region).get("date", self.date))

    def instance(self, instance_type: str, region: str) -> InstancePrice:
        key = (instance_type, region)
        if key not in self._cache:
            entry = self._region(region)["ec2"].get(instance_type)
            if entry is None:
                raise ConfigError(f"no price for {instance_type} in {region} (snapshot {self.region_date(region)})",
                                  f"run `hpctool cost prices --refresh --region {region} --type {instance_type}`")
            spot = tuple(sorted((parse_time(t), float(p)) for t, p in entry.get("spot", [])))
            self._cache[key] = InstancePrice(instance_type, region, int(entry["vcpus"]), float(entry["memory_gib"]),
                                             float(entry["on_demand"]), spot, entry.get("interruption_band"),
                                             self.region_date(region))
        return self._cache[key]

    def instance_types(self, region: str) -> list[str]:
        return sorted(self._region(region)["ec2"])

    def storage(self, kind: str, storage_class: str, region: str) -> float:
        """USD per GB-month of ``kind`` (ebs, efs, fsx_lustre, s3) in one class or tier."""
        table = self._region(region)["storage"].get(kind, {})
        if storage_class not in table:
            raise ConfigError(f"no {kind} price for {storage_class!r} in {region}",
                              f"known: {', '.join(sorted(table))}")
        return float(table[storage_class])

    def database(self, instance_class: str, region: str, engine: str = "mysql") -> DatabasePrice:
        """An RDS instance's price per hour and its gp3 storage's per GB-month. RDS figures are a
        snapshot of their own (``rds``: date, source); a region without them takes us-east-1's, and
        says so in ``note``."""
        note = ""
        table = self._region(region).get("rds")
        if table is None and region != "us-east-1" and "rds" in self.regions.get("us-east-1", {}):
            table, note = self.regions["us-east-1"]["rds"], f"us-east-1's RDS prices (none for {region} in the snapshot)"
        if table is None:
            raise ConfigError(f"no RDS prices for {region} in the snapshot ({self.origin})",
                              "the shipped snapshot has them for us-east-1 and us-west-2")
        hourly = table.get(engine, {}).get(instance_class)
        if hourly is None:
            raise ConfigError(f"no RDS for {engine} price for {instance_class} (snapshot {table.get('date')})",
                              f"known classes: {', '.join(sorted(table.get(engine, {})))}")
        return DatabasePrice(instance_class, float(hourly), float(table["storage"]["gp3"]),
                             float(table.get("secret_month", 0.0)), str(table.get("date")), str(table.get("source", "")),
                             note)

    def s3_request(self, name: str, region: str) -> float:
        return float(self._region(region).get("s3_requests", {}).get(name, 0.0))

    def interruption_rate_per_hour(self, instance_type: str, region: str) -> float:
        """The hazard rate of a spot interruption, from the type's monthly frequency band
        (the Spot Instance Advisor's bands; the middle of each band)."""
        band = self.instance(instance_type, region).interruption_band
        monthly = float(self.data.get("interruption_bands", {}).get(band, 0.0)) if band else 0.0
        return -math.log(1.0 - monthly) / HOURS_PER_MONTH if monthly else 0.0


def shipped_snapshot() -> dict[str, Any]:
    return json.loads(resources.files("hpctool.cost").joinpath("data", SNAPSHOT_NAME).read_text())


def load(path: str | Path | None = None) -> PriceBook:
    """The snapshot at ``path``, else the refreshed one in ``$HPCTOOL_HOME``, else the shipped one."""
    candidate = Path(path) if path is not None else user_snapshot_path()
    try:
        text = candidate.read_text() if path is not None or candidate.is_file() else None
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ConfigError(f"{candidate}: no such price snapshot", "give a file written by `cost prices --refresh`") \
            from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{candidate}: not a readable price snapshot: {_reason(exc)}",
                          "give a file written by `cost prices --refresh`, or delete it to fall back to the "
                          "shipped snapshot") from exc
    if text is None:
        return PriceBook(shipped_snapshot(), "shipped snapshot")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        data = exc
    if not isinstance(data, dict) or not isinstance(data.get("regions"), dict):
        raise ConfigError(f"{candidate}: not a readable price snapshot (JSON with a regions mapping)",
                          "give a file written by `cost prices --refresh`, or delete it to fall back to the "
                          "shipped snapshot")
    return PriceBook(data, str(candidate))


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    return "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc.strerror or exc)


# -- refresh from AWS -------------------------------------------------------------------------
def on_demand_from_product(product: dict[str, Any]) -> tuple[str, int, float, float]:
    """(instance type, vCPUs, memory GiB, USD per hour) from one Price List product record."""
    attributes = product["product"]["attributes"]
    prices = [float(dim["pricePerUnit"]["USD"])
              for term in product.get("terms", {}).get("OnDemand", {}).values()
              for dim in term.get("priceDimensions", {}).values()
              if dim.get("unit") == "Hrs" and "USD" in dim.get("pricePerUnit", {})]
    if not prices:
        raise ConfigError(f"the Price List record of {attributes.get('instanceType')} has no hourly on-demand price",
                          "the filters matched a reservation or a non-Linux product")
    memory = float(attributes.get("memory", "0 GiB").split()[0].replace(",", ""))
    return attributes["instanceType"], int(attributes.get("vcpu", 0)), memory, max(prices)


def on_demand_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """Price List filters that match exactly one product: Linux, shared tenancy, no licence, used capacity."""
    wanted = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
              "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
              "licenseModel": "No License required"}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in wanted.items()]


def spot_points(records: Iterable[dict[str, Any]], days: int = 7) -> list[list[Any]]:
    """Daily spot points from EC2's price history (every zone): the median over zones of each
    zone's last price of the day; the price a price-capacity-optimized fleet tends to pay."""
    by_day: dict[str, dict[str, tuple[datetime, float]]] = {}
    for record in records:
        when = record["timestamp"]
        day = when.astimezone(UTC).strftime("%Y-%m-%d")
        zone = by_day.setdefault(day, {})
        if record["az"] not in zone or zone[record["az"]][0] <= when:
            zone[record["az"]] = (when, float(record["price"]))
    days_sorted = sorted(by_day)[-days:]
    return [[f"{day}T00:00:00Z", round(statistics.median(p for _, p in by_day[day].values()), 6)]
            for day in days_sorted]


def refresh(book: PriceBook, region: str, instance_types: list[str] | None,
            products: Callable[[str, list[dict[str, str]]], list[dict[str, Any]]],
            spot_history: Callable[[str, list[str], datetime], list[dict[str, Any]]],
            now: datetime | None = None, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """A new snapshot: ``book``'s data with ``region``'s instance prices fetched anew (storage prices
    are kept from the snapshot). ``products`` and ``spot_history`` are hpctool.aws's calls."""
    now = now or datetime.now(UTC)
    data = json.loads(json.dumps(book.data))
    region_data = data.setdefault("regions", {}).setdefault(region, {"ec2": {}, "storage": {}})
    # A new region starts from us-east-1's storage prices, marked as such.
    if not region_data.get("storage") and "us-east-1" in data["regions"]:
        region_data["storage"] = data["regions"]["us-east-1"]["storage"]
        region_data["storage_note"] = "copied from us-east-1"
    types = instance_types or sorted(region_data.get("ec2", {})) or sorted(data["regions"]["us-east-1"]["ec2"])
    history = spot_history(region, types, now - timedelta(days=7))
    for instance_type in types:
        progress(f"{region} {instance_type}: Price List")
        found = products("AmazonEC2", on_demand_filters(instance_type, region))
        if not found:
            raise ConfigError(f"the Price List has no Linux on-demand price for {instance_type} in {region}",
                              "check the instance type's name and that it is offered in that region")
        name, vcpus, memory, price = on_demand_from_product(found[0])
        entry = region_data["ec2"].setdefault(name, {})
        entry.update({"vcpus": vcpus, "memory_gib": memory, "on_demand": round(price, 5)})
        points = spot_points(r for r in history if r["instance_type"] == name)
        if points:
            entry["spot"] = points
        else:
            entry.pop("spot", None)
    region_data["date"] = now.strftime("%Y-%m-%d")
    data["date"] = max(str(data.get("date", "")), region_data["date"])
    return data


def refresh_from_aws(region: str, instance_types: list[str] | None = None, book: PriceBook | None = None,
                     progress: Callable[[str], None] = lambda _: None, pricing_client: Any = None,
                     ec2_client: Any = None) -> Path:
    """Fetch ``region``'s instance prices from AWS and save the snapshot as ``$HPCTOOL_HOME/prices.json``."""
    from hpctool import aws
    from hpctool.atomic import write_atomic

    book = book or load()
    data = refresh(book, region, instance_types,
                   lambda code, filters: aws.price_list_products(code, filters, pricing_client=pricing_client),
                   lambda reg, types, start: aws.spot_price_history(reg, types, start, ec2_client=ec2_client),
                   progress=progress)
    target = user_snapshot_path()
    write_atomic(target, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return target
