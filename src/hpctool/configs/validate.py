"""``hpctool config validate``: legacy checks, ParallelCluster's schema, hpctool's cross-checks, --deep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpctool.cluster import load_yaml
from hpctool.configs.checks import hpctool_findings
from hpctool.configs.findings import ERROR, Finding, NotChecked, Report
from hpctool.configs.legacy import legacy_findings, looks_like_pcluster2
from hpctool.configs.schema import schema_findings
from hpctool.errors import ConfigError

# What no offline check can tell, with or without --deep.
ACCOUNT_ONLY = [
    NotChecked("account:network", "the subnets exist, compute subnets are private and reach S3 (NAT or endpoint)"),
    NotChecked("account:key-pair", "the EC2 key pair exists in the region"),
    NotChecked("account:quotas", "service quotas (vCPUs per instance family, spot, FSx capacity) allow MaxCount"),
    NotChecked("account:iam", "your credentials may create the cluster's IAM roles and resources"),
]


def validate_config(config: Any, source: str = "config", deep: bool = False) -> Report:
    """Validate an already-parsed config (a dict from YAML)."""
    report = Report(source)
    if not isinstance(config, dict):
        report.findings.append(Finding(ERROR, "(top level)", f"the config is a {type(config).__name__}, not a "
                                       "mapping", "a ParallelCluster config is a YAML mapping (Region:, HeadNode:, "
                                       "Scheduling: ...)", "schema"))
        return report
    legacy = legacy_findings(config)
    schema = [f for f in schema_findings(config) if not any(
        f.path == old.path or f.path.startswith(f"{old.path}.") for old in legacy)]
    ours, not_checked = hpctool_findings(config)
    report.findings = legacy + schema + ours
    report.not_checked = not_checked + ACCOUNT_ONLY
    report.checks_run = ["legacy", "schema", "hpctool"]
    if deep:
        if report.errors:
            report.not_checked.append(NotChecked("pcluster:validators", "ParallelCluster's full validators: "
                                                 "they need a config without errors; fix those first"))
        else:
            from hpctool.configs.deep import run_deep

            deep_findings, deep_not_checked, ran = run_deep(config)
            report.findings += deep_findings
            report.not_checked += deep_not_checked
            report.checks_run += [f"pcluster:{name}" for name in ran]
    return report


def validate_file(path: str | Path, deep: bool = False) -> Report:
    """Validate the config file at ``path``; a YAML syntax error is a finding, not an exception."""
    path = Path(path)
    try:
        config = load_yaml(path)
    except ConfigError as error:
        if not path.is_file():
            raise
        text = path.read_text(errors="replace")
        hint = ("this is a ParallelCluster 2 (INI) config: convert it with `pcluster3-config-converter`, then "
                "validate the YAML it writes") if looks_like_pcluster2(text) else error.hint
        report = Report(str(path))
        report.findings.append(Finding(ERROR, "(file)", error.message, hint, "yaml"))
        return report
    return validate_config(config, str(path), deep=deep)


def format_report(report: Report) -> str:
    """The human-readable report (the CLI prints it; --json prints Report.to_dict())."""
    lines = []
    for finding in sorted(report.findings, key=lambda f: ("error", "warning", "info").index(f.level)):
        lines.append(f"{finding.level.upper():7} {finding.path}: {finding.message}")
        lines.append(f"        hint: {finding.hint}  [{finding.check}]")
    if report.not_checked:
        lines.append("not checked (offline):")
        lines.extend(f"  - {item.check}: {item.reason}" for item in report.not_checked)
    verdict = "valid" if report.valid else "INVALID"
    lines.append(f"{report.source}: {verdict} ({len(report.errors)} error(s), {len(report.warnings)} warning(s))")
    return "\n".join(lines)

