"""Job states for submitit on a cluster without Slurm accounting.

submitit learns a job's state from ``sacct`` only (its ``SlurmInfoWatcher``). Without accounting
(a ParallelCluster config with no ``SlurmSettings.Database``) every sacct fails, submitit logs
"Bypassing sacct error" and keeps the state UNKNOWN, so ``job.result()`` and ``hpctool submit
--wait`` wait for ever. This watcher asks slurmctld instead (``squeue --states=all``), which
knows a job until MinJobAge after it ended; a job it no longer lists has ended, and the result
is whatever the job wrote (submitit's result file, or its error). submitit has no hook for
another status source, so this subclasses its watcher and job class (the parsing and the
finished-job bookkeeping stay submitit's).
"""

from __future__ import annotations

import logging
import time

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from hpctool.errors import HpctoolError
from hpctool.slurm.client import Slurm

# Not a Slurm state: the job left slurmctld's memory, after its last state was seen or not.
# submitit counts any state outside its list of unfinished ones as done.
ENDED = "ENDED"
# At most this long between two checks (submitit's sacct watcher: 600 s). slurmctld forgets a
# finished job MinJobAge (300 s by default) after it ended; checking more often than that keeps
# the last state a job had in most cases, and costs slurmctld one squeue of the user's jobs.
MAX_DELAY_S = 60

# States squeue shows that sacct does not (it records the job's base state): submitit knows only
# sacct's, and would take a job whose node is still booting (CONFIGURING) for a finished one.
SQUEUE_TO_SACCT = {"CONFIGURING": "RUNNING", "RESIZING": "RUNNING", "SIGNALING": "COMPLETING",
                   "STAGE_OUT": "COMPLETING", "REQUEUE_HOLD": "REQUEUED", "REQUEUE_FED": "REQUEUED",
                   "RESV_DEL_HOLD": "PENDING"}

log = logging.getLogger(__name__)


class QueueWatcher(SlurmInfoWatcher):
    """submitit's watcher fed by ``squeue --me --states=all`` instead of ``sacct``."""

    def __init__(self, slurm: Slurm | None = None, delay_s: int = MAX_DELAY_S) -> None:
        super().__init__(delay_s=delay_s)
        self._slurm = slurm

    def update(self) -> None:
        unfinished = self._registered - self._finished
        if not unfinished:
            return
        self._num_calls += 1
        try:
            rows = (self._slurm or Slurm()).known_jobs()
        except HpctoolError as error:
            # slurmctld not answering: keep the states last seen, as submitit does when sacct fails.
            log.warning("job states not refreshed (%s); trying again later", error.message)
        else:
            self._info_dict.update(states_from_queue(rows, unfinished))
        self._last_status_check = time.time()
        for job_id in unfinished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def states_from_queue(rows: list[dict[str, str]], wanted: set[str]) -> dict[str, dict[str, str]]:
    """submitit's info records (JobID, State, NodeList) for the ``wanted`` job ids from squeue rows;
    a wanted id squeue does not list has ENDED. States keep their first word ("CANCELLED by 0"), and
    squeue's own states become sacct's."""
    listed = {row["id"]: row for row in rows}
    info: dict[str, dict[str, str]] = {}
    for job_id in wanted:
        row = listed.get(job_id)
        if row is None:
            info[job_id] = {"JobID": job_id, "State": ENDED, "NodeList": ""}
        else:
            state = row["state"].split()[0]
            info[job_id] = {"JobID": job_id, "State": SQUEUE_TO_SACCT.get(state, state), "NodeList": row["nodes"]}
    return info


class QueueWatchedJob(SlurmJob):
    """A submitit Slurm job whose state comes from slurmctld (one watcher for all, as submitit's)."""

    watcher = QueueWatcher()
