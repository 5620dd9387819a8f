"""hpctool's benchmarks: each ``bench_*.py`` module measures one thing as a ratio against a
baseline in the same run, and prints a Markdown section for docs/benchmarks.md."""

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.errors import TwinError
from hpctool.twin import Twin

# The test suite's twin (tests/support/twin.py SUITE_TWIN_OPTIONS): static nodes for jobs that must start at
# once, one dynamic node per compute resource, a short time scale. Benchmarks measure on the same.
TWIN_OPTIONS = {"static_per_queue": 2, "max_dynamic": 1, "time_scale": 0.02, "scaling": "twin"}


def twin_up(twin: Twin) -> dict:
    """Bring up the benchmarks' twin from the default config (``up`` alone would keep the last
    twin's); a twin of another config or other options (a demo's) is restarted as this one."""
    try:
        return twin.up(DEFAULT_CLUSTER_CONFIG, **TWIN_OPTIONS)
    except TwinError as error:
        if "already up" not in error.message:
            raise
        twin.down()
        return twin.up(DEFAULT_CLUSTER_CONFIG, **TWIN_OPTIONS)
