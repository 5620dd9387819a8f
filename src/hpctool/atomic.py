"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hpctool.errors import WriteError


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file in the same folder, ``fsync``, then rename over ``path``.

    Only over a regular file: a rename over ``/dev/null`` or a folder would replace it. A write
    that fails (the folder cannot be made, a folder or device at ``path``, a full disk) raises
    :class:`~hpctool.errors.WriteError` and leaves ``path`` as it was and no temporary file."""
    path = Path(path)
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise _refused(path, error) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        kind = "a folder" if stat.S_ISDIR(existing.st_mode) else "not a regular file (a device or a pipe)"
        raise WriteError(f"cannot write {path}: it is {kind}", "give the path of a file to write") from None
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except OSError as error:
        raise _refused(path, error) from error
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _refused(path, error) from error
        raise


def _refused(path: Path, error: OSError) -> WriteError:
    if isinstance(error, IsADirectoryError):
        reason = "a folder is there"
    elif isinstance(error, (FileExistsError, NotADirectoryError)):
        reason = f"{path.parent} is not a folder"
    else:
        reason = error.strerror or str(error)
    return WriteError(f"cannot write {path}: {reason}", "give a file path in a folder you may write to")
