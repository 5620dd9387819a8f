"""Data the tests make: the germline workflow's seeded test data set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hpctool.workflow import launch


def make_test_data(folder: Path, seed: int = 7) -> Path:
    """The seeded reference, reads and truth set (``scripts/make_test_data.py``) in ``folder``."""
    subprocess.run([sys.executable, str(launch.TEST_DATA_SCRIPT), str(folder), "--seed", str(seed)], check=True)
    return folder
