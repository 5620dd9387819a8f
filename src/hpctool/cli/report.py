"""`hpctool report [RUN_DIR]`: one self-contained HTML page of a run (or of every job since a time)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpctool import report
from hpctool.cli.output import progress
from hpctool.cost import prices


def register(subparsers: argparse._SubParsersAction) -> None:
    page = subparsers.add_parser(
        "report", help="an HTML page of a run: job timeline per node, cost per queue and rule, QC",
        description="Writes one self-contained HTML page (inline SVG, no scripts, nothing loaded) and prints "
                    "its path. Give a Snakemake run folder, or --since for every job in a window.")
    page.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a Snakemake run folder")
    page.add_argument("--since", help="every job since then (sacct -S), instead of a run folder")
    page.add_argument("--until", help="end of the window (sacct -E)")
    page.add_argument("-o", "--output", type=Path, help="the page (RUN_DIR/hpctool-report.html)")
    page.add_argument("--png", type=Path, help="also a PNG of the page (headless Chromium), e.g. for docs")
    page.add_argument("--config", type=Path, help="the cluster's config (the shipped default config, as the twin)")
    page.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    page.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    data = report.build(args.run_dir, since=args.since, until=args.until, config=args.config,
                        book=prices.load(args.prices))
    path = report.write(data, args.output or report.default_path(args.run_dir, args.since))
    progress(f"{len(data.bars)} job runs, total ${data.total:,.4f} (prices as of {data.price_date})")
    if args.png:
        report.screenshot(path, args.png)
        progress(f"PNG: {args.png}")
    print(path)
    return 0
