"""envs/*.yaml: pinned conda environments the Lmod modules and the workflow rules are built from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
SNAKEFILES = [REPO / "snakemake" / "workflows" / "germline" / "Snakefile"]
DOCS = REPO / "docs" / "workflows.md"
MODULE_LINE = re.compile(r"^# hpctool-module: (?P<name>[a-z0-9][a-z0-9_-]*)/(?P<version>[0-9][0-9A-Za-z._-]*)$")
# An exact pin: name=version (conda's `=` match), no wildcards, ranges or build strings left open.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<version>[0-9][0-9A-Za-z._+-]*)$")


def test_there_are_envs_for_the_tools_and_jupyterlab() -> None:
    assert {p.stem for p in ENV_FILES} >= {"bwa", "samtools", "bcftools", "jupyterlab"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_parses_and_pins_every_package(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]
    module = MODULE_LINE.match(first_line)
    assert module, f"{path.name}: the first line must be `# hpctool-module: <name>/<version>`, got {first_line!r}"
    env = yaml.safe_load(path.read_text())
    assert set(env) == {"name", "channels", "dependencies"}, f"{path.name}: keys {sorted(env)}"
    assert env["name"] == path.stem
    assert env["channels"] == ["conda-forge", "bioconda"]
    pins = {}
    for dependency in env["dependencies"]:
        assert isinstance(dependency, str), f"{path.name}: {dependency!r} (no pip sections: conda pins only)"
        match = PIN.match(dependency)
        assert match, f"{path.name}: {dependency!r} is not pinned as name=version"
        pins[match.group("name")] = match.group("version")
    # The module's name/version is the env's main tool at its pinned version.
    assert pins.get(module.group("name")) == module.group("version"), (
        f"{path.name}: module {module.group('name')}/{module.group('version')} but pins {pins}")


def _conda_references() -> set[str]:
    names = set()
    for snakefile in SNAKEFILES:
        names |= set(re.findall(r'f"\{ENVS\}/([a-z0-9_-]+\.yaml)"', snakefile.read_text()))
    return names


def test_every_env_is_referenced_by_a_rule_or_documented() -> None:
    by_rules = _conda_references()
    documented = set(re.findall(r"envs/([a-z0-9_-]+\.yaml)", DOCS.read_text()))
    for path in ENV_FILES:
        assert path.name in by_rules | documented, f"{path.name} is used by no rule's conda: and not in {DOCS.name}"
    assert "jupyterlab.yaml" in documented


def test_every_conda_directive_names_an_existing_env() -> None:
    referenced = _conda_references()
    assert referenced >= {"bwa.yaml", "samtools.yaml", "bcftools.yaml"}
    assert referenced <= {p.name for p in ENV_FILES}
    # and every rule that runs a tool on the cluster has one (DRAGEN comes with its own host)
    pieces = re.split(r"^\s*rule (\w+):", SNAKEFILES[0].read_text(), flags=re.MULTILINE)
    shell_rules = {name: body for name, body in zip(pieces[1::2], pieces[2::2], strict=True) if "shell:" in body}
    assert {"index_reference", "align", "sort_markdup", "call_sample", "joint_call", "qc_sample"} <= set(shell_rules)
    for name, body in shell_rules.items():
        assert "conda:" in body or name == "dragen_align", f"rule {name} has no conda: env"
