"""The twin's cluster manager: the part of ParallelCluster's clustermgtd that a user meets.

Every loop (60 s on ParallelCluster, times the twin's time scale) it
- re-enables compute resources whose insufficient-capacity timeout has passed (their nodes go
  back to powered down, ready to boot again);
- replaces the static nodes a config update drained (``hpctool local update``), once idle;
- resets dynamic nodes that a failed or timed-out resume left down, or whose instance vanished
  (slurmd gone while Slurm thinks the node is up), to powered down: a stuck
  ``IDLE+CLOUD+POWERED_DOWN+NOT_RESPONDING`` or ``down~`` node is recovered (issue 7577 of
  aws-parallelcluster), as ``power_down_force`` does there.

Run as ``python -m hpctool.twin.manager --home DIR``; started and stopped with the twin.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from hpctool.errors import HpctoolError
from hpctool.slurm.parse import node_state_flags
from hpctool.twin import capacity, daemons
from hpctool.twin.conf import power_timings
from hpctool.twin.core import Twin
from hpctool.twin.layout import TwinLayout, TwinNode
from hpctool.twin.update import UPDATE_REASON

# clustermgtd's reason while it replaces an unhealthy static node (slurm_plugin/clustermgtd.py).
REPLACING_REASON = "Static node maintenance: unhealthy node is being replaced"

PROGRAM = "hpctool.twin.manager"


def _log(message: str) -> None:
    print(f"{datetime.now().isoformat(timespec='seconds')} {message}", flush=True)


def pid_file(twin: Twin) -> Path:
    return twin.run_dir / "clustermgtd.pid"


def run_once(twin: Twin, layout: TwinLayout, now: float | None = None) -> list[str]:
    """One loop of the manager; returns what it did, a line per node."""
    now = time.time() if now is None else now
    done: list[str] = []
    faults = capacity.load(twin.paths)
    reenable: set[str] = set()
    for key, fault in faults.resources.items():
        if fault.disabled_until and fault.disabled_until <= now:
            reenable.add(key)
            fault.disabled_until = 0.0
    if reenable:
        capacity.save(twin.paths, faults)
    records = {r.get("NodeName", ""): r for r in twin.slurm.nodes()}
    for node in layout.static_nodes():
        if _drained_for_update(records.get(node.name, {})):
            # clustermgtd takes a drained static node for unhealthy and replaces its instance.
            twin.slurm.update_node(node.name, "down", reason=REPLACING_REASON)
            twin.stop_node(node.name)
            twin.start_node(node.name)
            twin.slurm.update_node(node.name, "resume")
            done.append(f"{node.name}: drained by the update: replaced")
    for node in layout.dynamic_nodes():
        record = records.get(node.name)
        if record is None:
            continue
        action, state, reason = _recovery(twin, node, record, reenable, faults, now)
        if action:
            twin.slurm.update_node(node.name, state, reason=reason)
            done.append(f"{node.name}: {action}")
    return done


def _drained_for_update(record: dict[str, str]) -> bool:
    """A static node the config update drained, now without jobs (DRAINED, not DRAINING).
    ParallelCluster replaces every drained static node; the twin only those the update drained
    (its spot handler's drains stay for the tests and the user to see, docs/twin.md)."""
    base, flags = node_state_flags(record.get("State", ""))
    return "DRAIN" in flags and base in {"IDLE", "DOWN"} and record.get("Reason", "").startswith(UPDATE_REASON)


def _recovery(twin: Twin, node: TwinNode, record: dict[str, str], reenable: set[str],
              faults: capacity.CapacityFaults, now: float) -> tuple[str, str, str | None]:
    """What to do with one dynamic node: (what happened, the state to set, its reason)."""
    base, flags = node_state_flags(record.get("State", ""))
    reason = record.get("Reason", "")
    key = f"{node.queue}/{node.compute_resource}"
    if capacity.is_capacity_reason(reason):
        fault = faults.resources.get(key)
        disabled = fault is not None and fault.disabled_until > now and key not in reenable
        if disabled and base != "DOWN":
            # Slurm's idle_on_node_suspend made the failed node idle again: keep the resource
            # disabled until the timeout, as clustermgtd does.
            code = fault.code if fault else capacity.INSUFFICIENT_CODE
            return "still without capacity: kept down", "down", capacity.DISABLED_REASON.format(code=code)
        if not disabled and base == "DOWN":
            return "capacity is back: reset to powered down", "power_down_force", None
        return "", "", None
    if base == "DOWN" and not reason.startswith("spot-"):
        return f"down ({reason or 'no reason'}): reset to powered down", "power_down_force", None
    if "POWERED_DOWN" in flags and "NOT_RESPONDING" in flags:
        return "powered down but not responding: reset", "power_down_force", None
    powered_up = not flags & {"POWERED_DOWN", "POWERING_DOWN", "POWERING_UP"}
    if powered_up and "NOT_RESPONDING" in flags and not twin.slurmd_alive(node.name):
        return "its instance is gone: reset to powered down", "power_down_force", None
    return "", "", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROGRAM}")
    parser.add_argument("--home", required=True)
    parser.add_argument("--once", action="store_true", help="one loop, then exit")
    args = parser.parse_args(argv)
    twin = Twin(args.home)
    while True:
        layout = twin.layout()
        if layout is None:
            return 0
        try:
            for line in run_once(twin, layout):
                _log(line)
        except HpctoolError as error:  # slurmctld briefly away (a heal): try again next loop
            _log(f"loop failed: {error.message}")
        if args.once:
            return 0
        time.sleep(power_timings(layout).manager_interval)


class ManagerService:
    """The manager as a :class:`~hpctool.twin.core.TwinService` (only for twins with dynamic nodes)."""

    def ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]:
        return {}

    def pid_files(self, twin: Twin, layout: TwinLayout) -> dict[str, Path]:
        return {"clustermgtd": pid_file(twin)} if layout.dynamic_nodes() and not layout.pcnode else {}

    def start(self, twin: Twin, layout: TwinLayout) -> list[str]:
        # With --scaling parallelcluster, ParallelCluster's own clustermgtd runs instead (twin.pcnode).
        if not layout.dynamic_nodes() or layout.pcnode or daemons.pid_alive(daemons.read_pid(pid_file(twin))):
            return []
        process = daemons.spawn([sys.executable, "-m", PROGRAM, "--home", str(twin.home)],
                                twin.log_dir / "clustermgtd.log", env=twin.env())
        pid_file(twin).write_text(f"{process.pid}\n")
        return ["clustermgtd"]

    def stop(self, twin: Twin) -> list[str]:
        stopped = daemons.stop_pid(daemons.read_pid(pid_file(twin)), name="clustermgtd", program=PROGRAM, timeout=5)
        pid_file(twin).unlink(missing_ok=True)
        return ["clustermgtd"] if stopped else []


if __name__ == "__main__":
    sys.exit(main())
