"""`cost jobs` over 100,000 accounting records, against the raw `sacct` call that fetches records.

The twin cannot hold a busy week of accounting, so the 100,000 records are a synthetic
``sacct -a -X -D --parsable2 --noheader`` text (seeded: 4 queues, 12 users, 10 % of spot jobs
requeued once and so two records, 3 % on two nodes), parsed by the same code as real output.
Measured in the same run: (1) the real `sacct` on the twin over every record it holds (3,000
pending jobs are submitted first so that there is something to fetch), per record; (2) the floor of
any parser, ``hpctool.slurm.parse.parse_delimited`` (split into dicts), over the synthetic text; (3)
hpctool's parse, price and group steps over it, and their peak Python memory (tracemalloc).
"""

from __future__ import annotations

import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from benchmarks import twin_up
from hpctool.cluster.queues import load_queues
from hpctool.cost import jobcost, prices
from hpctool.slurm.parse import parse_delimited
from hpctool.twin import Twin

RECORDS = 100_000
PENDING_JOBS = 3000  # put in the twin's accounting so that sacct has records to fetch
QUEUES = {"compute": ("compute-st-c7i4xl", 20), "spot": ("spot-st-mixed16", 50), "fpga": ("fpga-st-f26xl", 4),
          "storage": ("storage-st-i4i4xl", 8)}


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def synthetic_sacct(records: int = RECORDS, seed: int = 15) -> str:
    rng = random.Random(seed)
    start = datetime(2026, 10, 20, tzinfo=UTC)
    lines: list[str] = []
    job = 1000
    while len(lines) < records:
        job += 1
        queue = rng.choice(["compute", "spot", "spot", "spot", "storage", "fpga"])
        prefix, count = QUEUES[queue]
        two = rng.random() < 0.03
        first = rng.randint(1, count - 1)
        nodes = f"{prefix}-[{first}-{first + 1}]" if two else f"{prefix}-{first}"
        cpus = rng.choice([1, 2, 4, 8, 16]) * (2 if two else 1)
        mem = rng.choice([2000, 4000, 8000, 16000])
        user = f"user{rng.randint(1, 12):02d}"
        begin = start + timedelta(seconds=rng.randint(0, 7 * 86400))
        runs = 2 if queue == "spot" and rng.random() < 0.1 else 1
        for run in range(runs):
            elapsed = rng.randint(60, 4 * 3600)
            state = "REQUEUED" if run < runs - 1 else rng.choice(["COMPLETED"] * 9 + ["FAILED"])
            end = begin + timedelta(seconds=elapsed)
            lines.append(f"{job}|{user}|lab{user[-1]}|{queue}|{state}|{nodes}|{2 if two else 1}|{cpus}|"
                         f"billing={cpus},cpu={cpus},mem={mem}M,node={2 if two else 1}|{elapsed}|"
                         f"{begin:%Y-%m-%dT%H:%M:%S}|{begin:%Y-%m-%dT%H:%M:%S}|{end:%Y-%m-%dT%H:%M:%S}|job{job}")
            begin = end + timedelta(seconds=rng.randint(30, 600))
    return "\n".join(lines[:records]) + "\n"


def _median_s(func, runs: int) -> float:
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        func()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def _peak_mb(func) -> float:
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    twin = Twin(progress=_progress)
    with twin.exclusive_use():
        twin_up(twin)
        slurm = twin.slurm
        layout = twin.layout()
        queue = layout.queues[0]["name"]
        # Pending jobs are in accounting from submission (sacct lists them once eligible, so not
        # held): the queue's nodes are drained so none runs, and a shell loop of sbatch (a process
        # each, as a user would) fills the accounting. Cancelled, and the nodes resumed, afterwards.
        for node in layout.queues[0]["nodes"]:
            slurm.update_node(node, "drain", reason="bench: accounting records only")
        try:
            loop = (f"for i in $(seq {PENDING_JOBS}); do sbatch --parsable --partition={queue} "
                    "--job-name=bench-cost-pending --wrap=true >/dev/null || exit 1; done")
            begin = time.perf_counter()
            subprocess.run(["bash", "-c", loop], env=twin.env(), check=True)
            _progress(f"{PENDING_JOBS} pending jobs submitted in {time.perf_counter() - begin:.0f} s")
            time.sleep(5)  # slurmdbd takes the records in batches
            text_real = slurm.sacct_text(jobcost.COST_FIELDS, since="2020-01-01")
            real_records = len(text_real.splitlines())
            sacct_s = _median_s(lambda: slurm.sacct_text(jobcost.COST_FIELDS, since="2020-01-01"), 5)
            sacct_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            nodes = slurm.nodes()
        finally:
            slurm.run(["scancel", "--name=bench-cost-pending"])
            for node in layout.queues[0]["nodes"]:
                slurm.update_node(node, "resume")
    _progress(f"sacct: {real_records} records in {sacct_s * 1000:.0f} ms")

    text = synthetic_sacct()
    book = prices.load()
    queues = load_queues()
    # Every synthetic node name is one the config's queues define (up to MaxCount).
    fields = jobcost.COST_FIELDS

    def floor() -> None:
        parse_delimited(text, fields)

    def parse() -> list[jobcost.JobRun]:
        return jobcost.parse_cost_records(text)

    def whole() -> jobcost.Summary:
        catalog = jobcost.NodeCatalog(queues, book, "us-east-1", nodes)
        return jobcost.summarise(jobcost.costs(jobcost.parse_cost_records(text), catalog), "user")

    jobcost.expand_nodes.cache_clear()
    floor_s = _median_s(floor, 3)
    parse_s = _median_s(parse, 3)
    whole_s = _median_s(whole, 3)
    floor_mb = _peak_mb(floor)
    whole_mb = _peak_mb(whole)
    summary = whole()
    print("## cost jobs\n")
    print(f"`python -m benchmarks cost`: {RECORDS:,} synthetic accounting records (seeded; "
          f"{summary.lost_runs:,} requeued runs), medians of 3; `sacct` on the twin over its "
          f"{real_records:,} records, median of 5.\n")
    print("| measure | time | per record | peak memory | ratio |")
    print("|---|---|---|---|---|")
    per_sacct = sacct_s / max(real_records, 1)
    print(f"| baseline: `sacct -a -X -D --parsable2` on the twin ({real_records:,} records) | {sacct_s * 1000:.0f} ms | "
          f"{per_sacct * 1e6:.1f} us | {sacct_rss_mb:.0f} MB RSS (process) | 1.0x |")
    print(f"| baseline: `parse_delimited` (split into dicts), {RECORDS:,} records | {floor_s * 1000:.0f} ms | "
          f"{floor_s / RECORDS * 1e6:.2f} us | {floor_mb:.0f} MB | {floor_s / RECORDS / per_sacct:.2f}x sacct |")
    print(f"| `parse_cost_records` | {parse_s * 1000:.0f} ms | {parse_s / RECORDS * 1e6:.2f} us | | "
          f"{parse_s / floor_s:.2f}x parse_delimited |")
    print(f"| parse + price + group by user (`cost jobs` without sacct) | {whole_s * 1000:.0f} ms | "
          f"{whole_s / RECORDS * 1e6:.2f} us | {whole_mb:.0f} MB | {whole_s / floor_s:.2f}x parse_delimited, "
          f"{whole_s / RECORDS / per_sacct:.2f}x sacct per record |")
    print(f"\nTotal of the synthetic week: ${summary.total:,.2f}, of which ${summary.lost_cost:,.2f} lost to "
          "interruptions.")
