"""Where the folders hpctool ships live: ``bootstrap/``, ``envs/``, ``snakemake/``, ``cluster-configs/``.

They stay at the repository root (people edit them there), and the wheel carries a copy of each
under ``hpctool/_data/`` (``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml),
with the same layout, so relative paths between them (the Snakefile's ``../../../envs``) hold in
both. Installed from a wheel, :func:`data_root` is that ``_data/`` folder; in a checkout or an
editable install (where ``_data/`` does not exist beside this file) it is the repository root.
(hatch's editable install also copies the folders to ``site-packages/hpctool/_data/``; nothing
reads that copy, since this file then lives in ``src/hpctool/``, and edits in the checkout count.)
"""

from __future__ import annotations

from pathlib import Path

from hpctool.errors import SetupError

# What the wheel carries (keep in step with force-include in pyproject.toml).
SHIPPED = ("bootstrap", "envs", "snakemake", "cluster-configs", "scripts/make_test_data.py")

_PACKAGE_DIR = Path(__file__).resolve().parent
_WHEEL_DATA = _PACKAGE_DIR / "_data"
_CHECKOUT_ROOT = _PACKAGE_DIR.parents[1]  # src/hpctool -> the repository root


def data_root() -> Path:
    """The folder that holds the shipped folders: the wheel's ``_data/`` or the checkout's root."""
    # Never raises: modules compute their paths at import time, and a missing file is reported
    # where it is read (with the path in the message).
    return _WHEEL_DATA if _WHEEL_DATA.is_dir() else _CHECKOUT_ROOT


def path(name: str) -> Path:
    """A shipped folder or file by its path at the repository root, e.g. ``"snakemake"``.

    Only what the wheel carries can be asked for, so a checkout-only path fails in a checkout too.
    """
    top = name.strip("/")
    if not any(top == item or top.startswith(item + "/") for item in SHIPPED):
        raise SetupError(f"{name!r} is not one of the folders hpctool ships", f"shipped: {', '.join(SHIPPED)}")
    return data_root() / top


def checkout_root() -> Path:
    """The repository root of a checkout (where scripts/setup.sh puts ``.tools/``)."""
    return _CHECKOUT_ROOT
