"""The demo's parts (scripts/demo.d) are shell with Python inside: the names they import must exist
(the demo runs end to end on the twin; this catches a moved function without starting it)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

DEMO_PARTS = sorted((Path(__file__).resolve().parents[1] / "scripts" / "demo.d").glob("*.sh"))
_HEREDOC = re.compile(r"python\b[^\n]*<<'PY'\n(.*?)\nPY\n", re.DOTALL)


def test_there_are_demo_parts_with_python() -> None:
    assert sum(len(_HEREDOC.findall(p.read_text())) for p in DEMO_PARTS) >= 3


@pytest.mark.parametrize("part", DEMO_PARTS, ids=lambda p: p.name)
def test_every_name_a_demo_part_imports_exists(part: Path) -> None:
    for code in _HEREDOC.findall(part.read_text()):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                        f"{part.name}: from {node.module} import {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
