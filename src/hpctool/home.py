"""Where hpctool keeps its state on this machine: ``$HPCTOOL_HOME``, default ``~/.local/share/hpctool``
(the twin, refreshed prices, the remote run manifest, notebook URLs)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$HPCTOOL_HOME`` when set (and not empty), else ``~/.local/share/hpctool``; read on every call,
    so a test or a command that sets it afterwards is heard."""
    value = os.environ.get("HPCTOOL_HOME")
    return Path(value) if value else Path.home() / ".local" / "share" / "hpctool"
