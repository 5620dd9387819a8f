"""Real configs nobody on the project wrote (tests/data/configs/real/README.md): plain and --deep verdicts.

On a config ParallelCluster accepts: no ERROR, only the warnings listed in expected.yaml (each true for
that file), and --deep is "valid" or, where ParallelCluster's validators cannot run under moto,
"incomplete" (exit 3), never "valid" by default. --deep runs all files in one moto child process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpctool.cluster.config_file import load_config
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.configs.findings import EXIT_INCOMPLETE, INCOMPLETE
from hpctool.configs.validate import validate_configs, validate_file

CORPUS = Path(__file__).parent / "data" / "configs" / "real"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())
FILES = sorted(EXPECTED)


def test_every_corpus_file_has_an_expectation_and_a_source() -> None:
    on_disk = {p.name for p in CORPUS.glob("*.yaml")} - {"expected.yaml"}
    assert on_disk == set(EXPECTED)
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("name", FILES)
def test_plain_verdict(name: str) -> None:
    expected = EXPECTED[name]
    report = validate_file(CORPUS / name)
    assert report.verdict == expected["plain"], [f"{f.level} {f.path} {f.message}" for f in report.errors]
    warned = {f.check.removeprefix("hpctool:") for f in report.warnings}
    assert warned == set(expected["warnings"]), report.warnings
    assert all(f.path and f.message and f.hint for f in report.findings)
    if expected["plain"] == "valid":
        assert not report.errors


def test_no_false_positive_placeholders_in_real_configs() -> None:
    report = validate_file(CORPUS / "pcluster-example-slurm-full.yaml")
    flagged = {f.path for f in report.findings if f.check == "hpctool:placeholders"}
    assert "DevSettings.Cookbook.ExtraChefAttributes" not in flagged  # JSON, not a template marker
    assert {"CustomS3Bucket", "Tags[0].Key", "DirectoryService.DomainName",
            "SharedStorage[name3].FsxLustreSettings.KmsKeyId"} <= flagged  # String / string / xxxxxxxx fillers
    removed = [f for f in report.findings if f.path == "DevSettings.AwsBatchCliPackage"]
    assert removed and "AWS Batch" in removed[0].message and "spelling" not in removed[0].hint


def _leading_slash_uri() -> dict:
    config = yaml.safe_load((CORPUS / "it-slurm-accounting.yaml").read_text())
    database = config["Scheduling"]["SlurmSettings"]["Database"]
    database["Uri"] = "/" + database["Uri"]
    return config


@pytest.fixture(scope="module")
def deep_reports():
    """Every corpus file through --deep, plus a few variants, in one moto child process."""
    items = [(load_config(CORPUS / name), name) for name in FILES]
    items += [(yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text()), "default"), (_leading_slash_uri(), "slash-uri")]
    return {source: report for (_, source), report in zip(items, validate_configs(items, deep=True))}


@pytest.mark.parametrize("name", FILES)
def test_deep_verdict(deep_reports, name: str) -> None:
    expected, report = EXPECTED[name], deep_reports[name]
    assert report.verdict == expected["deep"], (
        [f"{f.level} {f.path} {f.message} [{f.check}]" for f in report.errors],
        [n for n in report.not_checked if n.kind == INCOMPLETE])
    if expected["deep"] == "incomplete":
        assert report.exit_code == EXIT_INCOMPLETE
        assert any(n.kind == INCOMPLETE and n.reason for n in report.not_checked)
    if expected["plain"] == "valid":
        assert not [f for f in report.findings if f.level == "error"]
        # every pcluster finding has a real path, not a placeholder for "somewhere"
        assert all(f.path not in ("", "(top level)") for f in report.findings if f.check.startswith("pcluster:"))
    if expected["deep"] == "valid":
        assert any(c.startswith("pcluster:") for c in report.checks_run)


def test_deep_lookups_moto_cannot_answer_are_not_checked_not_errors(deep_reports) -> None:
    placement = deep_reports["it-placement-group.yaml"]
    nc = {n.check: n for n in placement.not_checked}
    assert nc["pcluster:PlacementGroupNamingValidator"].kind == "account"
    assert "describe_placement_groups" in nc["pcluster:PlacementGroupNamingValidator"].reason
    iam = deep_reports["it-iam-policies.yaml"]
    assert "pcluster:AdditionalIamPolicyValidator" in iam.checks_run
    assert not iam.errors


def test_deep_paths_are_yaml_paths(deep_reports) -> None:
    memory = deep_reports["it-memory-based-scheduling.yaml"]
    warning = [f for f in memory.findings if f.check == "pcluster:InstancesMemorySchedulingWarningValidator"]
    assert warning and warning[0].path == "Scheduling.SlurmQueues[queue1].ComputeResources[1]"


def test_deep_finding_under_slurm_settings_has_its_yaml_path(deep_reports) -> None:
    """pcluster's model calls it Scheduling.settings; the YAML key is SlurmSettings. (The corpus
    file's Uri has no port: pcluster's validator says so as INFO.)"""
    uri = [f for f in deep_reports["it-slurm-accounting.yaml"].findings if f.check == "pcluster:DatabaseUriValidator"]
    assert uri and uri[0].path == "Scheduling.SlurmSettings.Database", uri
    assert str(uri[0].level) == "info" and "3306" in uri[0].message


def test_a_uri_pcluster_refuses_is_refused_offline(deep_reports) -> None:
    """The leading '/' pcluster's DatabaseUriValidator refuses: the plain check refuses it already, so
    --deep does not run on it (and does not report it valid)."""
    report = deep_reports["slash-uri"]
    ours = [f for f in report.errors if f.check == "hpctool:accounting"]
    assert [f.path for f in ours] == ["Scheduling.SlurmSettings.Database.Uri"] and "starts with '/'" in ours[0].message
    assert report.verdict == "invalid" and not any(c.startswith("pcluster:") for c in report.checks_run)


def test_deep_on_default_config(deep_reports) -> None:
    report = deep_reports["default"]
    assert report.valid and not report.incomplete, report.errors
    ran = set(report.checks_run)
    assert {"pcluster:InstancesCPUValidator", "pcluster:FsxStorageCapacityValidator"} <= ran
    not_checked = {n.check for n in report.not_checked}
    assert {"pcluster:KeyPairValidator", "pcluster:HeadNodeLaunchTemplateValidator",
            "pcluster:ComputeResourceLaunchTemplateValidator"} <= not_checked
    assert "pcluster:QueueSubnetsValidator" in not_checked  # ran against stubs only: not a pass
