"""The part of EC2 that moto lacks: instances that boot. ``python -m hpctool.twin.instance_hosts
--home DIR`` watches the twin's moto and ParallelCluster's node table and, as
:func:`hpctool.twin.instances.plan_hosts` decides, boots a node host (its slurmd started with
``-b``, at the instance's private address) for every instance ParallelCluster launched for a node,
once its boot delay has passed, and ends the host when its instance is terminated, stopped or gone,
or the node was given another one. Started and stopped with the twin (:mod:`hpctool.twin.pcnode`).

We write this loop ourselves because moto keeps instances as records only; on EC2 the instance's
own boot (and ParallelCluster's bootstrap on it) starts slurmd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hpctool.atomic import write_atomic
from hpctool.errors import HpctoolError
from hpctool.twin import capacity
from hpctool.twin.ec2 import twin_server
from hpctool.twin.instances import HostPlan, compute_instances, node_assignments, plan_hosts
from hpctool.twin.layout import DEFAULT_BOOT_DELAY_S, TwinLayout

PROGRAM = "hpctool.twin.instance_hosts"
INTERVAL_S = 0.5


def _log(message: str) -> None:
    print(f"{datetime.now().isoformat(timespec='seconds')} {message}", flush=True)


def hosts_file(run_dir: Path) -> Path:
    """Node -> the instance id its running host was booted for (the watcher's own record)."""
    return run_dir / "instance-hosts.json"


def read_hosts(path: Path) -> dict[str, str]:
    """Node -> the instance its running host was booted for ({} when none is recorded)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def record_hosts(path: Path, hosts: dict[str, str]) -> None:
    """Add ``hosts`` to the record (atomically)."""
    write_atomic(path, json.dumps({**read_hosts(path), **hosts}, indent=2, sort_keys=True) + "\n")


def apply(twin, layout: TwinLayout, plan: HostPlan, hosts: dict[str, str], now: datetime) -> list[str]:
    """End, then boot, as the plan says; ``hosts`` is updated in place. A line per host."""
    done = []
    for end in plan.end:
        twin.stop_node(end.node)
        hosts.pop(end.node, None)
        done.append(f"{end.node}: host ended, instance {end.instance_id} {end.reason}")
    for boot in plan.due(now):
        if layout.node(boot.node) is None:
            done.append(f"{boot.node}: instance {boot.instance_id} is for no node of the twin: no host")
            continue
        twin.start_node(boot.node, boot=True, address=boot.address, instance_id=boot.instance_id)
        hosts[boot.node] = boot.instance_id
        done.append(f"{boot.node}: host booted at {boot.address} for instance {boot.instance_id}")
        if not layout.node(boot.node).dynamic:
            done.append(finalize_static(twin, boot.node))
    return done


def finalize_static(twin, node: str, timeout: float = 10) -> str:
    """What the end of ParallelCluster's compute bootstrap does on a static node (its finalize
    recipe): once slurmd answers, ``scontrol update state=resume`` (clustermgtd left the replaced
    node DOWN; a node that is idle already refuses, which is ignored there too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and twin.node_state(node).endswith("*"):
        time.sleep(0.25)
    try:
        twin.slurm.update_node(node, "resume", reason="Node start up")
    except HpctoolError as error:
        return f"{node}: resume after start up refused ({error.message})"
    return f"{node}: resumed after start up"


def boot_faults(faults: capacity.CapacityFaults) -> tuple[dict[tuple[str, str], float], set[tuple[str, str]]]:
    """``hpctool local capacity``'s boot faults: the boot delay per (queue, compute resource), and
    the resources whose instances never finish booting (ParallelCluster's timeouts take over)."""
    delays, hangs = {}, set()
    for key, fault in faults.resources.items():
        queue, _, resource = key.partition("/")
        delays[(queue, resource)] = capacity.boot_delay(fault)
        if fault.boot_hang:
            hangs.add((queue, resource))
    return delays, hangs


def without_hangs(plan: HostPlan, layout: TwinLayout, hangs: set[tuple[str, str]]) -> HostPlan:
    """The plan with the boots of hanging resources left out (their instances run, no host boots)."""
    def hangs_for(node: str) -> bool:
        entry = layout.node(node)
        return entry is not None and (entry.queue, entry.compute_resource) in hangs

    return replace(plan, boot=tuple(boot for boot in plan.boot if not hangs_for(boot.node)))


def run_once(twin, layout: TwinLayout, endpoint: str, hosts_path: Path) -> list[str]:
    hosts = read_hosts(hosts_path)
    delays, hangs = boot_faults(capacity.load(twin.paths))
    plan = plan_hosts(compute_instances(endpoint), node_assignments(endpoint), hosts, delays,
                      default_delay=DEFAULT_BOOT_DELAY_S)
    done = apply(twin, layout, without_hangs(plan, layout, hangs), hosts, datetime.now(UTC))
    if done:
        write_atomic(hosts_path, json.dumps(hosts, indent=2, sort_keys=True) + "\n")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROGRAM}")
    parser.add_argument("--home", required=True)
    args = parser.parse_args(argv)
    from hpctool.twin import Twin  # the twin with its services: a booted host gets them

    twin = Twin(args.home)
    while True:
        layout = twin.layout()
        if layout is None or not layout.pcnode:
            return 0
        try:
            endpoint = twin_server(twin.run_dir, layout.ports["Ec2Port"]).endpoint
            for line in run_once(twin, layout, endpoint, hosts_file(twin.run_dir)):
                _log(line)
        except HpctoolError as error:  # moto or slurmctld briefly away (a heal): next round
            _log(f"round failed: {error.message}")
        time.sleep(INTERVAL_S)


if __name__ == "__main__":
    sys.exit(main())
