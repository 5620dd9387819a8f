"""Waiting on the suite's twin (or any Slurm): until a job finished, every node is idle, a condition holds."""

from __future__ import annotations

import time

from hpctool.polling import poll_until
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import job_active

# The suite's twin: the default config with 2 static nodes per queue (most tests want nodes up
# at once) and 1 dynamic node per compute resource, on a short time scale (idle nodes power down
# after 12 s, a hung boot times out after 36 s) so that the elastic tests stay short.
SUITE_TWIN_OPTIONS = {"static_per_queue": 2, "max_dynamic": 1, "time_scale": 0.02, "scaling": "twin"}


def bring_up(twin, config, **options) -> None:
    """Up with this config and options: always the suite's own twin, whatever ran last (a demo, or
    a module's twin of another config), which ``up`` would keep as its default."""
    from hpctool.errors import TwinError

    try:
        twin.up(config, **options)
    except TwinError as error:
        if "already up" not in error.message:
            raise
        twin.down()
        twin.up(config, **options)


def reset_twin(twin) -> None:
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


def wait_all_idle(twin, timeout: float = 90) -> None:
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
