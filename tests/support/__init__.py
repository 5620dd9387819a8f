"""Helpers shared by the tests (imported as ``support.*``; tests never import each other or conftest)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
