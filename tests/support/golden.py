"""Golden files (``tests/golden/``): rendered text compared with what was accepted once."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest


def assert_golden(actual: str, expected_path: Path) -> None:
    """Compare rendered text with a golden file; HPCTOOL_UPDATE_GOLDEN=1 rewrites it. The unified
    diff is the failure message."""
    if os.environ.get("HPCTOOL_UPDATE_GOLDEN") == "1":
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_text(actual)
    expected = expected_path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            str(expected_path), "rendered"))
        pytest.fail(f"rendered text differs from {expected_path} (HPCTOOL_UPDATE_GOLDEN=1 to accept):\n{diff}")
