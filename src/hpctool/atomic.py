"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hpctool.errors import UsageError


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file in the same folder, ``fsync``, then rename over ``path``.

    Only over a regular file: a rename over ``/dev/null`` or a folder would replace it."""
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise UsageError(f"{path}: cannot write here ({error.strerror})", "give the path of a file to write") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise UsageError(f"{path} is not a regular file", "give the path of a file to write (not a folder or a device)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
