"""``hpctool config validate``: legacy checks, ParallelCluster's schema, hpctool's cross-checks, --deep.

The plain checks never touch the network (see :mod:`.offline`); ``--deep`` runs ParallelCluster's
validators in one child process under moto for any number of configs (:mod:`.deep`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hpctool.cluster.config_file import LoadError, load_config
from hpctool.configs.checks.run import CHECK_NAMES, hpctool_findings
from hpctool.configs.findings import ERROR, INCOMPLETE, Finding, NotChecked, Report
from hpctool.configs.legacy import legacy_findings, looks_like_pcluster2
from hpctool.configs.schema import config_region, region_findings, schema_findings
from hpctool.errors import UsageError

# What no offline check can tell, with or without --deep.
ACCOUNT_ONLY = [
    NotChecked("account:network", "the subnets exist, compute subnets are private and reach S3 (NAT or endpoint)"),
    NotChecked("account:key-pair", "the EC2 key pair exists in the region"),
    NotChecked("account:quotas", "service quotas (vCPUs per instance family, spot, FSx capacity) allow MaxCount"),
    NotChecked("account:iam", "your credentials may create the cluster's IAM roles and resources"),
]


def check_suppressions(suppress: Iterable[str]) -> tuple[set[str], set[str]]:
    """Split ``--suppress`` names into hpctool checks and pcluster validators; unknown names are a UsageError."""
    ours, theirs = set(), set()
    for name in suppress:
        if name.startswith("pcluster:") and len(name) > len("pcluster:"):
            theirs.add(name.removeprefix("pcluster:"))
        elif name.removeprefix("hpctool:") in CHECK_NAMES:
            ours.add(f"hpctool:{name.removeprefix('hpctool:')}")
        else:
            raise UsageError(f"--suppress {name}: no such check", "use one of " + ", ".join(sorted(CHECK_NAMES)) +
                             ", or pcluster:VALIDATOR (e.g. pcluster:InstancesCPUValidator) with --deep")
    return ours, theirs


def _plain(config: Any, source: str, region: str | None,
           suppressed: Iterable[str] = ()) -> tuple[Report, dict | None]:
    """The offline checks; returns the report and the config --deep would run on (None: do not run)."""
    report = Report(source)
    if not isinstance(config, dict):
        report.findings.append(Finding(ERROR, "(top level)", f"the config is a {type(config).__name__}, not a "
                                       "mapping", "a ParallelCluster config is a YAML mapping (Region:, HeadNode:, "
                                       "Scheduling: ...)", "schema"))
        return report, None
    where = config_region(config, region)
    legacy = legacy_findings(config)
    schema, schema_not_checked = schema_findings(config, where)
    schema = [f for f in schema if not any(f.path == old.path or f.path.startswith(f"{old.path}.") for old in legacy)]
    ours, not_checked = hpctool_findings(config, where.name)
    # Where an hpctool check says what is wrong with a value, the schema's generic message on the
    # same value is only noise (unless that check is suppressed: the error must stay reported).
    explained = {f.path for f in ours if f.level == ERROR and f.check not in set(suppressed)}
    schema = [f for f in schema if f.path not in explained]
    report.findings = region_findings(config, where) + legacy + schema + ours
    report.not_checked = schema_not_checked + not_checked + ACCOUNT_ONLY
    report.checks_run = ["legacy", "schema", "hpctool"]
    return report, {**config, "Region": where.name}


def _suppress(report: Report, ours: set[str], theirs: set[str]) -> None:
    keep = []
    for finding in report.findings:
        name = finding.check.removeprefix("pcluster:")
        (report.suppressed if finding.check in ours or name in theirs else keep).append(finding)
    report.findings = keep


def validate_configs(items: Sequence[tuple[Any, str]], deep: bool = False, region: str | None = None,
                     suppress: Iterable[str] = ()) -> list[Report]:
    """Validate parsed configs ``[(config, source), ...]``; --deep runs all of them in one child process."""
    ours, theirs = check_suppressions(suppress)
    reports, deep_configs = [], []
    for config, source in items:
        report, deep_config = _plain(config, source, region, ours)
        _suppress(report, ours, theirs)
        reports.append(report)
        deep_configs.append(deep_config)
    if deep:
        from hpctool.configs.deep import run_deep_many

        todo = []
        for report, deep_config in zip(reports, deep_configs):
            if report.errors or deep_config is None:
                report.not_checked.append(NotChecked("pcluster:validators", "ParallelCluster's full validators: "
                                                     "they need a config without errors; fix those first",
                                                     INCOMPLETE))
            else:
                todo.append((report, deep_config))
        results = run_deep_many([c for _, c in todo], sorted(theirs))
        for (report, _), (findings, not_checked, ran) in zip(todo, results):
            report.findings += findings
            report.not_checked += not_checked
            report.checks_run += [f"pcluster:{name}" for name in ran]
            _suppress(report, ours, theirs)
    return reports


def validate_config(config: Any, source: str = "config", deep: bool = False, region: str | None = None,
                    suppress: Iterable[str] = ()) -> Report:
    """Validate an already-parsed config (a dict from YAML)."""
    return validate_configs([(config, source)], deep=deep, region=region, suppress=suppress)[0]


def read_config(path: Path) -> tuple[Any, Report | None]:
    """The parsed config, or a report with the reason it could not be read (a finding, not an exception).

    A missing path or a directory is a UsageError; `config diff` reads its files through this too.
    """
    try:
        return load_config(path), None
    except LoadError as error:
        hint = error.hint
        if "not valid YAML" in error.message:
            text = path.read_bytes()[:65536].decode("utf-8", errors="replace")
            if looks_like_pcluster2(text):
                hint = ("this is a ParallelCluster 2 (INI) config: convert it with `pcluster3-config-converter`, "
                        "then validate the YAML it writes")
        report = Report(str(path))
        report.findings.append(Finding(ERROR, "(file)", error.message, hint, "yaml"))
        return None, report


def validate_files(paths: Sequence[str | Path], deep: bool = False, region: str | None = None,
                   suppress: Iterable[str] = ()) -> list[Report]:
    """Validate config files; unreadable YAML is a finding. A missing path or a directory is a UsageError."""
    suppress = list(suppress)
    check_suppressions(suppress)
    loaded: list[tuple[Any, Report | None]] = [read_config(Path(p)) for p in paths]
    readable = [(config, str(p)) for p, (config, failed) in zip(paths, loaded) if failed is None]
    reports = iter(validate_configs(readable, deep=deep, region=region, suppress=suppress))
    return [failed if failed is not None else next(reports) for _, failed in loaded]


def validate_file(path: str | Path, deep: bool = False, region: str | None = None,
                  suppress: Iterable[str] = ()) -> Report:
    """Validate the config file at ``path``; a YAML syntax error is a finding, not an exception."""
    return validate_files([path], deep=deep, region=region, suppress=suppress)[0]


def format_report(report: Report) -> str:
    """The human-readable report (the CLI prints it; --json prints Report.to_dict())."""
    lines = []
    order = ("error", "warning", "info")
    for finding in sorted(report.findings, key=lambda f: order.index(str(f.level))):
        lines.append(f"{str(finding.level).upper():7} {finding.path}: {finding.message}")
        lines.append(f"        hint: {finding.hint}  [{finding.check}]")
    incomplete = [n for n in report.not_checked if n.kind == INCOMPLETE]
    if incomplete:
        lines.append("could not run (the result is incomplete):")
        lines.extend(f"  - {item.check}: {item.reason}" for item in incomplete)
    account = [n for n in report.not_checked if n.kind != INCOMPLETE]
    if account:
        lines.append("not checked (needs your AWS account):")
        lines.extend(f"  - {item.check}: {item.reason}" for item in account)
    if report.suppressed:
        lines.append(f"suppressed: {len(report.suppressed)} finding(s) of "
                     f"{', '.join(sorted({f.check for f in report.suppressed}))}")
    verdict = {"valid": "valid", "invalid": "INVALID", "incomplete": "INCOMPLETE"}[report.verdict]
    lines.append(f"{report.source}: {verdict} ({len(report.errors)} error(s), {len(report.warnings)} warning(s))")
    return "\n".join(lines)

