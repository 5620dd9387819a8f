"""Do two VCFs hold the same variants? Record-level concordance, and recall against a truth set.

Records are matched on CHROM, POS, REF and ALT; matched records must agree on every sample's
GT and on the fields asked for (``QUAL``, ``FILTER``, ``INFO/KEY``, ``FORMAT/KEY``). Header
lines that carry dates or command lines differ between any two runs, so they are ignored; other
header differences are reported but do not decide the result: the records do.

Written here rather than taken from a library because the field's tools either need a compiled
htslib binding (pysam, cyvcf2) or answer a different question (``bcftools isec`` matches sites,
not genotypes and fields). Plain and bgzipped VCF are read with the standard library; a VCF is
held in memory, which suits per-sample and cohort VCFs of targeted and test runs.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hpctool.errors import VcfError

FIXED_COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
# `##fileDate=`, `##bcftools_callCommand=...; Date=...`, `##GATKCommandLine=<...>`, ...
_VOLATILE_HEADER = re.compile(r"^##(fileDate=|[^=]*[Cc]ommand(Line)?[=.]|[^=]*=.*\bDate=)")
_FIELD = re.compile(r"^(QUAL|FILTER|ID|(INFO|FORMAT)/[A-Za-z0-9_.]+)$")


@dataclass(frozen=True)
class Record:
    chrom: str
    pos: int
    ref: str
    alt: str
    qual: str
    filter: str
    id: str
    info: dict[str, str]
    format: dict[str, dict[str, str]]  # sample -> FORMAT key -> value

    @property
    def key(self) -> tuple[str, int, str, str]:
        return (self.chrom, self.pos, self.ref, self.alt)


@dataclass
class Vcf:
    name: str
    meta: list[str]
    samples: list[str]
    records: list[Record]


@dataclass(frozen=True)
class Difference:
    kind: str  # only_in_a, only_in_b, genotype, field
    chrom: str
    pos: int
    ref: str
    alt: str
    detail: str

    def __str__(self) -> str:
        return f"{self.chrom}:{self.pos} {self.ref}>{self.alt}  {self.kind}: {self.detail}"


@dataclass
class Concordance:
    a: str
    b: str
    records_a: int
    records_b: int
    identical: int
    discordant: int
    by_kind: dict[str, int]
    samples_a: list[str]
    samples_b: list[str]
    fields: list[str]
    differences: list[Difference] = field(default_factory=list)  # the first few
    header_differences: list[str] = field(default_factory=list)

    @property
    def samples_match(self) -> bool:
        return self.samples_a == self.samples_b

    @property
    def concordant(self) -> bool:
        return self.discordant == 0 and self.samples_match

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["concordant"] = self.concordant
        data["differences"] = [asdict(d) for d in self.differences]
        return data


# -- reading ---------------------------------------------------------------------------------
def read_vcf_text(path: str | Path) -> str:
    """The text of a plain or bgzipped VCF; :class:`VcfError` says why it cannot be read."""
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            magic = handle.read(2)
        if magic == b"\x1f\x8b":  # gzip and bgzip (a series of gzip members) alike
            with gzip.open(file, "rt", encoding="utf-8") as handle:
                return handle.read()
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VcfError(f"{file}: no such file", "check the path") from None
    except IsADirectoryError:
        raise VcfError(f"{file}: is a folder, not a VCF", "give the path of a .vcf or .vcf.gz file") from None
    except PermissionError:
        raise VcfError(f"{file}: permission denied", "check the file's permissions") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise VcfError(f"{file}: compressed data is truncated or corrupt ({error})",
                       "the file may still be being written, or was copied only in part") from None
    except UnicodeDecodeError:
        raise VcfError(f"{file}: not text (nor gzip/bgzip)", "is this a VCF? BCF must be converted with "
                       "`bcftools view -Ov`") from None


def parse_vcf(text: str, name: str = "VCF") -> Vcf:
    """Header lines, sample names and records of a VCF's text."""
    meta: list[str] = []
    samples: list[str] | None = None
    records: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("##"):
            meta.append(line)
            continue
        if line.startswith("#"):
            columns = line[1:].split("\t")
            if columns[:8] != FIXED_COLUMNS:
                raise VcfError(f"{name}, line {number}: the #CHROM header line does not have the 8 VCF columns",
                               "is this a VCF?")
            samples = columns[9:]
            continue
        if samples is None:
            raise VcfError(f"{name}, line {number}: a record before the #CHROM header line",
                           "is this a VCF? (the header is missing or the file is not a VCF)")
        records.append(_parse_record(line, samples, name, number))
    if samples is None:
        raise VcfError(f"{name}: no #CHROM header line", "is this a VCF? (empty or not a VCF)")
    return Vcf(name=name, meta=meta, samples=samples, records=records)


def _parse_record(line: str, samples: list[str], name: str, number: int) -> Record:
    values = line.split("\t")
    expected = 8 + (1 + len(samples) if samples else 0)
    if len(values) < 8 or (samples and len(values) != expected):
        raise VcfError(f"{name}, line {number}: {len(values)} columns, expected {expected}",
                       "the file is truncated or not tab-separated")
    if not values[1].isdigit():
        raise VcfError(f"{name}, line {number}: POS {values[1]!r} is not a number", "is this a VCF?")
    info: dict[str, str] = {}
    if values[7] != ".":
        for item in values[7].split(";"):
            key, _, value = item.partition("=")
            info[key] = value if _ else "true"
    genotypes: dict[str, dict[str, str]] = {}
    if samples:
        keys = values[8].split(":")
        for sample, column in zip(samples, values[9:], strict=True):
            genotypes[sample] = dict(zip(keys, column.split(":"), strict=False))
    return Record(chrom=values[0], pos=int(values[1]), ref=values[3], alt=values[4], qual=values[5],
                  filter=values[6], id=values[2], info=info, format=genotypes)


def load_vcf(path: str | Path) -> Vcf:
    return parse_vcf(read_vcf_text(path), name=str(path))


# -- comparing -------------------------------------------------------------------------------
def normalize_gt(gt: str | None) -> str:
    """Unphased genotypes compare as allele multisets (``1/0`` is ``0/1``); phased ones as written."""
    if not gt:
        return "."
    if "|" in gt:
        return gt
    alleles = gt.split("/")
    return "/".join(sorted(alleles, key=lambda a: (a == ".", int(a) if a.isdigit() else 0)))


def parse_fields(spec: str | list[str] | None) -> list[str]:
    """``QUAL,INFO/DP,FORMAT/AD`` -> a checked list (:class:`VcfError` with exit 2 on a bad name)."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [i for s in spec for i in s.split(",")]
    fields = [i.strip() for i in items if i.strip()]
    bad = [f for f in fields if not _FIELD.match(f)]
    if bad:
        raise VcfError(f"unknown field(s) to compare: {', '.join(bad)}",
                       "use QUAL, FILTER, ID, INFO/<KEY> or FORMAT/<KEY>, e.g. --fields QUAL,INFO/DP,FORMAT/AD")
    return fields


def _field_value(record: Record, name: str, sample: str | None) -> str | None:
    if name == "QUAL":
        return record.qual
    if name == "FILTER":
        return record.filter
    if name == "ID":
        return record.id
    kind, key = name.split("/", 1)
    if kind == "INFO":
        return record.info.get(key)
    return record.format.get(sample or "", {}).get(key)


def _keyed(vcf: Vcf) -> dict[tuple, Record]:
    """Records by key; a repeated key (rare, but legal) keeps its occurrence number."""
    seen: Counter = Counter()
    keyed = {}
    for record in vcf.records:
        seen[record.key] += 1
        keyed[(*record.key, seen[record.key])] = record
    return keyed


def compare_records(a: Record, b: Record, samples: list[str], fields: list[str]) -> list[Difference]:
    """What differs between two records at the same site (genotypes, then the chosen fields)."""
    differences = []
    where = (a.chrom, a.pos, a.ref, a.alt)
    for sample in samples:
        gt_a = normalize_gt(a.format.get(sample, {}).get("GT"))
        gt_b = normalize_gt(b.format.get(sample, {}).get("GT"))
        if gt_a != gt_b:
            differences.append(Difference("genotype", *where, f"{sample} GT {gt_a} vs {gt_b}"))
    for name in fields:
        targets = samples if name.startswith("FORMAT/") else [None]
        for sample in targets:
            value_a, value_b = _field_value(a, name, sample), _field_value(b, name, sample)
            if value_a != value_b:
                label = f"{sample} {name}" if sample else name
                differences.append(Difference("field", *where, f"{label} {value_a} vs {value_b}"))
    return differences


def stable_header(meta: list[str]) -> list[str]:
    """Header lines without those that carry dates or command lines."""
    return [line for line in meta if not _VOLATILE_HEADER.match(line)]


def compare(a: Vcf, b: Vcf, fields: list[str] | None = None, keep: int = 10) -> Concordance:
    """Compare two parsed VCFs; keep the first ``keep`` differences in file order."""
    fields = fields or []
    keyed_a, keyed_b = _keyed(a), _keyed(b)
    shared_samples = [s for s in a.samples if s in b.samples]
    differences: list[Difference] = []
    by_kind: Counter = Counter()
    identical = discordant = 0
    contig_rank: dict[str, int] = {}
    for record in a.records + b.records:
        contig_rank.setdefault(record.chrom, len(contig_rank))
    order = list(keyed_a) + [k for k in keyed_b if k not in keyed_a]
    order.sort(key=lambda k: (contig_rank[k[0]], k[1]))  # file order, sites of both files merged
    for key in order:
        record_a, record_b = keyed_a.get(key), keyed_b.get(key)
        if record_b is None:
            found = [Difference("only_in_a", *key[:4], f"not in {b.name}")]
        elif record_a is None:
            found = [Difference("only_in_b", *key[:4], f"not in {a.name}")]
        else:
            found = compare_records(record_a, record_b, shared_samples, fields)
        if not found:
            identical += 1
            continue
        discordant += 1
        by_kind[found[0].kind] += 1
        if len(differences) < keep:
            differences.extend(found[: keep - len(differences)])
    header_a, header_b = stable_header(a.meta), stable_header(b.meta)
    header_differences = [f"only in {a.name}: {line}" for line in header_a if line not in header_b]
    header_differences += [f"only in {b.name}: {line}" for line in header_b if line not in header_a]
    return Concordance(a=a.name, b=b.name, records_a=len(a.records), records_b=len(b.records),
                       identical=identical, discordant=discordant, by_kind=dict(by_kind),
                       samples_a=a.samples, samples_b=b.samples, fields=fields,
                       differences=differences, header_differences=header_differences)


def compare_files(path_a: str | Path, path_b: str | Path, fields: list[str] | None = None,
                  keep: int = 10) -> Concordance:
    return compare(load_vcf(path_a), load_vcf(path_b), fields=fields, keep=keep)


# -- recall against a truth set ------------------------------------------------------------------
@dataclass
class Recall:
    sample: str
    planted: int
    found: int
    genotype_matches: int
    missed: list[str]

    @property
    def fraction(self) -> float:
        return self.found / self.planted if self.planted else 1.0


def _carries(gt: str | None) -> bool:
    return any(allele not in {"0", "."} for allele in re.split(r"[/|]", gt or "."))


def recall(truth: Vcf, calls: Vcf, sample: str, calls_sample: str | None = None) -> Recall:
    """How many of ``sample``'s planted variants (non-reference GT in the truth) the calls carry.

    ``calls_sample`` names the sample's column in ``calls`` (default: the same name, or the only
    column of a single-sample VCF).
    """
    if sample not in truth.samples:
        raise VcfError(f"{truth.name}: no sample {sample}", f"samples there: {', '.join(truth.samples)}")
    column = calls_sample or (sample if sample in calls.samples or len(calls.samples) != 1 else calls.samples[0])
    if column not in calls.samples:
        raise VcfError(f"{calls.name}: no sample {column}", f"samples there: {', '.join(calls.samples)}")
    called = {r.key: r.format.get(column, {}).get("GT") for r in calls.records}
    planted = found = matches = 0
    missed = []
    for record in truth.records:
        truth_gt = record.format.get(sample, {}).get("GT")
        if not _carries(truth_gt):
            continue
        planted += 1
        call_gt = called.get(record.key)
        if _carries(call_gt):
            found += 1
            matches += normalize_gt(call_gt) == normalize_gt(truth_gt)
        else:
            missed.append(f"{record.chrom}:{record.pos} {record.ref}>{record.alt} ({truth_gt})")
    return Recall(sample=sample, planted=planted, found=found, genotype_matches=matches, missed=missed)


def cohort_recall(truth: Vcf, calls: list[Vcf]) -> list[Recall]:
    """Recall of every truth sample, each from the called VCF that has its column (a cohort VCF,
    or one VCF per sample; a lone single-sample VCF stands for every sample). A truth sample that
    no VCF has is an error, never a silent skip that would raise the recall."""
    results = []
    for sample in truth.samples:
        vcf = next((c for c in calls if sample in c.samples), calls[0] if len(calls) == 1 else None)
        if vcf is None:
            raise VcfError(f"sample {sample} of {truth.name} is in none of the called VCFs",
                           f"give its VCF too (samples called: {', '.join(s for c in calls for s in c.samples)})")
        results.append(recall(truth, vcf, sample))
    return results
