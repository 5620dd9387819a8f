"""Storage tiering for genomics data: S3 lifecycle rules per data class, the EFS lifecycle, and what
they save on a bucket's current objects.

Data classes live under prefixes (S3 lifecycle filters match prefixes and tags, not suffixes):

| class | default prefixes | rule | why |
| --- | --- | --- | --- |
| fastq | fastq/ | Deep Archive after 30 days | raw reads are re-read only to reprocess; keep them, cheaply |
| alignments | bam/ cram/ | Intelligent-Tiering at once, archive tiers at 90/180 days | read in bursts, unpredictably |
| variants | vcf/ | none: Standard | small and read all the time |
| scratch | scratch/ tmp/ | expire after 7 days | intermediate files a rerun makes again |

plus a bucket-wide rule that aborts multipart uploads left incomplete for 7 days.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpctool.cluster.queues import load_yaml
from hpctool.cost.prices import PriceBook
from hpctool.errors import ConfigError, UsageError

GIB = 1024**3  # S3 and EFS bill a "GB" of 2^30 bytes
IT_MIN_MONITORED_BYTES = 128 * 1024  # smaller objects stay in the frequent tier and are not monitored
IT_CONFIG_ID = "hpctool-archive-tiers"


@dataclass(frozen=True)
class DataClass:
    name: str
    prefixes: tuple[str, ...]
    action: str  # archive, intelligent-tiering, keep, expire
    days: int
    explanation: str


DEFAULT_CLASSES = (
    DataClass("fastq", ("fastq/",), "archive", 30,
              "raw reads are read once to align and again only to reprocess: Deep Archive after 30 days "
              "($0.00099/GB-month; 180-day minimum, restores take up to 12 h)"),
    DataClass("alignments", ("bam/", "cram/"), "intelligent-tiering", 0,
              "BAM/CRAM are re-read in bursts nobody can predict: Intelligent-Tiering from day 0 moves them to "
              "cheaper tiers after 30 days unread, to Archive Access at 90 and Deep Archive Access at 180"),
    DataClass("variants", ("vcf/",), "keep", 0,
              "VCFs are small and queried all the time: kept in Standard, no rule"),
    DataClass("scratch", ("scratch/", "tmp/"), "expire", 7,
              "intermediate files a rerun recreates: deleted after 7 days"),
)
ABORT_MULTIPART_DAYS = 7


@dataclass(frozen=True)
class Rule:
    data_class: str
    rule: dict[str, Any] | None  # the S3 lifecycle rule, None for a class kept as it is
    explanation: str


@dataclass
class Plan:
    bucket: str
    base_prefix: str
    rules: list[Rule]
    intelligent_tiering: dict[str, Any] | None
    efs_policies: list[dict[str, str]] = field(default_factory=list)
    efs_explanations: list[str] = field(default_factory=list)

    @property
    def s3_rules(self) -> list[dict[str, Any]]:
        return [r.rule for r in self.rules if r.rule is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "base_prefix": self.base_prefix,
                "rules": [asdict(r) for r in self.rules], "intelligent_tiering": self.intelligent_tiering,
                "efs": {"lifecycle_policies": self.efs_policies, "explanations": self.efs_explanations}}


def s3_rules(base_prefix: str = "", classes: Sequence[DataClass] = DEFAULT_CLASSES) -> list[Rule]:
    """The lifecycle rules of every data class under ``base_prefix``, each with its explanation."""
    rules: list[Rule] = []
    for data_class in classes:
        for prefix in data_class.prefixes:
            full = base_prefix + prefix
            rule_id = f"hpctool-{data_class.name}-{prefix.strip('/').replace('/', '-')}"
            body: dict[str, Any] = {"ID": rule_id, "Filter": {"Prefix": full}, "Status": "Enabled"}
            if data_class.action == "archive":
                body["Transitions"] = [{"Days": data_class.days, "StorageClass": "DEEP_ARCHIVE"}]
            elif data_class.action == "intelligent-tiering":
                body["Transitions"] = [{"Days": data_class.days, "StorageClass": "INTELLIGENT_TIERING"}]
            elif data_class.action == "expire":
                body["Expiration"] = {"Days": data_class.days}
            elif data_class.action == "keep":
                rules.append(Rule(data_class.name, None, f"{full}: {data_class.explanation}"))
                continue
            else:
                raise ConfigError(f"data class {data_class.name}: unknown action {data_class.action!r}",
                                  "use archive, intelligent-tiering, keep or expire")
            rules.append(Rule(data_class.name, body, f"{full}: {data_class.explanation}"))
    rules.append(Rule("incomplete uploads", {
        "ID": "hpctool-abort-incomplete-uploads", "Filter": {"Prefix": base_prefix}, "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}},
        f"{base_prefix or '(whole bucket)'}: parts of uploads that never finished are billed and invisible; "
        f"aborted after {ABORT_MULTIPART_DAYS} days"))
    return rules


def intelligent_tiering_config(base_prefix: str = "") -> dict[str, Any]:
    """The bucket's opt-in archive tiers for Intelligent-Tiering objects (90 and 180 days unread)."""
    config: dict[str, Any] = {"Id": IT_CONFIG_ID, "Status": "Enabled",
                              "Tierings": [{"Days": 90, "AccessTier": "ARCHIVE_ACCESS"},
                                           {"Days": 180, "AccessTier": "DEEP_ARCHIVE_ACCESS"}]}
    if base_prefix:
        config["Filter"] = {"Prefix": base_prefix}
    return config


def efs_lifecycle(throughput_mode: str) -> tuple[list[dict[str, str]], list[str]]:
    """EFS lifecycle policies and why: IA after 30 days, back on first access; Archive after 90 days
    only with Elastic throughput (EFS refuses it otherwise)."""
    policies = [{"TransitionToIA": "AFTER_30_DAYS"}, {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"}]
    why = ["files unread for 30 days move to Infrequent Access (about 1/19 of Standard's price per GB)",
           "a file read again moves back to Standard, so home directories in use stay fast"]
    if throughput_mode == "elastic":
        policies.append({"TransitionToArchive": "AFTER_90_DAYS"})
        why.append("files unread for 90 days move to Archive (half of IA's price)")
    else:
        why.append(f"no Archive tier: it needs Elastic throughput and this file system is {throughput_mode}")
    return policies, why


def from_config(config: str | Path) -> tuple[str, str, str]:
    """(results bucket, its prefix, EFS throughput mode) from a ParallelCluster config: the bucket the
    head node may write to, as hpctool's templates grant it."""
    data = load_yaml(config)
    access = _get(_get(_get(data, "HeadNode"), "Iam"), "S3Access")
    writable = [a for a in access if isinstance(a, dict) and a.get("EnableWriteAccess") and a.get("BucketName")] \
        if isinstance(access, list) else []
    if not writable:
        raise ConfigError(f"{config}: no S3 bucket the cluster writes to (HeadNode.Iam.S3Access)",
                          "give --bucket and --prefix")
    bucket = str(writable[0]["BucketName"])
    prefix = str(writable[0].get("KeyName", "")).rstrip("*")
    mode = "bursting"
    storage = _get(data, "SharedStorage")
    for item in storage if isinstance(storage, list) else []:
        if isinstance(item, dict) and item.get("StorageType") == "Efs":
            settings = _get(item, "EfsSettings")
            mode = str(settings.get("ThroughputMode", "bursting")) if isinstance(settings, dict) else mode
    return bucket, prefix, mode


def _get(node: Any, key: str) -> Any:
    """``node[key]`` of a config that may have anything where a mapping belongs (then: an empty one)."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if value is not None else {}


# S3's rules for bucket names (general purpose buckets): what the API would refuse, refused before it is asked.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def plan(bucket: str | None = None, base_prefix: str | None = None, config: str | Path | None = None,
         throughput_mode: str | None = None) -> Plan:
    config_bucket = config_prefix = None
    mode = throughput_mode or "bursting"
    if config is not None:
        config_bucket, config_prefix, config_mode = from_config(config)
        mode = throughput_mode or config_mode
    bucket = bucket or config_bucket
    if not bucket:
        raise UsageError("no bucket", "give --bucket or --config CLUSTER.yaml")
    if not BUCKET_NAME.fullmatch(bucket):
        raise UsageError(f"{bucket!r} is not an S3 bucket name",
                         "3 to 63 lower-case letters, digits, dots and hyphens; the name only, without s3://")
    prefix = base_prefix if base_prefix is not None else (config_prefix or "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    policies, why = efs_lifecycle(mode)
    return Plan(bucket, prefix, s3_rules(prefix), intelligent_tiering_config(prefix), policies, why)


# -- what it saves ----------------------------------------------------------------------------------
def classify(key: str, base_prefix: str, classes: Sequence[DataClass] = DEFAULT_CLASSES) -> DataClass | None:
    for data_class in classes:
        if any(key.startswith(base_prefix + p) for p in data_class.prefixes):
            return data_class
    return None


def _it_tier(age_days: float) -> str:
    """The Intelligent-Tiering tier of an object unread since it was written (the archive tiers opted in)."""
    if age_days >= 180:
        return "INTELLIGENT_TIERING/deep_archive"
    if age_days >= 90:
        return "INTELLIGENT_TIERING/archive"
    if age_days >= 30:
        return "INTELLIGENT_TIERING/infrequent"
    return "INTELLIGENT_TIERING/frequent"


def _current_tier(storage_class: str, age_days: float, size: int) -> str:
    if storage_class == "INTELLIGENT_TIERING":
        return _it_tier(age_days) if size >= IT_MIN_MONITORED_BYTES else "INTELLIGENT_TIERING/frequent"
    return storage_class


@dataclass
class ClassReport:
    data_class: str
    objects: int = 0
    gib: float = 0.0
    now_monthly: float = 0.0
    with_rules_monthly: float = 0.0
    transitions_once: float = 0.0  # lifecycle transition requests, paid once

    @property
    def saving(self) -> float:
        return self.now_monthly - self.with_rules_monthly


@dataclass
class Report:
    bucket: str
    region: str
    price_date: str
    as_of: str
    classes: list[ClassReport]

    @property
    def now_monthly(self) -> float:
        return sum(c.now_monthly for c in self.classes)

    @property
    def with_rules_monthly(self) -> float:
        return sum(c.with_rules_monthly for c in self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "region": self.region, "price_date": self.price_date, "as_of": self.as_of,
                "classes": [{**asdict(c), "saving": c.saving} for c in self.classes],
                "now_monthly": self.now_monthly, "with_rules_monthly": self.with_rules_monthly,
                "saving": self.now_monthly - self.with_rules_monthly,
                "transitions_once": sum(c.transitions_once for c in self.classes)}


def report(objects: Iterable[dict[str, Any]], book: PriceBook, region: str, bucket: str, base_prefix: str = "",
           now: datetime | None = None, classes: Sequence[DataClass] = DEFAULT_CLASSES) -> Report:
    """Monthly storage cost of ``objects`` (an S3 listing: key, size, last_modified, storage_class) as they
    are, and once the rules have acted on them by ``now`` (objects unread since written)."""
    now = now or datetime.now(UTC)
    rows: dict[str, ClassReport] = {}
    monitoring = book.s3_request("INTELLIGENT_TIERING/monitoring_per_1000_objects_month", region) / 1000
    for item in objects:
        data_class = classify(item["key"], base_prefix, classes)
        name = data_class.name if data_class else "other"
        row = rows.setdefault(name, ClassReport(name))
        size, storage_class = int(item["size"]), item.get("storage_class", "STANDARD")
        age = (now - item["last_modified"]).total_seconds() / 86400
        gib = size / GIB
        tier = _current_tier(storage_class, age, size)
        now_cost = gib * book.storage("s3", tier, region)
        if storage_class == "INTELLIGENT_TIERING" and size >= IT_MIN_MONITORED_BYTES:
            now_cost += monitoring
        after, target = now_cost, None
        if data_class is not None and storage_class == "STANDARD":
            if data_class.action == "archive" and age >= data_class.days:
                target = "DEEP_ARCHIVE"
                after = gib * book.storage("s3", target, region)
            elif data_class.action == "intelligent-tiering" and age >= data_class.days:
                target = "INTELLIGENT_TIERING"
                monitored = size >= IT_MIN_MONITORED_BYTES
                after = gib * book.storage("s3", _it_tier(age) if monitored else "INTELLIGENT_TIERING/frequent",
                                           region) + (monitoring if monitored else 0.0)
            elif data_class.action == "expire" and age >= data_class.days:
                after = 0.0
        row.objects += 1
        row.gib += gib
        row.now_monthly += now_cost
        row.with_rules_monthly += after
        if target is not None:
            row.transitions_once += book.s3_request(f"transition_per_1000/{target}", region) / 1000
    order = [c.name for c in classes] + ["other"]
    ordered = [rows[n] for n in order if n in rows]
    return Report(bucket, region, book.region_date(region), now.strftime("%Y-%m-%d"), ordered)


def apply(plan_: Plan, efs_id: str | None = None, region: str | None = None,
          s3_client: Any = None, efs_client: Any = None) -> dict[str, Any]:
    """Put the bucket's lifecycle rules and Intelligent-Tiering archive tiers (replacing its rules), and
    the EFS lifecycle when ``efs_id`` is given; return what AWS now holds."""
    from hpctool import aws

    # The bucket's other rules are kept: only hpctool's own (by ID) are replaced.
    kept = [r for r in aws.s3_lifecycle_rules(plan_.bucket, s3_client=s3_client)
            if not str(r.get("ID", "")).startswith("hpctool-")]
    aws.put_s3_lifecycle(plan_.bucket, kept + plan_.s3_rules, plan_.intelligent_tiering, s3_client=s3_client)
    result: dict[str, Any] = {"bucket": plan_.bucket,
                              "rules": aws.s3_lifecycle_rules(plan_.bucket, s3_client=s3_client)}
    if efs_id:
        result["efs"] = aws.put_efs_lifecycle(efs_id, plan_.efs_policies, region=region, efs_client=efs_client)
    return result


def report_bucket(bucket: str, base_prefix: str, book: PriceBook, region: str, now: datetime | None = None,
                  s3_client: Any = None) -> Report:
    """:func:`report` on the bucket's listing under ``base_prefix``."""
    from hpctool import aws

    objects = aws.s3_objects(bucket, base_prefix, s3_client=s3_client)
    return report(objects, book, region, bucket, base_prefix, now)
