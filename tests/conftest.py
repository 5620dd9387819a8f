"""Shared fixtures. Tests that need Slurm use ``twin``: the suite starts the real local twin
itself, once per session, and holds a lock so two test runs on one machine never share it
while one of them drains or kills nodes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool.errors import TwinError
from hpctool.polling import poll_until
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import job_active
from hpctool.twin import Twin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


TWIN_GROUP = "twin"


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs two pytest-xdist workers (``--dist loadgroup``): every test of a module that
    uses the twin (its marker or fixture) goes to one worker, one after another, as the twin is
    one machine-wide cluster; the other worker runs the rest meanwhile. Whole modules, because a
    twin module's other tests may touch the same daemons or /etc/slurm. The twin's tests come
    first: they are the long pole, and xdist hands out work in collection order."""
    twin_modules = {_module(item) for item in items
                    if item.get_closest_marker("twin") or "twin" in getattr(item, "fixturenames", ())}
    for item in items:
        if _module(item) in twin_modules:
            item.add_marker(pytest.mark.xdist_group(TWIN_GROUP))
    if config.getvalue("dist") == "loadgroup":
        items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)  # stable


def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker, stop when the groups did not reach the test ids (a pytest upgrade did
    that once, pytest-xdist#1386): two workers would then wait on each other for the twin."""
    if not hasattr(session.config, "workerinput") or not session.config.getvalue("loadgroup"):
        return
    ungrouped = [item.nodeid for item in session.items
                 if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(f"pytest-xdist did not group {ungrouped[0]} (and {len(ungrouped) - 1} more): "
                                "check the pytest / pytest-xdist versions in pyproject.toml")


# The suite's twin: the default config with 2 static nodes per queue (most tests want nodes up
# at once) and 1 dynamic node per compute resource, on a short time scale (idle nodes power down
# after 12 s, a hung boot times out after 36 s) so that the elastic tests stay short.
TWIN_OPTIONS = {"static_per_queue": 2, "max_dynamic": 1, "time_scale": 0.02}


@pytest.fixture(scope="session")
def twin() -> Iterator[Twin]:
    """The real local twin, up and with every node idle (static) or powered down (dynamic)."""
    instance = Twin()
    with instance.exclusive_use():
        try:
            instance.up(**TWIN_OPTIONS)
        except TwinError as error:
            if "already up" not in error.message:
                raise
            instance.down()  # e.g. a demo's twin of other options: the suite's own comes up
            instance.up(**TWIN_OPTIONS)
        # Jobs of an earlier run that was killed come back with the twin (slurmctld saves its
        # state): the suite holds the twin for itself and starts from an empty queue.
        instance.cancel_all_jobs()
        reset_twin(instance)
        os.environ["SLURM_CONF"] = str(instance.slurm_conf)
        yield instance


def reset_twin(twin: Twin) -> None:
    """Nodes a test (or a previous run) took out come back; injected faults are cleared."""
    from hpctool.twin import capacity

    layout = twin.layout()
    for queue in layout.queues:
        capacity.set_faults(twin.paths, layout, queue["name"], restore=True)
    twin.resume_nodes()
    for node in layout.static_nodes():  # a node a previous run reclaimed comes back
        twin.start_node(node.name)
    # An idle powered-up dynamic node would power down by itself after SuspendTime (12 s here);
    # clustermgtd's reset does it at once.
    states = twin.slurm.node_states()
    for node in layout.dynamic_nodes():
        if states.get(node.name) == "idle":
            twin.slurm.update_node(node.name, "power_down_force")
    wait_all_idle(twin)


@pytest.fixture
def slurm(twin: Twin) -> Slurm:
    return twin.slurm


def wait_all_idle(twin: Twin, timeout: float = 90) -> None:
    """Wait until no job is left, every static node is idle and every dynamic node powered down
    and idle (after a test that drained, killed or booted nodes)."""
    layout = twin.layout()
    dynamic = {n.name for n in layout.dynamic_nodes()}
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        active = [j for j in twin.slurm.jobs() if job_active(j.get("JobState", ""))]
        states = twin.slurm.node_states()
        if not active and all(s == "idle" or (n in dynamic and s == "idle~") for n, s in states.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"twin did not become idle: {states}")


def wait_job(slurm: Slurm, job_id: str, timeout: float = 90) -> str:
    """Wait until a job has finished in accounting; return its final state."""
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        records = slurm.sacct([job_id])
        if records and records[-1].finished:
            return records[-1].state
        state = records[-1].state if records else "UNKNOWN"
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {state} after {timeout} s")


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value."""
    return poll_until(predicate, timeout=timeout, interval=interval,
                      on_timeout=lambda: AssertionError(f"timed out after {timeout} s waiting for {what}"))


def assert_golden(actual: str, expected_path: Path) -> None:
    """Compare rendered text with a golden file; HPCTOOL_UPDATE_GOLDEN=1 rewrites it. The unified
    diff is the failure message."""
    import difflib

    if os.environ.get("HPCTOOL_UPDATE_GOLDEN") == "1":
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_text(actual)
    expected = expected_path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            str(expected_path), "rendered"))
        pytest.fail(f"rendered text differs from {expected_path} (HPCTOOL_UPDATE_GOLDEN=1 to accept):\n{diff}")
