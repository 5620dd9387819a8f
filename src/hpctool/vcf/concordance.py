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

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import groupby, islice
from pathlib import Path
from typing import Any

from hpctool.errors import VcfError
from hpctool.vcf.reading import FIXED_COLUMNS, Record, Row, Vcf, VcfLines, VcfStream

# `##fileDate=`, `##bcftools_callCommand=...; Date=...`, `##GATKCommandLine=<...>`, ...
_VOLATILE_HEADER = re.compile(r"^##(fileDate=|[^=]*[Cc]ommand(Line)?[=.]|[^=]*=.*\bDate=)")
_FIELD = re.compile(r"^(QUAL|FILTER|ID|(INFO|FORMAT)/[A-Za-z0-9_.]+)$")


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


class _Cursor:
    """A window on one file's checked records: raw lines (records when held in memory), contigs
    and positions. Blocks are read as the merge reaches them; indexes move only in :meth:`advance`."""

    def __init__(self, stream: VcfStream, blocks: Iterator[tuple[list[Any], list[str], list[int]]]) -> None:
        self.stream = stream
        self._blocks = blocks
        self.lines: list[Any] = []
        self.chroms: list[str] = []
        self.positions: list[int] = []
        self.i = 0
        self.eof = False
        self.seen: list[str] = []  # contigs in the order this file reached them

    def fill(self, upto: int) -> None:
        """Read blocks until index ``upto`` is buffered (or the file ends)."""
        while len(self.lines) <= upto and not self.eof:
            block = next(self._blocks, None)
            if block is None:
                self.eof = True
                return
            self.lines += block[0]
            self.chroms += block[1]
            self.positions += block[2]

    def has(self, index: int) -> bool:
        self.fill(index)
        return index < len(self.lines)

    def group_end(self) -> int:
        """The end of the run of records at the position of record ``i``."""
        j = self.i + 1
        chrom, pos = self.chroms[self.i], self.positions[self.i]
        while self.has(j) and self.positions[j] == pos and self.chroms[j] == chrom:
            j += 1
        return j

    def advance(self, to: int) -> None:
        for chrom in _runs(self.chroms, self.i, to):
            if not self.seen or self.seen[-1] != chrom:
                self.seen.append(chrom)
        self.i = to
        if to > 4096 and to * 2 > len(self.lines):  # drop what the merge has passed (indexes move)
            del self.lines[:to], self.chroms[:to], self.positions[:to]
            self.i = 0

    def row(self, index: int) -> Row:
        line = self.lines[index]
        if isinstance(line, Record):
            return Row(line.chrom, line.pos, line.ref, line.alt, None, 0, line)
        values = line.split("\t", 5)
        return Row(values[0], int(values[1]), values[3], values[4], line, 0)


def _runs(chroms: list[str], start: int, end: int) -> list[str]:
    """The contigs of ``chroms[start:end]`` in order, each once per run."""
    if start >= end:
        return []
    if chroms[start] == chroms[end - 1]:  # a contig's records are contiguous (checked on reading)
        return [chroms[start]]
    return [chrom for chrom, _ in groupby(islice(chroms, start, end))]


def _identical_run(a: _Cursor, b: _Cursor) -> int:
    """How many records from the cursors on are byte-identical lines (hence identical records),
    found by comparing slices (C speed) and halving the slice at the first difference."""
    n = min(len(a.lines) - a.i, len(b.lines) - b.i)
    if n <= 0 or a.lines[a.i] != b.lines[b.i] or a.lines[a.i] is None:
        return 0
    if a.lines[a.i:a.i + n] == b.lines[b.i:b.i + n]:
        return n
    low, high = 1, n  # lines[:low] equal, lines[:high] not
    while high - low > 1:
        middle = (low + high) // 2
        if a.lines[a.i + low:a.i + middle] == b.lines[b.i + low:b.i + middle]:
            low = middle
        else:
            high = middle
    return low


def _merge(a: VcfStream, b: VcfStream, cursor_a: _Cursor, cursor_b: _Cursor, fields: list[str],
           tally: _Tally) -> None:
    """Walk both position-sorted files together, as a merge of two sorted lists.

    Runs of byte-identical lines (nearly everything, when two runs agree) are counted without
    being parsed. Contigs are taken in A's order; where neither file has reached the other's
    contig yet, the ##contig header order decides. Two files that order their contigs
    differently are an error (a site would otherwise be reported missing from both), never a
    wrong answer."""
    shared_samples = [s for s in a.samples if s in b.samples]
    same_columns = a.samples == b.samples  # then byte-identical lines are identical records
    header_rank: dict[str, int] = {}
    for line in a.meta + b.meta:
        if line.startswith("##contig=<ID="):
            header_rank.setdefault(line[13:].split(",", 1)[0].rstrip(">"), len(header_rank))
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

    def a_first(chrom_a: str, pos_a: int, chrom_b: str, pos_b: int) -> bool:
        if chrom_a == chrom_b:
            return pos_a < pos_b
        if chrom_b in cursor_a.seen[:-1] or chrom_b in cursor_a.seen and chrom_a != cursor_a.seen[-1]:
            return False  # A has passed B's contig: B is behind
        if chrom_a in cursor_b.seen[:-1] or chrom_a in cursor_b.seen and chrom_b != cursor_b.seen[-1]:
            return True
        if chrom_a in header_rank and chrom_b in header_rank:
            return header_rank[chrom_a] < header_rank[chrom_b]
        return True

    def only(cursor: _Cursor, end: int, kind: str, other: VcfStream) -> None:
        for index in range(cursor.i, end):
            visit(cursor.chroms[index])
            row = cursor.row(index)
            tally.add([Difference(kind, row.chrom, row.pos, row.ref, row.alt, f"not in {other.name}")])
        cursor.advance(end)

    while True:
        has_a, has_b = cursor_a.has(cursor_a.i), cursor_b.has(cursor_b.i)
        if not has_a and not has_b:
            return
        if has_a and has_b and same_columns:
            run = _identical_run(cursor_a, cursor_b)
            # Leave the last position of the run to the record-by-record path when more records
            # may share it (they must be matched on REF/ALT as a whole).
            last = run - 1
            if run and (cursor_a.has(cursor_a.i + run) or cursor_b.has(cursor_b.i + run)):
                key = (cursor_a.chroms[cursor_a.i + last], cursor_a.positions[cursor_a.i + last])
                while run and (cursor_a.chroms[cursor_a.i + run - 1], cursor_a.positions[cursor_a.i + run - 1]) == key:
                    run -= 1
            if run:
                for chrom in _runs(cursor_a.chroms, cursor_a.i, cursor_a.i + run):
                    visit(chrom)
                tally.identical += run
                cursor_a.advance(cursor_a.i + run)
                cursor_b.advance(cursor_b.i + run)
                continue
        if not has_b or (has_a and a_first(cursor_a.chroms[cursor_a.i], cursor_a.positions[cursor_a.i],
                                             cursor_b.chroms[cursor_b.i], cursor_b.positions[cursor_b.i])):
            only(cursor_a, cursor_a.group_end(), "only_in_a", b)
        elif not has_a or cursor_a.chroms[cursor_a.i] != cursor_b.chroms[cursor_b.i] \
                or cursor_b.positions[cursor_b.i] < cursor_a.positions[cursor_a.i]:
            only(cursor_b, cursor_b.group_end(), "only_in_b", a)
        else:
            visit(cursor_a.chroms[cursor_a.i])
            end_a, end_b = cursor_a.group_end(), cursor_b.group_end()
            here_a = [cursor_a.row(k) for k in range(cursor_a.i, end_a)]
            here_b = [cursor_b.row(k) for k in range(cursor_b.i, end_b)]
            _compare_site(a, b, here_a, here_b, shared_samples, same_columns, fields, tally)
            cursor_a.advance(end_a)
            cursor_b.advance(end_b)


def _compare_site(a: VcfStream, b: VcfStream, here_a: list[Row], here_b: list[Row], samples: list[str],
                  same_columns: bool, fields: list[str], tally: _Tally) -> None:
    """The records of both files at one position, matched on REF, ALT and occurrence."""
    def keyed(rows: list[Row]) -> dict[tuple[str, str, int], Row]:
        seen: Counter = Counter()
        result = {}
        for row in rows:
            seen[(row.ref, row.alt)] += 1
            result[(row.ref, row.alt, seen[(row.ref, row.alt)])] = row
        return result

    keyed_a, keyed_b = keyed(here_a), keyed(here_b)
    pairs: list[tuple[Row | None, Row | None]] = [(row, keyed_b.get(key)) for key, row in keyed_a.items()]
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


def _in_memory(vcf: Vcf, rank: dict[str, int]) -> tuple[VcfStream, _Cursor]:
    """A parsed :class:`Vcf` as a stream and cursor, its records in merged file order."""
    stream = VcfStream(iter([[f"#{chr(9).join(FIXED_COLUMNS)}" + "".join(f"\t{s}" for s in
                                                                     ["FORMAT", *vcf.samples] if vcf.samples)]]),
                       vcf.name)
    stream.name, stream.meta, stream.samples, stream.count = vcf.name, vcf.meta, vcf.samples, len(vcf.records)
    ordered = sorted(vcf.records, key=lambda r: (rank[r.chrom], r.pos))
    block = (ordered, [r.chrom for r in ordered], [r.pos for r in ordered])
    return stream, _Cursor(stream, iter([block]))


def compare(a: Vcf, b: Vcf, fields: list[str] | None = None, keep: int = 10) -> Concordance:
    """Compare two parsed VCFs (records in any order); keep the first ``keep`` differences in file order."""
    fields = fields or []
    rank: dict[str, int] = {}
    for record in a.records + b.records:
        rank.setdefault(record.chrom, len(rank))
    (stream_a, cursor_a), (stream_b, cursor_b) = _in_memory(a, rank), _in_memory(b, rank)
    tally = _Tally(keep)
    _merge(stream_a, stream_b, cursor_a, cursor_b, fields, tally)
    return _result(stream_a, stream_b, fields, tally)


def compare_files(path_a: str | Path, path_b: str | Path, fields: list[str] | None = None,
                  keep: int = 10) -> Concordance:
    """Compare two position-sorted VCF/BCF files in one pass, in constant memory."""
    fields = fields or []
    with VcfLines(path_a) as lines_a, VcfLines(path_b) as lines_b:
        a, b = VcfStream(lines_a.blocks(), str(path_a)), VcfStream(lines_b.blocks(), str(path_b))
        tally = _Tally(keep)
        _merge(a, b, _Cursor(a, a.checked_blocks()), _Cursor(b, b.checked_blocks()), fields, tally)
    return _result(a, b, fields, tally)
