"""The job table from accounting (``hpctool jobs``): light on purpose, no submitit import."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hpctool.errors import HpctoolError
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import AcctJob


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
    """Jobs from accounting (``sacct``), the requeue count included."""
    records: list[AcctJob] = slurm.sacct(job_ids, since=since)
    return [JobRow(id=r.job_id, name=r.name, queue=r.partition, node=r.node_list, state=r.state,
                   restarts=r.restarts, elapsed_s=r.elapsed_seconds) for r in records]


def controller_warning(slurm: Slurm) -> HpctoolError | None:
    """sacct reads accounting (slurmdbd) and works while slurmctld is down, but then the states
    of running and pending jobs are only what slurmctld last reported: say so."""
    if slurm.ping():
        return None
    return HpctoolError("slurmctld does not answer: running and pending jobs show their last recorded state",
                        "on the twin `hpctool local status` names what is down and `hpctool local up` starts it; "
                        "on a cluster `scontrol ping` and `systemctl status slurmctld` on the head node")
