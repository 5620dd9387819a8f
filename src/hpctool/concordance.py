"""Do two VCFs hold the same variants? Record-level concordance, and recall against a truth set.

Records are matched on CHROM, POS, REF and ALT; matched records must agree on every sample's
GT and on the fields asked for (``QUAL``, ``FILTER``, ``INFO/KEY``, ``FORMAT/KEY``). Header
lines that carry dates or command lines differ between any two runs, so they are ignored; other
header differences are reported but do not decide the result: the records do.

:func:`compare_files` streams both files side by side (a merge on position), so memory stays flat
whatever their size; they must be position-sorted, as every indexed or workflow-made VCF is, and an
unsorted one is a clear error. Plain and bgzipped VCF text is read here line by line (a bgzip file
must end with its BGZF end-of-file block: without it, it was cut short); BCF, which is binary, is
decoded by htslib through ``bcftools view``. Why not pysam/cyvcf2 for the text too: they build a
Python object per record and sample, which costs more than splitting the line, and lines that are
byte-identical (nearly all of them, when two runs agree) need no parsing at all. ``bcftools isec``
answers a different question (it matches sites, not genotypes and fields).
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Self

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
# The empty BGZF block every bgzip file ends with (SAM/BAM spec, 4.1.2): htslib warns without it.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_UNSORTED_HINT = "sort it first: `bcftools sort -Oz -o sorted.vcf.gz FILE` (and `bcftools index` it)"


def _kind(file: Path) -> str:
    """``text``, ``gzip``, ``bgzip`` or ``bcf`` (BCF is BGZF-compressed too: its first bytes say so)."""
    with open(file, "rb") as handle:
        head = handle.read(18)
        if head[:2] != b"\x1f\x8b":
            return "bcf" if head[:3] == b"BCF" else "text"
        # BGZF: a gzip member with FEXTRA whose subfield is 'BC' (bytes 12-13).
        bgzf = len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"
        if bgzf:
            handle.seek(-len(BGZF_EOF), 2)
            if handle.read() != BGZF_EOF:
                raise VcfError(f"{file}: the bgzip file has no end-of-file block: it was cut short",
                               "the file may still be being written, or was copied only in part")
    try:
        with gzip.open(file, "rb") as handle:
            first = handle.read(3)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise _corrupt(file, error) from None
    if first == b"BCF":
        return "bcf"
    return "bgzip" if bgzf else "gzip"


def _corrupt(file: Path, error: BaseException) -> VcfError:
    return VcfError(f"{file}: compressed data is truncated or corrupt ({error})",
                    "the file may still be being written, or was copied only in part")


def _open_error(file: Path, error: OSError) -> VcfError:
    if isinstance(error, FileNotFoundError):
        return VcfError(f"{file}: no such file", "check the path")
    if isinstance(error, IsADirectoryError):
        return VcfError(f"{file}: is a folder, not a VCF", "give the path of a .vcf or .vcf.gz file")
    if isinstance(error, PermissionError):
        return VcfError(f"{file}: permission denied", "check the file's permissions")
    return VcfError(f"{file}: cannot be read ({error})", "check the file")


class VcfLines:
    """The lines of a VCF/BCF file as text, streamed: ``with VcfLines(path) as lines: for line in lines``.

    Decompression and decoding errors surface while reading, as :class:`VcfError`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._process: subprocess.Popen | None = None
        self._handle: IO[str] | None = None

    def __enter__(self) -> Self:
        file = self.path
        try:
            kind = _kind(file)
            if kind == "bcf":
                self._handle = self._bcftools_view(file)
            elif kind in {"gzip", "bgzip"}:
                self._handle = io.TextIOWrapper(gzip.open(file, "rb"), encoding="utf-8", newline="")
            else:
                self._handle = open(file, encoding="utf-8", newline="")
        except OSError as error:
            raise _open_error(file, error) from None
        return self

    def _bcftools_view(self, file: Path) -> IO[str]:
        if shutil.which("bcftools") is None:
            raise VcfError(f"{file}: is BCF, which needs bcftools to read", "install bcftools (`make setup`)")
        self._process = subprocess.Popen(["bcftools", "view", "--no-version", "-Ov", str(file)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._process.stdout is not None
        return io.TextIOWrapper(self._process.stdout, encoding="utf-8", newline="")

    def __iter__(self) -> Iterator[str]:
        assert self._handle is not None, "use VcfLines in a with block"
        file = self.path
        try:
            for line in self._handle:
                yield line.rstrip("\r\n")
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise _corrupt(file, error) from None
        except UnicodeDecodeError:
            raise VcfError(f"{file}: not text (nor gzip/bgzip/BCF)", "is this a VCF?") from None
        if self._process is not None:
            stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
            if self._process.wait() != 0:
                raise VcfError(f"{file}: bcftools cannot read it: {stderr.strip()[-400:]}",
                               "the BCF file may be truncated or corrupt") from None

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()


def read_vcf_text(path: str | Path) -> str:
    """The whole text of a VCF/BCF file (small files: truth sets, test data)."""
    with VcfLines(path) as lines:
        return "\n".join(lines) + "\n"


@dataclass
class _Row:
    """One record, split only as far as matching needs; ``record`` parsed when values are compared."""

    chrom: str
    pos: int
    ref: str
    alt: str
    line: str | None
    number: int
    record: Record | None = None


class VcfStream:
    """Header and position-sorted records of one VCF, read once from start to end."""

    def __init__(self, lines: Iterator[str], name: str) -> None:
        self.name = name
        self.meta: list[str] = []
        self.samples: list[str] = []
        self.count = 0
        self._lines = enumerate(lines, start=1)
        self._read_header()

    def _read_header(self) -> None:
        for number, line in self._lines:
            if not line:
                continue
            if line.startswith("##"):
                self.meta.append(line)
                continue
            if line.startswith("#"):
                columns = line[1:].split("\t")
                if columns[:8] != FIXED_COLUMNS:
                    raise VcfError(f"{self.name}, line {number}: the #CHROM header line does not have the 8 "
                                   "VCF columns", "is this a VCF?")
                self.samples = columns[9:]
                return
            raise VcfError(f"{self.name}, line {number}: a record before the #CHROM header line",
                           "is this a VCF? (the header is missing or the file is not a VCF)")
        raise VcfError(f"{self.name}: no #CHROM header line", "is this a VCF? (empty or not a VCF)")

    def rows(self, check_order: bool = True) -> Iterator[_Row]:
        """Every record in file order; raises :class:`VcfError` at the first out-of-order one
        (unless ``check_order`` is off: a file held in memory may be in any order)."""
        name, samples = self.name, self.samples
        expected = 8 + (1 + len(samples) if samples else 0)
        finished: set[str] = set()
        chrom, pos = "", -1
        for number, line in self._lines:
            if not line:
                continue
            if line.startswith("#"):
                raise VcfError(f"{name}, line {number}: a header line among the records", "is this a VCF?")
            columns = line.count("\t") + 1
            if columns < 8 or (samples and columns != expected):
                raise VcfError(f"{name}, line {number}: {columns} columns, expected {expected}",
                               "the file is truncated or not tab-separated")
            values = line.split("\t", 5)
            if not values[1].isdigit():
                raise VcfError(f"{name}, line {number}: POS {values[1]!r} is not a number", "is this a VCF?")
            here = int(values[1])
            if not check_order:
                pass
            elif values[0] != chrom:
                if values[0] in finished:
                    raise VcfError(f"{name}, line {number}: {values[0]} comes again after other contigs: "
                                   "the file is not sorted by position", _UNSORTED_HINT)
                finished.add(chrom)
                chrom = values[0]
            elif here < pos:
                raise VcfError(f"{name}, line {number}: {chrom}:{here} comes after {chrom}:{pos}: "
                               "the file is not sorted by position", _UNSORTED_HINT)
            pos = here
            self.count += 1
            yield _Row(chrom, here, values[3], values[4], line, number)

    def record(self, row: _Row) -> Record:
        if row.record is None:
            assert row.line is not None
            row.record = _parse_record(row.line, self.samples, self.name, row.number)
        return row.record


def parse_vcf(text: str, name: str = "VCF") -> Vcf:
    """Header lines, sample names and records of a VCF's text (records in any order)."""
    stream = VcfStream(iter(text.splitlines()), name)
    records = [stream.record(row) for row in stream.rows(check_order=False)]
    return Vcf(name=name, meta=stream.meta, samples=stream.samples, records=records)


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


class _Tally:
    """Counts and the first ``keep`` differences, filled site by site in merged file order."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.identical = self.discordant = 0
        self.by_kind: Counter = Counter()
        self.differences: list[Difference] = []

    def add(self, found: list[Difference]) -> None:
        if not found:
            self.identical += 1
            return
        self.discordant += 1
        self.by_kind[found[0].kind] += 1
        if len(self.differences) < self.keep:
            self.differences.extend(found[: self.keep - len(self.differences)])


def _positions(rows: Iterator[_Row], seen: list[str]) -> Iterator[list[_Row]]:
    """Runs of rows at one position (usually one row); ``seen`` gets each contig as it starts."""
    group: list[_Row] = []
    for row in rows:
        if group and (row.pos != group[0].pos or row.chrom != group[0].chrom):
            yield group
            group = []
        if not group and (not seen or seen[-1] != row.chrom):
            seen.append(row.chrom)
        group.append(row)
    if group:
        yield group


def _merge(a: VcfStream, b: VcfStream, rows_a: Iterator[_Row], rows_b: Iterator[_Row],
           fields: list[str], tally: _Tally) -> None:
    """Walk both position-sorted streams together, as a merge of two sorted lists.

    Contigs are taken in A's order; where neither file has reached the other's contig yet, the
    ##contig header order decides. Two files that order their contigs differently are an error
    (a site would otherwise be reported missing from both), never a wrong answer."""
    shared_samples = [s for s in a.samples if s in b.samples]
    same_columns = a.samples == b.samples  # then byte-identical lines are identical records
    header_rank: dict[str, int] = {}
    for line in a.meta + b.meta:
        if line.startswith("##contig=<ID="):
            header_rank.setdefault(line[13:].split(",", 1)[0].rstrip(">"), len(header_rank))
    seen_a: list[str] = []
    seen_b: list[str] = []
    groups_a, groups_b = _positions(rows_a, seen_a), _positions(rows_b, seen_b)
    ga, gb = next(groups_a, None), next(groups_b, None)
    merged: list[str] = []  # contigs in the order the merge visits them
    done: set[str] = set()

    def visit(chrom: str) -> None:
        if merged and merged[-1] == chrom:
            return
        if chrom in done:
            raise VcfError(f"{a.name} and {b.name} order their contigs differently ({chrom} comes back "
                           f"after {merged[-1]})", "sort both with the same reference: `bcftools sort`")
        if merged:
            done.add(merged[-1])
        merged.append(chrom)

    def a_first(x: _Row, y: _Row) -> bool:
        if x.chrom == y.chrom:
            return x.pos < y.pos
        if y.chrom in seen_a[:-1]:  # A has passed B's contig: B is behind
            return False
        if x.chrom in seen_b[:-1]:
            return True
        if x.chrom in header_rank and y.chrom in header_rank:
            return header_rank[x.chrom] < header_rank[y.chrom]
        return True

    while ga is not None or gb is not None:
        if gb is None or (ga is not None and a_first(ga[0], gb[0])):
            assert ga is not None
            visit(ga[0].chrom)
            for row in ga:
                tally.add([Difference("only_in_a", row.chrom, row.pos, row.ref, row.alt, f"not in {b.name}")])
            ga = next(groups_a, None)
        elif ga is None or a_first(gb[0], ga[0]) or gb[0].chrom != ga[0].chrom:
            visit(gb[0].chrom)
            for row in gb:
                tally.add([Difference("only_in_b", row.chrom, row.pos, row.ref, row.alt, f"not in {a.name}")])
            gb = next(groups_b, None)
        else:
            visit(ga[0].chrom)
            _compare_site(a, b, ga, gb, shared_samples, same_columns, fields, tally)
            ga, gb = next(groups_a, None), next(groups_b, None)


def _compare_site(a: VcfStream, b: VcfStream, here_a: list[_Row], here_b: list[_Row], samples: list[str],
                  same_columns: bool, fields: list[str], tally: _Tally) -> None:
    """The records of both files at one position, matched on REF, ALT and occurrence."""
    if len(here_a) == 1 and len(here_b) == 1:
        pairs = [(here_a[0], here_b[0])] if (here_a[0].ref, here_a[0].alt) == (here_b[0].ref, here_b[0].alt) \
            else [(here_a[0], None), (None, here_b[0])]
    else:
        def keyed(rows: list[_Row]) -> dict[tuple[str, str, int], _Row]:
            seen: Counter = Counter()
            result = {}
            for row in rows:
                seen[(row.ref, row.alt)] += 1
                result[(row.ref, row.alt, seen[(row.ref, row.alt)])] = row
            return result
        keyed_a, keyed_b = keyed(here_a), keyed(here_b)
        pairs = [(row, keyed_b.get(key)) for key, row in keyed_a.items()]
        pairs += [(None, row) for key, row in keyed_b.items() if key not in keyed_a]
    for row_a, row_b in pairs:
        if row_b is None:
            assert row_a is not None
            tally.add([Difference("only_in_a", row_a.chrom, row_a.pos, row_a.ref, row_a.alt, f"not in {b.name}")])
        elif row_a is None:
            tally.add([Difference("only_in_b", row_b.chrom, row_b.pos, row_b.ref, row_b.alt, f"not in {a.name}")])
        elif same_columns and row_a.line is not None and row_a.line == row_b.line:
            tally.add([])
        else:
            tally.add(compare_records(a.record(row_a), b.record(row_b), samples, fields))


def _result(a: VcfStream, b: VcfStream, fields: list[str], tally: _Tally) -> Concordance:
    header_a, header_b = stable_header(a.meta), stable_header(b.meta)
    header_differences = [f"only in {a.name}: {line}" for line in header_a if line not in header_b]
    header_differences += [f"only in {b.name}: {line}" for line in header_b if line not in header_a]
    return Concordance(a=a.name, b=b.name, records_a=a.count, records_b=b.count,
                       identical=tally.identical, discordant=tally.discordant, by_kind=dict(tally.by_kind),
                       samples_a=a.samples, samples_b=b.samples, fields=fields,
                       differences=tally.differences, header_differences=header_differences)


class _Parsed(VcfStream):
    """An in-memory :class:`Vcf` seen as a stream, its records in merged file order."""

    def __init__(self, vcf: Vcf, rank: dict[str, int]) -> None:
        self.name, self.meta, self.samples, self.count = vcf.name, vcf.meta, vcf.samples, len(vcf.records)
        ordered = sorted(vcf.records, key=lambda r: (rank[r.chrom], r.pos))
        self._rows = [_Row(r.chrom, r.pos, r.ref, r.alt, None, 0, r) for r in ordered]

    def rows(self, check_order: bool = True) -> Iterator[_Row]:
        return iter(self._rows)


def compare(a: Vcf, b: Vcf, fields: list[str] | None = None, keep: int = 10) -> Concordance:
    """Compare two parsed VCFs (records in any order); keep the first ``keep`` differences in file order."""
    fields = fields or []
    rank: dict[str, int] = {}
    for record in a.records + b.records:
        rank.setdefault(record.chrom, len(rank))
    stream_a, stream_b = _Parsed(a, rank), _Parsed(b, rank)
    tally = _Tally(keep)
    _merge(stream_a, stream_b, stream_a.rows(), stream_b.rows(), fields, tally)
    return _result(stream_a, stream_b, fields, tally)


def compare_files(path_a: str | Path, path_b: str | Path, fields: list[str] | None = None,
                  keep: int = 10) -> Concordance:
    """Compare two position-sorted VCF/BCF files in one pass, in constant memory."""
    fields = fields or []
    with VcfLines(path_a) as lines_a, VcfLines(path_b) as lines_b:
        a, b = VcfStream(iter(lines_a), str(path_a)), VcfStream(iter(lines_b), str(path_b))
        tally = _Tally(keep)
        _merge(a, b, a.rows(), b.rows(), fields, tally)
    return _result(a, b, fields, tally)


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
