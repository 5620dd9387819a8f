"""Helpers shared by the tests (imported as ``support.*``; tests never import each other or conftest)."""
