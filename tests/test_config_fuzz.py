"""Property tests: mutated configs and values never end in a traceback, only in findings or ConfigError."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.configs.findings import LEVELS
from hpctool.configs.render import VALUES_DIR, render_values
from hpctool.configs.validate import validate_config, validate_file
from hpctool.errors import ConfigError, UsageError

DEV = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
DEV_VALUES = yaml.safe_load((VALUES_DIR / "dev.yaml").read_text())
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["0.0.0.0/0", "SPOT", "v1.0", "alinux2", "REPLACE_ME",
                                                           "f2.6xlarge", "c7i.4xlarge", "default", "s3://x-eu-west-1/a"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
mutations = st.lists(st.tuples(st.sampled_from(["set", "delete", "rename"]), st.integers(0, 10**6), values),
                     min_size=1, max_size=4)


def _nodes(node, out):
    """Every (container, key) pair of a nested config."""
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _nodes(node[key], out)
    elif isinstance(node, list):
        for index in range(len(node)):
            out.append((node, index))
            _nodes(node[index], out)
    return out


def mutate(config, plan):
    config = copy.deepcopy(config)
    for action, pick, value in plan:
        spots = _nodes(config, [])
        if not spots:
            break
        container, key = spots[pick % len(spots)]
        if action == "set":
            container[key] = value
        elif action == "delete":
            container.pop(key)
        elif isinstance(container, dict):
            container[f"{key}x"] = container.pop(key)
    return config


def assert_report(report) -> None:
    for finding in report.findings:
        assert finding.level in LEVELS and finding.path and finding.message and finding.hint
    assert report.exit_code in (0, 1, 3)


@SETTINGS
@given(mutations)
def test_mutated_config_gives_findings_not_tracebacks(plan) -> None:
    assert_report(validate_config(mutate(DEV, plan)))


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_gives_findings_not_tracebacks(tmp_path_factory, text) -> None:
    path: Path = tmp_path_factory.mktemp("fuzz") / "cluster.yaml"
    path.write_text(text)
    assert_report(validate_file(path))


@settings(max_examples=60, deadline=None)
@given(mutations)
def test_mutated_values_render_or_raise_config_error(plan) -> None:
    try:
        text = render_values(mutate(DEV_VALUES, plan), "fuzz.yaml")
    except ConfigError as error:
        assert error.message and error.hint
    else:
        assert isinstance(yaml.safe_load(text), dict)


# --- bad input classes (issue 11): encodings, aliases, duplicate keys, huge files, directories ----------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def test_billion_laughs_is_refused_fast(tmp_path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)  # 10**9 leaves once expanded: refused before anything expands it (time: the benchmark)
    report = validate_file(path)
    assert not report.valid and "aliases" in report.findings[0].message and report.findings[0].check == "yaml"


def test_recursive_alias_is_refused(tmp_path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a\n  b: *a\n")
    report = validate_file(path)
    assert not report.valid and "recursive" in report.findings[0].message


def test_small_aliases_are_fine(tmp_path) -> None:
    config = DEFAULT_CLUSTER_CONFIG.read_text().replace("Imds:\n  ImdsSupport: v2.0", "Imds: &imds\n  ImdsSupport: v2.0")
    path = tmp_path / "anchors.yaml"
    path.write_text(config + "\nx-unused: *imds\n")
    report = validate_file(path)
    assert all(f.check != "yaml" for f in report.findings)


def test_duplicate_key_is_an_error_with_its_line(tmp_path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("Region: us-east-1\nImage:\n  Os: ubuntu2204\nRegion: eu-west-1\n")
    report = validate_file(path)
    assert not report.valid
    assert "duplicate key 'Region'" in report.findings[0].message and "line 4" in report.findings[0].message


@pytest.mark.parametrize("data, words", [
    ("Region: München\n".encode("latin-1"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("\ufeffRegion: us-east-1\n".encode(), None),  # a UTF-8 BOM is fine
    ("Region: us-east-1\n".encode("utf-16"), "binary"),
])
def test_encodings_give_findings_not_tracebacks(tmp_path, data: bytes, words: str | None) -> None:
    path = tmp_path / "enc.yaml"
    path.write_bytes(data)
    report = validate_file(path)
    file_errors = [f for f in report.findings if f.check == "yaml"]
    if words is None:
        assert not file_errors
    else:
        assert file_errors and words in file_errors[0].message and file_errors[0].hint


def test_huge_file_is_refused_and_large_real_one_is_fast(tmp_path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("Tags:\n" + "".join(f"  - Key: k{i}\n    Value: v{i}\n" for i in range(120_000)))
    report = validate_file(huge)
    assert "MiB" in report.findings[0].message and report.findings[0].check == "yaml"
    config = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
    config["Tags"] = [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(20_000)]  # ~0.9 MB, under the cap
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(config))
    report = validate_file(big)  # its time against ParallelCluster's schema is in benchmarks/bench_validate.py
    assert all(f.check != "yaml" for f in report.findings)
    assert not [f for f in report.findings if f.path.startswith("Tags[")]  # 20,000 plain tags are fine


def test_directory_and_missing_file_are_usage_errors(tmp_path) -> None:
    with pytest.raises(UsageError):
        validate_file(tmp_path)
    with pytest.raises(UsageError):
        validate_file(tmp_path / "absent.yaml")


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_findings_not_tracebacks(tmp_path_factory, data) -> None:
    path: Path = tmp_path_factory.mktemp("bytes") / "cluster.yaml"
    path.write_bytes(data)
    assert_report(validate_file(path))
