"""Who scales the twin: submit -> RUNNING on a powered-down dynamic node with hpctool's own resume
program (the baseline) against ParallelCluster's slurm_resume, clustermgtd and the instance watcher
(``--scaling parallelcluster``), on the test suite's twin layout, one twin after the other.
"""

from __future__ import annotations

import statistics
import sys

from benchmarks import TWIN_OPTIONS
from benchmarks.bench_elastic import _time_to_running, _wait_powered_down
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.twin import Twin

ROUNDS = 3


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _rounds(twin: Twin, scaling: str) -> list[float]:
    twin.down()
    twin.up(DEFAULT_CLUSTER_CONFIG, **{**TWIN_OPTIONS, "scaling": scaling})
    nodes = [n.name for n in twin.layout().dynamic_nodes() if n.queue == "compute"]
    times = []
    for index in range(ROUNDS):
        _progress(f"{scaling}: round {index + 1}/{ROUNDS}")
        _wait_powered_down(twin, nodes)
        times.append(_time_to_running(twin, ["--partition=compute", "--constraint=dynamic"]))
    return times


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        try:
            own = _rounds(twin, "twin")
            theirs = _rounds(twin, "parallelcluster")
        finally:
            twin.down()
            twin.up(DEFAULT_CLUSTER_CONFIG, **TWIN_OPTIONS)
    o, p = statistics.median(own), statistics.median(theirs)
    print(f"""
## Scaled by ParallelCluster's own daemons

submit -> RUNNING on a powered-down dynamic node, {ROUNDS} rounds each, boot delay 1 s, time scale 0.02:

| scaling | median | each |
| --- | --- | --- |
| hpctool's resume program (baseline) | {o:.1f} s | {', '.join(f'{t:.1f}' for t in own)} s |
| ParallelCluster's slurm_resume + clustermgtd + instance watcher | {p:.1f} s | {', '.join(f'{t:.1f}' for t in theirs)} s |

ParallelCluster's path costs {p / max(o, 1e-3):.2f}x hpctool's (its resume's start-up on its own
Python, RunInstances and the node table in moto, the watcher's poll).
""")


if __name__ == "__main__":
    main()
