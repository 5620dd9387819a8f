"""hpctool's benchmarks: each ``bench_*.py`` module measures one thing as a ratio against a
baseline in the same run, and prints a Markdown section for docs/benchmarks.md."""

from hpctool.errors import TwinError
from hpctool.twin import Twin

# The test suite's twin (tests/conftest.py TWIN_OPTIONS): static nodes for jobs that must start at
# once, one dynamic node per compute resource, a short time scale. Benchmarks measure on the same.
TWIN_OPTIONS = {"static_per_queue": 2, "max_dynamic": 1, "time_scale": 0.02}


def twin_up(twin: Twin) -> dict:
    """Bring up the benchmarks' twin; a twin of other options (a demo's) is restarted as this one."""
    try:
        return twin.up(**TWIN_OPTIONS)
    except TwinError as error:
        if "already up" not in error.message:
            raise
        twin.down()
        return twin.up(**TWIN_OPTIONS)
