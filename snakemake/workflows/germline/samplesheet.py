"""The germline workflow's sample sheet: a TSV with columns ``sample``, ``fastq_1``, ``fastq_2``.

Relative FASTQ paths are taken from the sheet's own folder, so a sheet and its reads move
together. Every problem is reported at once (all missing files, not just the first), naming the
sheet, the line and the sample, because a researcher fixes a sheet in one go.

Kept free of Snakemake imports so tests call it directly.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

REQUIRED_COLUMNS = ("sample", "fastq_1", "fastq_2")
# Sample names become file names and read-group ids: no slashes, spaces or tabs.
SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SampleSheetError(ValueError):
    """The sample sheet is missing, malformed or points at files that do not exist."""


@dataclass(frozen=True)
class Sample:
    name: str
    fastq_1: Path
    fastq_2: Path


def load_sample_sheet(path: str | Path) -> dict[str, Sample]:
    """Samples by name, with absolute FASTQ paths; raise :class:`SampleSheetError` listing every problem."""
    sheet = Path(path)
    if not sheet.is_file():
        raise SampleSheetError(
            f"sample sheet {sheet} does not exist (config key `samples`); "
            "give a TSV with columns sample, fastq_1, fastq_2"
        )
    with open(sheet, newline="") as handle:
        rows = list(csv.DictReader((line for line in handle if line.strip() and not line.startswith("#")),
                                   delimiter="\t"))
        fields = rows[0].keys() if rows else []
    missing_columns = [c for c in REQUIRED_COLUMNS if c not in fields]
    if not rows or missing_columns:
        raise SampleSheetError(
            f"sample sheet {sheet}: " + (f"missing column(s) {', '.join(missing_columns)}" if rows else "no samples")
            + "; the header must be: sample<TAB>fastq_1<TAB>fastq_2"
        )
    problems: list[str] = []
    samples: dict[str, Sample] = {}
    for line_number, row in enumerate(rows, start=2):
        name = (row.get("sample") or "").strip()
        where = f"line {line_number}, sample {name or '(empty)'}"
        if not SAMPLE_NAME.match(name):
            problems.append(f"{where}: sample names use letters, digits, '.', '_' or '-'")
            continue
        if name in samples:
            problems.append(f"{where}: sample {name} is listed twice")
            continue
        paths = []
        for column in ("fastq_1", "fastq_2"):
            value = (row.get(column) or "").strip()
            file = (sheet.parent / value).resolve() if value else None
            if file is None:
                problems.append(f"{where}: column {column} is empty")
            elif not file.is_file():
                problems.append(f"{where}: {column} file {file} does not exist")
            paths.append(file)
        if all(paths):
            samples[name] = Sample(name, paths[0], paths[1])
    if problems:
        raise SampleSheetError(f"sample sheet {sheet} has {len(problems)} problem(s):\n  "
                               + "\n  ".join(problems))
    return samples
