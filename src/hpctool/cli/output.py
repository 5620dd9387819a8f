"""Printing helpers shared by the command modules."""

from __future__ import annotations

import json
from typing import Any

from hpctool.progress import to_stderr

progress = to_stderr  # the one progress printer (hpctool.progress)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
