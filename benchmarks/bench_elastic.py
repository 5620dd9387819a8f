"""The elastic twin: how long a job waits for a powered-down node, and a capacity failover.

- submit -> RUNNING on an idle static node (the baseline) against on a powered-down dynamic node
  (the boot delay, slurmd registering, and Slurm 22.05's background check of booted nodes);
- submit -> RUNNING when the first compute resource has no capacity (InsufficientInstanceCapacity,
  ParallelCluster's fast failover to the queue's other resource) against a plain dynamic boot.

Runs on the test suite's twin layout (2 static nodes per queue, 1 dynamic per compute resource,
time scale 0.02), under the suite's lock.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks import twin_up
from hpctool.polling import poll_until
from hpctool.slurm.parse import node_powered_down
from hpctool.twin import Twin, capacity

ROUNDS = 4


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _time_to_running(twin: Twin, options: list[str]) -> float:
    start = time.monotonic()
    job = twin.slurm.sbatch(["--output=/dev/null", *options], wrap="sleep 1")
    while twin.slurm.job(job).get("JobState") != "RUNNING":
        if twin.slurm.job(job).get("JobState") in {"COMPLETED", "FAILED", "CANCELLED"}:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - start
    while twin.slurm.job(job).get("JobState") not in {"COMPLETED", "FAILED", "CANCELLED"}:
        time.sleep(0.2)
    return elapsed


def _wait_powered_down(twin: Twin, nodes: list[str]) -> None:
    poll_until(lambda: all(node_powered_down(twin.node_state(n)) and twin.node_state(n).startswith("idle")
                           for n in nodes), timeout=300, interval=0.5,
               on_timeout=lambda: RuntimeError(f"{', '.join(nodes)} not powered down within 300 s"))


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        layout = twin.layout()
        for queue in layout.queues:
            capacity.set_faults(twin.paths, layout, queue["name"], restore=True)
        twin.resume_nodes()
        compute_dynamic = [n.name for n in layout.dynamic_nodes() if n.queue == "compute"]
        spot_dynamic = [n.name for n in layout.dynamic_nodes() if n.queue == "spot"]
        spot_static = [n.name for n in layout.static_nodes() if n.queue == "spot"]

        static, dynamic = [], []
        for index in range(ROUNDS):
            _progress(f"round {index + 1}/{ROUNDS}: static, then powered-down node")
            static.append(_time_to_running(twin, ["--partition=compute", "--constraint=static"]))
            _wait_powered_down(twin, compute_dynamic)
            dynamic.append(_time_to_running(twin, ["--partition=compute", "--constraint=dynamic"]))

        failover = []
        for name in spot_static:
            twin.slurm.update_node(name, "drain", reason="bench: dynamic only")
        try:
            for index in range(ROUNDS):
                _progress(f"round {index + 1}/{ROUNDS}: capacity failover")
                _wait_powered_down(twin, spot_dynamic)
                capacity.set_faults(twin.paths, layout, "spot/mixed16", insufficient_for=600)
                failover.append(_time_to_running(twin, ["--partition=spot", "--requeue"]))
                capacity.set_faults(twin.paths, layout, "spot/mixed16", restore=True)
                capacity.reenable(twin, layout, ["spot/mixed16"])
        finally:
            for name in spot_static:
                twin.slurm.update_node(name, "resume")

    s, d, f = statistics.median(static), statistics.median(dynamic), statistics.median(failover)
    print(f"""
## Elastic twin

submit -> RUNNING, {ROUNDS} rounds each, boot delay 1 s (`--slow-boot` default), time scale 0.02:

| node | median | each |
| --- | --- | --- |
| idle static node (baseline) | {s:.2f} s | {', '.join(f'{t:.2f}' for t in static)} s |
| powered-down dynamic node (`idle~`) | {d:.1f} s | {', '.join(f'{t:.1f}' for t in dynamic)} s |
| first resource out of capacity, failover to the other | {f:.1f} s | {', '.join(f'{t:.1f}' for t in failover)} s |

A powered-down node costs {d / max(s, 1e-3):.0f}x a static one ({d - s:.1f} s more): the 1 s boot,
slurmd registering, and Slurm noticing the boot. A capacity
failover costs {f / max(d, 1e-3):.1f}x a plain boot (the failed resume, the requeue, and the boot
of the other resource's node).
""")


if __name__ == "__main__":
    main()
