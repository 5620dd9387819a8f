"""Shared fixtures. Tests that need Slurm use ``twin``: the suite starts the real local twin
itself, once per session, and holds a lock so two test runs on one machine never share it
while one of them drains or kills nodes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool.slurm import Slurm
from hpctool.twin import Twin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def twin() -> Iterator[Twin]:
    """The real local twin (default config, 2 nodes per queue), up and with every node idle."""
    instance = Twin()
    with instance.exclusive_use():
        instance.up()
        instance.resume_nodes()
        for node in instance.layout().nodes:  # a node a previous run reclaimed comes back
            instance.start_node(node.name)
        wait_all_idle(instance)
        os.environ["SLURM_CONF"] = str(instance.slurm_conf)
        yield instance


@pytest.fixture
def slurm(twin: Twin) -> Slurm:
    return twin.slurm


def wait_all_idle(twin: Twin, timeout: float = 60) -> None:
    """Wait until no job is left and every node is idle (after a test that drained or killed nodes)."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        active = [j for j in twin.slurm.jobs() if j.get("JobState") in {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"}]
        states = twin.slurm.node_states()
        if not active and all(s == "idle" for s in states.values()):
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
