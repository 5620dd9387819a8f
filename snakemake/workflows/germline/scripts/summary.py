"""The germline summary table: one row per sample from `samtools flagstat` and `bcftools stats`.

Run by the `summary` rule (Snakemake's `script:` gives it the `snakemake` object); the parsers
are plain functions so tests call them on real tool output.
"""

import re
from pathlib import Path

COLUMNS = ["sample", "reads", "mapped_pct", "properly_paired_pct", "duplicates_pct", "snvs", "indels", "ts_tv"]


def parse_flagstat(text: str) -> dict[str, int]:
    """Counts that passed QC from `samtools flagstat` (``N + M label`` lines)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"(\d+) \+ \d+ (.+?)(?: \(|$)", line)
        if match:
            counts.setdefault(match.group(2).strip(), int(match.group(1)))
    return counts


def parse_bcftools_stats(text: str) -> dict[str, float]:
    """The SN (summary numbers) and TSTV lines of `bcftools stats`."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "SN" and len(fields) >= 4:
            values[fields[2].rstrip(":")] = float(fields[3])
        elif fields[0] == "TSTV" and len(fields) >= 5:
            values["ts/tv"] = float(fields[4])
    return values


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}" if whole else "0.00"


def summary_row(sample: str, flagstat_text: str, stats_text: str) -> list[str]:
    flags = parse_flagstat(flagstat_text)
    stats = parse_bcftools_stats(stats_text)
    total = flags.get("in total", 0)
    return [sample, str(total), _pct(flags.get("mapped", 0), total),
            _pct(flags.get("properly paired", 0), flags.get("paired in sequencing", 0)),
            _pct(flags.get("duplicates", 0), total),
            str(int(stats.get("number of SNPs", 0))), str(int(stats.get("number of indels", 0))),
            f"{stats.get('ts/tv', 0.0):.2f}"]


def summary_table(samples: list[str], flagstats: list[str], stats: list[str]) -> str:
    rows = [COLUMNS] + [summary_row(s, Path(f).read_text(), Path(v).read_text())
                        for s, f, v in zip(samples, flagstats, stats, strict=True)]
    return "".join("\t".join(row) + "\n" for row in rows)


if "snakemake" in globals():
    table = summary_table(snakemake.params.samples, snakemake.input.flagstat, snakemake.input.stats)  # noqa: F821
    Path(snakemake.output[0]).write_text(table)  # noqa: F821
