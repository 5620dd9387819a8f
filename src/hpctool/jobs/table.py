"""The job table (``hpctool jobs``) from accounting, or from slurmctld without it: light on purpose, no submitit import."""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hpctool.errors import AccountingDisabledError, HpctoolError
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import AcctJob, acct_jobs_from_scontrol


@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    queue: str
    node: str
    state: str
    restarts: int
    elapsed_s: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_jobs(slurm: Slurm, job_ids: Sequence[str] | None = None, since: str = "now-1days") -> list[JobRow]:
    """Jobs from accounting (``sacct``), the requeue count included. Raises AccountingDisabledError
    on a cluster without accounting (:func:`job_table` falls back to slurmctld)."""
    return [_row(r) for r in slurm.sacct(job_ids, since=since)]


def job_table(slurm: Slurm, job_ids: Sequence[str] | None = None,
              since: str = "now-1days") -> tuple[list[JobRow], HpctoolError | None]:
    """The job table and a note for the reader: from accounting, or, on a cluster without it, the
    jobs slurmctld still knows (``scontrol show job``: finished ones only until MinJobAge)."""
    try:
        return list_jobs(slurm, job_ids, since), None
    except AccountingDisabledError as error:
        rows = rows_from_controller(slurm.jobs(), user=None if os.geteuid() == 0 else getpass.getuser(),
                                    job_ids=job_ids)
        return rows, HpctoolError("this cluster has no Slurm accounting: these are the jobs slurmctld still knows "
                                  "(a finished job for MinJobAge, 300 s by default), not --since", error.hint)


def rows_from_controller(records: list[dict[str, str]], *, user: str | None = None,
                         job_ids: Sequence[str] | None = None) -> list[JobRow]:
    """``scontrol -o show job`` records as job rows; only ``user``'s jobs when given (sacct shows a
    user only their own), only ``job_ids`` (a job, or an array by its id) when given."""
    wanted = set(job_ids or ())
    mine = [r for r in records if user is None or r.get("UserId", "").split("(")[0] == user]
    return [_row(job) for record, job in zip(mine, acct_jobs_from_scontrol(mine), strict=True)
            if not wanted or {job.job_id, record.get("JobId", ""), record.get("ArrayJobId", "")} & wanted]


def _row(r: AcctJob) -> JobRow:
    return JobRow(id=r.job_id, name=r.name, queue=r.partition, node=r.node_list, state=r.state,
                  restarts=r.restarts, elapsed_s=r.elapsed_seconds)


def controller_warning(slurm: Slurm) -> HpctoolError | None:
    """sacct reads accounting (slurmdbd) and works while slurmctld is down, but then the states
    of running and pending jobs are only what slurmctld last reported: say so."""
    if slurm.ping():
        return None
    return HpctoolError("slurmctld does not answer: running and pending jobs show their last recorded state",
                        "on the twin `hpctool local status` names what is down and `hpctool local up` starts it; "
                        "on a cluster `scontrol ping` and `systemctl status slurmctld` on the head node")
