"""Submitting on the twin, against raw ``sbatch`` in the same run:

- many tasks: ``hpctool submit --array`` (one submitit job array) against a shell loop of ``sbatch``
  (one job per task);
- one job: ``hpctool submit -- CMD`` against ``sbatch --wrap CMD``, each a new process (start-up
  included), median of several, with the parts of hpctool's time (Python start, imports, the one
  ``sinfo``, submitit's pickle and sbatch).

The queue's nodes are drained while we submit, so only submission is timed (no job runs and loads
the machine meanwhile); every job is cancelled afterwards.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool.twin import Twin

TASKS = 1000
SINGLE_RUNS = 15
HPCTOOL = Path(sys.executable).with_name("hpctool")


def _median_s(argv: list[str], env: dict[str, str], runs: int = SINGLE_RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _pending(twin: Twin, name: str) -> int:
    out = twin.slurm.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"]).stdout
    return len(out.split())


def _cancel(twin: Twin, name: str) -> None:
    twin.slurm.run(["scancel", "-n", name])
    end = time.monotonic() + 60
    while _pending(twin, name) and time.monotonic() < end:
        time.sleep(0.5)


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        layout = twin.layout()
        queue = layout.queues[0]["name"]
        env = twin.env()
        for node in layout.queues[0]["nodes"]:
            twin.slurm.update_node(node, "drain", reason="bench: submission only")
        try:
            with tempfile.TemporaryDirectory(prefix="hpctool-bench-submit-") as tmp:
                inputs = Path(tmp) / "inputs.txt"
                inputs.write_text("".join(f"sample{i}\n" for i in range(TASKS)))
                start = time.monotonic()
                subprocess.run([str(HPCTOOL), "submit", "--queue", queue, "--name", "bench-array",
                                "--array", str(inputs), "--folder", tmp, "--", "echo {}"],
                               env=env, check=True, capture_output=True, text=True)
                array_s = time.monotonic() - start
                array_tasks = _pending(twin, "bench-array")
                _cancel(twin, "bench-array")
                _progress(f"hpctool submit --array: {array_tasks} tasks in {array_s:.2f} s")

                loop = (f'while read -r sample; do sbatch --parsable --partition={queue} --job-name=bench-loop '
                        f'--output=/dev/null --wrap "echo $sample" >/dev/null; done < {inputs}')
                start = time.monotonic()
                subprocess.run(["bash", "-c", loop], env=env, check=True)
                loop_s = time.monotonic() - start
                loop_tasks = _pending(twin, "bench-loop")
                _cancel(twin, "bench-loop")
                _progress(f"shell loop of sbatch: {loop_tasks} jobs in {loop_s:.2f} s")

                single = {
                    "sbatch": _median_s(["sbatch", "--parsable", f"--partition={queue}", "--job-name=bench-one",
                                         f"--output={tmp}/%j.out", "--wrap", "echo hi"], env),
                    "hpctool": _median_s([str(HPCTOOL), "submit", "--queue", queue, "--name", "bench-one",
                                          "--folder", tmp, "--", "echo hi"], env),
                    "python": _median_s([sys.executable, "-c", "pass"], env),
                    "imports": _median_s([sys.executable, "-c", "import hpctool.cli.jobs, hpctool.jobs.submission"], env),
                    "sinfo": _median_s(["sinfo", "-h", "-N", "-o", "%R|%P|%N|%c|%m|%l|%T|%f"], env),
                }
                _cancel(twin, "bench-one")
                _progress("one job: " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in single.items()))
        finally:
            for node in layout.queues[0]["nodes"]:
                twin.slurm.update_node(node, "resume")
    print(f"""
## Submitting {TASKS} tasks

`python -m benchmarks submit`: {TASKS} tasks into one queue of the twin (its nodes drained, so only
submission is timed), in one run.

| how | tasks queued | time | per task |
|---|---|---|---|
| `hpctool submit --array FILE` (one submitit job array) | {array_tasks} | {array_s:.2f} s | {1000 * array_s / TASKS:.1f} ms |
| shell loop of `sbatch --wrap` | {loop_tasks} | {loop_s:.2f} s | {1000 * loop_s / TASKS:.1f} ms |

The array submits **{loop_s / array_s:.1f}x** faster (target: 10x). It is also one job id to watch or
cancel, and it keeps slurmctld's queue short (one record, not {TASKS}).

### One job

Median of {SINGLE_RUNS} runs, each a new process, same command (`echo hi`) and queue:

| what | time |
|---|---|
| `sbatch --wrap 'echo hi'` (baseline) | {1000 * single["sbatch"]:.0f} ms |
| `hpctool submit -- 'echo hi'` | {1000 * single["hpctool"]:.0f} ms (**{single["hpctool"] / single["sbatch"]:.1f}x** sbatch) |
| of which: `python -c pass` | {1000 * single["python"]:.0f} ms |
| of which: Python start + `import hpctool.cli.jobs, hpctool.jobs.submission` (submitit) | {1000 * single["imports"]:.0f} ms |
| of which: the one `sinfo` (queues, nodes, spot) | {1000 * single["sinfo"]:.0f} ms |
| of which: the rest (pickle, sbatch script, sbatch, job folder) | \
{1000 * (single["hpctool"] - single["imports"] - single["sinfo"]):.0f} ms |
""")
