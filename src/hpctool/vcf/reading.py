"""VCFs read for comparison: plain and bgzipped VCF text line by line (a bgzip file must end
with its BGZF end-of-file block: without it, it was cut short); BCF, which is binary, decoded by
htslib through ``bcftools view``. :class:`VcfStream` reads a position-sorted file block by block
(memory stays flat whatever its size) and an unsorted one is a clear error; :func:`load_vcf`
reads a small one whole."""

from __future__ import annotations

import gzip
import operator
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import IO, Self

from hpctool.errors import VcfError

FIXED_COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]


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
class Row:
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

    def check_line(self, raw: str, number: int, order: _Order | None) -> Row | None:
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
        return Row(values[0], here, values[3], values[4], line, number)

    def rows(self, check_order: bool = True) -> Iterator[Row]:
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

    def record(self, row: Row) -> Record:
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
