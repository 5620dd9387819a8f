"""Property tests: mutated configs and values never end in a traceback, only in findings or ConfigError."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpctool.cluster import DEFAULT_CLUSTER_CONFIG
from hpctool.configs.findings import LEVELS
from hpctool.configs.render import VALUES_DIR, render_values
from hpctool.configs.validate import validate_config, validate_file
from hpctool.errors import ConfigError

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
    assert report.exit_code in (0, 1)


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
