"""Progress of long operations: features take a :data:`Progress` callback (default :func:`quiet`),
the CLI hands them :func:`to_stderr`, so stdout stays clean for ``--json``."""

from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """Progress nobody asked to see."""


def to_stderr(message: str) -> None:
    """Progress of a long operation: to stderr, indented, flushed at once."""
    print(f"  {message}", file=sys.stderr, flush=True)
