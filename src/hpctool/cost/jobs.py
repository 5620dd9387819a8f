"""`hpctool cost jobs`: what each user, account, queue, rule, sample or run cost, from accounting.

Reads ``sacct`` (through :class:`hpctool.slurm.client.Slurm`) and the nodes Slurm knows, prices every
run with :mod:`hpctool.cost.jobcost`, and for Snakemake run folders maps jobs to rules and
samples with :mod:`hpctool.workflow`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG, load_yaml, slurm_queues
from hpctool.cost import jobcost, prices
from hpctool.errors import UsageError
from hpctool.progress import Progress, quiet
from hpctool.slurm.client import Slurm
from hpctool.workflow import rules

BY_FIELD = {"user": "user", "account": "account", "queue": "queue"}
BY_RUN = ("rule", "sample", "run")
ALL_SAMPLES = "(all samples)"


@dataclass(frozen=True)
class ClusterModel:
    """What pricing a job needs from the cluster config: its queues and region."""

    queues: list
    region: str
    source: str


def cluster_model(config: str | Path | None = None) -> ClusterModel:
    path = Path(config) if config is not None else DEFAULT_CLUSTER_CONFIG
    data = load_yaml(path)
    queues = slurm_queues(data, str(path))
    return ClusterModel(queues, str(data.get("Region", "us-east-1")), str(path))


def job_order(job_id: str) -> tuple[int, str]:
    """Numeric order of Slurm job ids, array tasks (``12_3``) included."""
    return len(job_id.split("_")[0]), job_id


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, a loop of links: not a run folder either
        return False


def run_keys(run_dirs: Sequence[Path], by: str) -> dict[str, list[str]]:
    """Slurm job id -> the rules, the sample or the run folder it belongs to."""
    keys: dict[str, list[str]] = {}
    for run_dir in run_dirs:
        if not _is_dir(Path(run_dir) / ".snakemake" / "log"):
            raise UsageError(f"{run_dir} is not a Snakemake run folder (no .snakemake/log in it)",
                             "give the folder a workflow ran in (its --directory)")
        for job in rules.submitted_jobs(Path(run_dir)):
            if by == "rule":
                keys[job.slurm_job_id] = list(job.rules)
            elif by == "sample":
                keys[job.slurm_job_id] = [job.wildcards.split("/")[0] if job.wildcards else ALL_SAMPLES]
            else:
                keys[job.slurm_job_id] = [Path(run_dir).name]
    return keys


def job_costs(slurm: Slurm | None = None, *, config: str | Path | None = None, since: str | None = "now-7days",
              until: str | None = None, job_ids: Sequence[str] | None = None,
              book: prices.PriceBook | None = None, progress: Progress = quiet) -> list[jobcost.RunCost]:
    """Every run (requeued ones too) in the window, priced."""
    slurm = slurm or Slurm(os.environ.get("SLURM_CONF"))
    model = cluster_model(config)
    book = book or prices.load()
    text = slurm.sacct_text(jobcost.COST_FIELDS, job_ids=job_ids, since=None if job_ids else since,
                            until=None if job_ids else until)
    catalog = jobcost.NodeCatalog(model.queues, book, model.region, slurm.nodes())
    items = jobcost.costs(jobcost.parse_cost_records(text), catalog)
    if catalog.unpriced and not items:  # nothing could be priced: the config is not this cluster's
        raise jobcost.UnknownNodeError(f"no job in the window ran on a node of {model.source}'s queues",
                                       "give the config of the cluster that ran the jobs (--config)")
    if catalog.unpriced:
        progress(f"note: {len(catalog.unpriced)} run(s) left out: their nodes belong to no queue of the config "
                 f"(a queue removed by an update since?): {', '.join(catalog.unpriced[:5])}")
    return items


def summary(by: str, slurm: Slurm | None = None, *, config: str | Path | None = None,
            since: str | None = "now-7days", until: str | None = None, run_dirs: Sequence[Path] = (),
            book: prices.PriceBook | None = None,
            progress: Progress = quiet) -> tuple[jobcost.Summary, list[jobcost.RunCost]]:
    """Costs grouped ``by`` user, account, queue, rule, sample or run (the last three need run folders,
    and then only the runs' jobs count)."""
    if by not in BY_FIELD and by not in BY_RUN:
        raise UsageError(f"--by {by}: not a grouping", f"use one of {', '.join([*BY_FIELD, *BY_RUN])}")
    if by in BY_RUN and not run_dirs:
        raise UsageError(f"--by {by} needs a Snakemake run folder", "give --run RUN_DIR (repeat it for several)")
    keys = run_keys(run_dirs, by if by in BY_RUN else "run") if run_dirs else None
    if keys is not None and not keys:
        raise UsageError("the run folders list no Slurm jobs", "was the workflow run with a Slurm profile?")
    items = job_costs(slurm, config=config, since=since, until=until,
                      job_ids=sorted(keys, key=job_order) if keys else None, book=book, progress=progress)
    return jobcost.summarise(items, BY_FIELD.get(by, by), keys if by in BY_RUN else None), items
