"""Shared fixtures. Tests that need Slurm use ``twin``: the suite starts the real local twin
itself, once per session (per pytest-xdist worker: each worker that runs twin tests has a twin of
its own), and holds a lock so two test runs on one machine never share a twin while one of them
drains or kills nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.home import home as default_home
from hpctool.slurm.client import Slurm
from hpctool.twin import Twin, machine
from hpctool.twin.core import port_base
from hpctool.twin.image import default_image
from support import REPO
from support.data import make_test_data
from support.twin import SUITE_TWIN_OPTIONS, bring_up, reset_twin


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


TWIN_GROUP = "twin"
# The twin modules split over two twins (two xdist groups, each on a worker and a twin of its own),
# about half the twin time each (measured: docs/benchmarks.md, "The suite"). The rest: TWIN_GROUP.
SECOND_TWIN_GROUP = "twin-2"
SECOND_TWIN_MODULES = {"tests/test_germline_twin.py", "tests/test_remote_twin.py", "tests/test_jobs_twin.py",
                       "tests/test_cost_twin.py", "tests/test_jobs_errors_twin.py", "tests/test_spot_handler_twin.py",
                       "tests/test_pcnode_twin.py"}


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs three pytest-xdist workers (``--dist loadgroup``): the modules that use the
    twin (its marker or fixture) form two groups, each run one test after another by one worker on
    its own twin; the third worker runs the rest meanwhile. Whole modules, because a twin module's
    other tests may touch the same daemons. The twins' tests come first: they are the long pole,
    and xdist hands out work in collection order."""
    twin_modules = {_module(item) for item in items
                    if item.get_closest_marker("twin") or "twin" in getattr(item, "fixturenames", ())}
    for item in items:
        if _module(item) in twin_modules:
            group = SECOND_TWIN_GROUP if _module(item) in SECOND_TWIN_MODULES else TWIN_GROUP
            item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("dist", None) == "loadgroup":  # None without pytest-xdist (-p no:xdist)
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


def _worker_twin_home() -> None:
    """The first worker (or a run without xdist) uses the default twin; worker N one of its own
    home and ports (hub), so two workers run twin tests side by side. Set for the whole worker:
    the CLI the tests run finds the same twin."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker[2:]) if worker[2:].isdigit() else 0
    if number:
        base = default_home()
        os.environ["HPCTOOL_HOME"] = str(base.with_name(f"{base.name}-suite-{number}"))
        os.environ["HPCTOOL_TWIN_PORT_BASE"] = str(port_base() + 1000 * number)


@pytest.fixture(scope="session")
def twin() -> Iterator[Twin]:
    """The real local twin, up and with every node idle (static) or powered down (dynamic)."""
    _worker_twin_home()
    instance = Twin()
    with instance.exclusive_use():
        bring_up(instance, DEFAULT_CLUSTER_CONFIG, **SUITE_TWIN_OPTIONS)
        # Jobs of an earlier run that was killed come back with the twin (slurmctld saves its
        # state): the suite holds the twin for itself and starts from an empty queue.
        instance.cancel_all_jobs()
        reset_twin(instance)
        os.environ["SLURM_CONF"] = str(instance.slurm_conf)
        os.environ["PATH"] = instance.env()["PATH"]  # the twin's Slurm clients (the image's 24.11)
        yield instance


@pytest.fixture(scope="session")
def slurm_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the node image's real Slurm clients (no cluster behind them): for tests of
    what needs the commands on the PATH (submitit looks for srun) but never a controller."""
    folder = tmp_path_factory.mktemp("slurm-clients")
    image = default_image()
    machine.write_clients(folder, image.require(), folder / "slurm.conf")
    return folder


@pytest.fixture
def slurm(twin: Twin) -> Slurm:
    return twin.slurm


@pytest.fixture
def shipped_prices(tmp_path, monkeypatch) -> None:
    """A price snapshot refreshed on this machine ($HPCTOOL_HOME/prices.json) must not change the figures."""
    monkeypatch.setenv("HPCTOOL_HOME", str(tmp_path / "hpctool-home"))


@pytest.fixture(scope="session")
def germline_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The germline workflow's seeded test data, made once per session."""
    return make_test_data(tmp_path_factory.mktemp("germline") / "test-data")
