"""The local twin: start-up time, and how fast it takes and finishes 200 trivial jobs.

- start-up: a warm restart (`down` then `up`, database kept) against a cold one from nothing
  (`down --purge` then `up`, MariaDB initialised anew), each until every node is idle;
- throughput: 200 trivial jobs submitted by a loop of `sbatch` (the baseline) against one
  `sbatch --array=0-199`, each timed from first submission until accounting has all finished.

It takes the test suite's lock, so it never runs while tests use the twin.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks import twin_up
from hpctool.twin import Twin

JOBS = 200


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _time_up(twin: Twin) -> float:
    start = time.monotonic()
    twin_up(twin)
    return time.monotonic() - start


def _wait_finished(twin: Twin, job_ids: list[str], expected: int) -> None:
    while True:
        records = twin.slurm.sacct(job_ids)
        done = sum(1 for r in records if r.finished)
        if done >= expected:
            return
        time.sleep(0.5)


def _loop_of_sbatch(twin: Twin) -> tuple[float, float]:
    start = time.monotonic()
    ids = [twin.slurm.sbatch(["--partition=compute", "--output=/dev/null", "--job-name=bench"], wrap="true")
           for _ in range(JOBS)]
    submitted = time.monotonic() - start
    _wait_finished(twin, ids, JOBS)
    return submitted, time.monotonic() - start


def _array(twin: Twin) -> tuple[float, float]:
    start = time.monotonic()
    array_id = twin.slurm.sbatch(["--partition=compute", "--output=/dev/null", "--job-name=bench",
                                  f"--array=0-{JOBS - 1}"], wrap="true")
    submitted = time.monotonic() - start
    _wait_finished(twin, [array_id], JOBS)
    return submitted, time.monotonic() - start


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        warm, cold = [], []
        for _ in range(3):
            twin.down()
            warm.append(_time_up(twin))
        for _ in range(2):
            twin.down(purge=True)
            cold.append(_time_up(twin))
        twin.resume_nodes()

        loop_submit, loop_total = _loop_of_sbatch(twin)
        array_submit, array_total = _array(twin)

    warm_median, cold_median = statistics.median(warm), statistics.median(cold)
    print(f"""
## Local twin

Start-up until every one of the 8 nodes (4 partitions x 2) is idle:

| start | runs | median | each |
| --- | --- | --- | --- |
| warm (`down`, `up`: database and state kept) | {len(warm)} | {warm_median:.1f} s | {', '.join(f'{t:.1f}' for t in warm)} s |
| cold (`down --purge`, `up`: MariaDB initialised anew) | {len(cold)} | {cold_median:.1f} s | {', '.join(f'{t:.1f}' for t in cold)} s |

A cold start takes {cold_median / warm_median:.1f}x a warm one.

{JOBS} trivial jobs (`true`) on the `compute` partition (2 nodes x 4 virtual CPUs):

| how | submitted in | all finished (sacct) after | jobs/s end to end |
| --- | --- | --- | --- |
| loop of `sbatch` (baseline) | {loop_submit:.1f} s | {loop_total:.1f} s | {JOBS / loop_total:.1f} |
| one `sbatch --array=0-{JOBS - 1}` | {array_submit:.2f} s | {array_total:.1f} s | {JOBS / array_total:.1f} |

The array finishes in {array_total / loop_total:.2f}x the loop's time; submission alone is
{loop_submit / max(array_submit, 1e-3):.0f}x faster as one array.
""")


if __name__ == "__main__":
    main()
