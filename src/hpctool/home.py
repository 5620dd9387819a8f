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


# Set in the environment of Slurm commands against a twin (``Twin.env()``, ``hpctool local env``):
# its home. What runs on the twin reads it to know it is not on a cluster.
TWIN_HOME_ENV = "HPCTOOL_TWIN_HOME"


def on_twin(env: dict[str, str] | None = None) -> bool:
    """Whether the Slurm of this environment is a twin's (``$HPCTOOL_TWIN_HOME`` set and not empty)."""
    return bool((env if env is not None else os.environ).get(TWIN_HOME_ENV))
