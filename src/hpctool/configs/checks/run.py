"""Run hpctool's cross-checks: every check registered in :mod:`~hpctool.configs.checks.registry`
by the modules below, in their order."""

from __future__ import annotations

from typing import Any

from hpctool.configs.checks import accounting, directory, exposure, operations, sizing
from hpctool.configs.checks.registry import CHECKS, Config, Issue
from hpctool.configs.findings import Finding, NotChecked
from hpctool.configs.instances import catalog

# Importing the modules registers their checks; they run (and their findings are listed) in this
# order, and in the order they are defined within a module.
CHECK_MODULES = (sizing, exposure, operations, accounting, directory)
ORDER = [name for module in CHECK_MODULES for name, c in CHECKS.items() if c.run.__module__ == module.__name__]
CHECK_NAMES = frozenset(CHECKS)  # what `--suppress NAME` takes
assert len(ORDER) == len(CHECKS), "a check module is missing from CHECK_MODULES"


def run_check(name: str, config: Config) -> tuple[list[Finding], list[NotChecked]]:
    """One check on a config: its findings (check ``hpctool:<name>``) and what it could not see."""
    findings: list[Finding] = []
    not_checked: list[NotChecked] = []
    for item in CHECKS[name].run(config):
        if isinstance(item, Issue):
            findings.append(Finding(item.level, item.path, item.message, item.hint, f"hpctool:{name}"))
        else:
            not_checked.append(item)
    return findings, not_checked


def hpctool_findings(config: Any, region: str | None = None) -> tuple[list[Finding], list[NotChecked]]:
    """Run every hpctool cross-check on a parsed config."""
    instances = catalog()
    view = Config(config, instances, region)
    findings: list[Finding] = []
    not_checked: list[NotChecked] = []
    for name in ORDER:
        found, missed = run_check(name, view)
        findings += found
        not_checked += missed
    if instances is None:
        not_checked.append(NotChecked("hpctool:instances", "instance-type facts (vCPUs, memory, regional "
                                      "offering): moto's EC2 data is not installed (uv sync --group dev)"))
    return findings, not_checked
