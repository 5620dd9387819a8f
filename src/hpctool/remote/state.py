"""What the head node's Slurm says about a run's jobs: their accounting records and whether they
are over, through the :class:`~hpctool.slurm.client.Slurm` client (over SSH)."""

from __future__ import annotations

from collections.abc import Sequence

from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import AcctJob


def job_table(slurm: Slurm, job_ids: Sequence[str]) -> dict[str, AcctJob]:
    """Job id -> sacct record for these jobs."""
    if not job_ids:
        return {}
    return {record.job_id: record for record in slurm.sacct(list(job_ids))}


def jobs_state(slurm: Slurm, job_ids: Sequence[str]) -> str:
    """'' while any of the jobs is still queued or running; else their final states (``GONE``
    when accounting has none)."""
    if slurm.queued(job_ids):
        return ""
    table = job_table(slurm, [j.split("_")[0] for j in job_ids])
    states = sorted({r.state for r in table.values()})
    return ",".join(states) or "GONE"


def of_jobs(record_id: str, job_ids: Sequence[str]) -> bool:
    """A sacct id (``123``, an array task ``123_4``, ``123_[5-9]`` pending) belongs to these jobs."""
    return record_id in job_ids or record_id.split("_")[0] in job_ids
