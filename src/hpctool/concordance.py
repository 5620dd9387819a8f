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
import operator
import re
import shutil
import subprocess
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import groupby, islice, repeat
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
# POS of every line of a block joined after a "\n" (a literal first character: a fast scan).
_POS = re.compile(r"\n[^\t\n]*\t([^\t\n]*)")
BLOCK_BYTES = 1 << 20  # lines are read and checked ~1 MB at a time
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


class _Lines(list):
    """The lines of one block, and the block's text after a line end (for whole-block checks)."""

    text = ""

    @classmethod
    def of(cls, data: str) -> _Lines:
        text = "\n" + data
        lines = cls(text.splitlines(keepends=True)[1:])
        lines.text = text
        return lines


class VcfLines:
    """The lines of a VCF/BCF file as text, streamed: ``with VcfLines(path) as lines: for line in lines``.

    Decompression and decoding errors surface while reading, as :class:`VcfError`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._process: subprocess.Popen | None = None
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> Self:
        file = self.path
        try:
            kind = _kind(file)
            if kind == "bcf":
                self._handle = self._bcftools_view(file)
            elif kind in {"gzip", "bgzip"}:
                self._handle = gzip.open(file, "rb")
            else:
                self._handle = open(file, "rb")
        except OSError as error:
            raise _open_error(file, error) from None
        return self

    def _bcftools_view(self, file: Path) -> IO[bytes]:
        if shutil.which("bcftools") is None:
            raise VcfError(f"{file}: is BCF, which needs bcftools to read", "install bcftools (`make setup`)")
        # Its warnings go to a file: a full stderr pipe would stall it while we read its stdout.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self._process = subprocess.Popen(["bcftools", "view", "--no-version", "-Ov", str(file)],
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        assert self._process.stdout is not None
        return self._process.stdout

    def blocks(self) -> Iterator[list[str]]:
        """Lists of about :data:`BLOCK_BYTES` bytes of whole lines, each with its line end."""
        assert self._handle is not None, "use VcfLines in a with block"
        file = self.path
        rest = b""
        try:
            # Bytes in big reads, cut after the last line end (a line end never splits a UTF-8
            # character), then split: far cheaper than reading line by line.
            while chunk := self._handle.read(BLOCK_BYTES):
                cut = chunk.rfind(b"\n") + 1
                if not cut:
                    rest += chunk
                    continue
                data, rest = rest + chunk[:cut], chunk[cut:]
                yield _Lines.of(data.decode("utf-8"))
            if rest:
                yield _Lines.of(rest.decode("utf-8"))
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise _corrupt(file, error) from None
        except UnicodeDecodeError:
            raise VcfError(f"{file}: not text (nor gzip/bgzip/BCF)", "is this a VCF?") from None
        if self._process is not None and self._process.wait() != 0:
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip()[-400:]
            raise VcfError(f"{file}: bcftools cannot read it: {detail}", "the BCF file may be truncated or corrupt")

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._stderr.close()


def read_vcf_text(path: str | Path) -> str:
    """The whole text of a VCF/BCF file (small files: truth sets, test data)."""
    with VcfLines(path) as lines:
        return "".join(line for block in lines.blocks() for line in block)


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


class _Order:
    """Where a file's records have got to: the contig, the position, the contigs left behind."""

    def __init__(self) -> None:
        self.chrom = ""
        self.pos = -1
        self.finished: set[str] = set()


class VcfStream:
    """Header and records of one VCF, read once from start to end (blocks of raw lines)."""

    def __init__(self, blocks: Iterator[list[str]], name: str) -> None:
        self.name = name
        self.meta: list[str] = []
        self.samples: list[str] = []
        self.count = 0
        self._blocks = blocks
        self._first: list[str] = []  # the rest of the block the header ended in
        self._number = 0  # line number of the line before self._first
        self._read_header()
        self._expected = 8 + (1 + len(self.samples) if self.samples else 0)

    def _read_header(self) -> None:
        number = 0
        for block in self._blocks:
            for index, raw in enumerate(block):
                number += 1
                line = raw.rstrip("\r\n")
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
                    self._first, self._number = block[index + 1:], number
                    return
                raise VcfError(f"{self.name}, line {number}: a record before the #CHROM header line",
                               "is this a VCF? (the header is missing or the file is not a VCF)")
        raise VcfError(f"{self.name}: no #CHROM header line", "is this a VCF? (empty or not a VCF)")

    def record_blocks(self) -> Iterator[tuple[int, list[str]]]:
        """(line number before the block, raw lines) of the records, once."""
        number = self._number
        if self._first:
            yield number, self._first
            number += len(self._first)
        for block in self._blocks:
            yield number, block
            number += len(block)

    def check_line(self, raw: str, number: int, order: _Order | None) -> _Row | None:
        """One record line checked (columns, POS, order when ``order``); None for an empty line."""
        line = raw.rstrip("\r\n")
        if not line:
            return None
        name = self.name
        if line.startswith("#"):
            raise VcfError(f"{name}, line {number}: a header line among the records", "is this a VCF?")
        columns = line.count("\t") + 1
        if columns < 8 or (self.samples and columns != self._expected):
            raise VcfError(f"{name}, line {number}: {columns} columns, expected {self._expected}",
                           "the file is truncated or not tab-separated")
        values = line.split("\t", 5)
        if not values[1].isdigit():
            raise VcfError(f"{name}, line {number}: POS {values[1]!r} is not a number", "is this a VCF?")
        here = int(values[1])
        if order is not None:
            if values[0] != order.chrom:
                if values[0] in order.finished:
                    raise VcfError(f"{name}, line {number}: {values[0]} comes again after other contigs: "
                                   "the file is not sorted by position", _UNSORTED_HINT)
                order.finished.add(order.chrom)
                order.chrom = values[0]
            elif here < order.pos:
                raise VcfError(f"{name}, line {number}: {order.chrom}:{here} comes after {order.chrom}:"
                               f"{order.pos}: the file is not sorted by position", _UNSORTED_HINT)
            order.pos = here
        return _Row(values[0], here, values[3], values[4], line, number)

    def rows(self, check_order: bool = True) -> Iterator[_Row]:
        """Every record in file order, one by one; raises :class:`VcfError` at the first bad or
        (unless ``check_order`` is off: a file held in memory may be in any order) out-of-order one."""
        order = _Order() if check_order else None
        for before, block in self.record_blocks():
            for offset, raw in enumerate(block, start=1):
                row = self.check_line(raw, before + offset, order)
                if row is not None:
                    self.count += 1
                    yield row

    def checked_blocks(self) -> Iterator[tuple[list[str], list[str], list[int]]]:
        """Blocks of records as (raw lines, contigs, positions), every line checked as by
        :meth:`rows`, but a block at a time with C-speed string operations; the per-line checks run
        only on a block that fails them, to name the line."""
        order = _Order()
        for before, block in self.record_blocks():
            checked = self._check_block(block, order)
            if checked is not None:
                self.count += len(block)
                yield checked
                continue
            rows = [row for offset, raw in enumerate(block, start=1)
                    if (row := self.check_line(raw, before + offset, order)) is not None]
            self.count += len(rows)
            yield [row.line + "\n" for row in rows], [row.chrom for row in rows], [row.pos for row in rows]

    def _check_block(self, block: list[str], order: _Order) -> tuple[list[str], list[str], list[int]] | None:
        """The block's contigs and positions when every line passes, else None (nothing changed)."""
        if not block:
            return None
        text = getattr(block, "text", "") or "\n" + "".join(block)
        if "\n#" in text:
            return None  # a header line: the per-line path says where
        # (An empty line has no POS for the pattern to find: the count of positions is short.)
        # Columns: with samples, the block's tab count must be exactly lines x (columns - 1). A
        # line with too many tabs could hide one with too few; such a pair is still caught when
        # the lines are parsed, and is only missed where both files hold it byte for byte.
        if self.samples:
            if text.count("\t") != len(block) * (self._expected - 1):
                return None
        elif min(map(str.count, block, repeat("\t"))) < 7:
            return None
        positions = _POS.findall(text)
        if len(positions) != len(block) or not all(map(str.isdigit, positions)):
            return None
        numbers = list(map(int, positions))
        chroms: list[str] = []
        chrom, last, finished = order.chrom, order.pos, set()
        start = 0
        while start < len(block):
            here = block[start].partition("\t")[0]
            end = start + text.count(f"\n{here}\t")  # lines of this contig, if they are contiguous
            if end > len(block) or ((start, end) != (0, len(block)) and  # one contig: the count says so
                                    ("\n" + "".join(block[start:end])).count(f"\n{here}\t") != end - start):
                return None
            if here == chrom:
                if numbers[start] < last:
                    return None
            elif here in order.finished or here in finished:
                return None
            else:
                finished.add(chrom)
                chrom = here
            segment = numbers[start:end]
            if not all(map(operator.le, segment, islice(segment, 1, None))):
                return None
            last = segment[-1]
            chroms += [here] * (end - start)
            start = end
        order.finished |= finished
        order.chrom, order.pos = chrom, last
        return block, chroms, numbers

    def record(self, row: _Row) -> Record:
        if row.record is None:
            assert row.line is not None
            row.record = _parse_record(row.line.rstrip("\r\n"), self.samples, self.name, row.number)
        return row.record


def parse_vcf(text: str, name: str = "VCF") -> Vcf:
    """Header lines, sample names and records of a VCF's text (records in any order)."""
    stream = VcfStream(iter([[line + "\n" for line in text.splitlines()]]), name)
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

    def row(self, index: int) -> _Row:
        line = self.lines[index]
        if isinstance(line, Record):
            return _Row(line.chrom, line.pos, line.ref, line.alt, None, 0, line)
        values = line.split("\t", 5)
        return _Row(values[0], int(values[1]), values[3], values[4], line, 0)


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


def _compare_site(a: VcfStream, b: VcfStream, here_a: list[_Row], here_b: list[_Row], samples: list[str],
                  same_columns: bool, fields: list[str], tally: _Tally) -> None:
    """The records of both files at one position, matched on REF, ALT and occurrence."""
    def keyed(rows: list[_Row]) -> dict[tuple[str, str, int], _Row]:
        seen: Counter = Counter()
        result = {}
        for row in rows:
            seen[(row.ref, row.alt)] += 1
            result[(row.ref, row.alt, seen[(row.ref, row.alt)])] = row
        return result

    keyed_a, keyed_b = keyed(here_a), keyed(here_b)
    pairs: list[tuple[_Row | None, _Row | None]] = [(row, keyed_b.get(key)) for key, row in keyed_a.items()]
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
