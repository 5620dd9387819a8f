"""What runs inside every hpctool job on a node: ``python -u -m hpctool.jobs.runner FOLDER``.

It is submitit's own runner (``submitit.core._submit``: load the pickled call, run it, pickle
the result) with one change, in the hook submitit leaves for it (``JobEnvironment._handle_signals``,
"should be adapted to the signals used in this cluster"): how a USR2 is judged.

submitit treats USR2 as a timeout once the job has run past its "guaranteed walltime",
``min(0.8 * limit, limit - 10 min)``, which is zero or less for limits of 10 minutes or less.
So every spot notice to a short job counted as a timeout: it used up one of the job's allowed
timeouts, and a job without a checkpoint was reported failed although the handler requeued it
and Slurm ran it to COMPLETED. Here a USR2 is a preemption when the job's node is under a spot
notice (the handler drains it with reason ``spot-interruption ...`` before it signals), and a
timeout only in the last minutes before the time limit, where Slurm's own ``--signal=USR2@90``
falls. A preemption never counts against the job's timeouts, and a requeue that fails because the
node's handler requeued the job first never becomes the job's result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from typing import Any

from submitit.core import submission
from submitit.core.job_environment import JobEnvironment, SignalHandler, _checkpoint

from hpctool.errors import HpctoolError
from hpctool.jobs.requests import SIGNAL_DELAY_S
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import node_under_spot_notice

# Slurm sends --signal up to 60 s earlier than asked ("due to the resolution of event handling").
SIGNAL_SLACK_S = 60
# How long a job whose own requeue failed under a spot notice waits for the handler's: EC2's two
# minutes and more (the process is killed long before).
REQUEUE_WAIT_S = 180


def is_timeout(walltime_s: float, limit_min: float, node_reason: str | None,
               signal_delay_s: float = SIGNAL_DELAY_S) -> bool:
    """Was this USR2 the time limit's (True) or a preemption (False)?

    ``node_reason`` is the job's node's Reason (None when it could not be read): a spot notice
    there makes it a preemption whatever the time. Otherwise it is the time limit only when the
    signal came where Slurm sends it: ``signal_delay_s`` (plus slack) before the limit.
    """
    if node_reason is not None and node_under_spot_notice(node_reason):
        return False
    return walltime_s >= limit_min * 60 - signal_delay_s - SIGNAL_SLACK_S


def _node_reason() -> str | None:
    node = os.environ.get("SLURMD_NODENAME")
    if not node:
        return None
    try:
        return Slurm().node(node).get("Reason", "")
    except HpctoolError:
        return None  # slurmctld unreachable: judge by the time alone


class PreemptionAwareHandler(SignalHandler):
    """submitit's handler with :func:`is_timeout` deciding timeout vs preemption, and the node's
    interruption handler as the one requeuer of a job under a spot notice."""

    def checkpoint_and_try_requeue(self, signum: int, frame: types.FrameType | None = None) -> None:
        reason = _node_reason()
        if reason is None or not node_under_spot_notice(reason) or self.env.global_rank != 0:
            super().checkpoint_and_try_requeue(signum, frame)  # the time limit: submitit's own way
            return
        # A spot notice. The job checkpoints and requeues itself, as submitit does; the node's
        # handler requeues whatever is still running when the budget is over (at once with no time
        # left). Whichever comes second finds the job requeued (Slurm refuses, or the handler sees
        # the restart): it is requeued once. But submitit lets the job's own `scontrol requeue`
        # fail into the job's result: killed by the handler's requeue, or refused after it, that
        # call made a job that was fine FAILED for its caller. Here it may fail: the job waits.
        delayed = self._delayed
        self._say(reason, timed_out=False, left=delayed._timeout_countdown)
        if hasattr(delayed.function, "checkpoint"):
            # Atomic (a temporary file renamed): a kill mid-way keeps the last checkpoint.
            _checkpoint(delayed, self._job_paths.submitted_pickle, delayed._timeout_countdown)
        try:
            self.env._requeue(delayed._timeout_countdown)
        except (OSError, subprocess.SubprocessError) as error:
            self._logger.warning(f"hpctool: scontrol requeue failed ({error}): the handler's requeue ends this run")
            time.sleep(REQUEUE_WAIT_S)  # Slurm's requeue ends this process (SIGTERM is bypassed, then SIGKILL)
        self._exit()

    def has_timed_out(self) -> bool:
        walltime = time.time() - self._start_time
        reason = _node_reason()
        timed_out = is_timeout(walltime, self._delayed._timeout_min, reason)
        self._say(reason, timed_out=timed_out, left=self._delayed._timeout_countdown - timed_out)
        return timed_out

    def _say(self, reason: str | None, *, timed_out: bool, left: int) -> None:
        # A warning, so it shows at submitit's default log level in the job's .err log.
        self._logger.warning(f"hpctool: signal after {time.time() - self._start_time:.0f} s of a "
                             f"{self._delayed._timeout_min}-minute limit, node reason {reason!r}: "
                             f"{'time limit' if timed_out else 'preemption'}, {left} timeouts left")


def _handle_signals(env: JobEnvironment, paths: Any, delayed: Any) -> None:
    import signal

    handler = PreemptionAwareHandler(env, paths, delayed)
    signal.signal(signal.SIGTERM, handler.bypass)
    signal.signal(signal.SIGCONT, handler.bypass)
    signal.signal(env._usr_sig(), handler.checkpoint_and_try_requeue)


def install() -> JobEnvironment:
    """Make submitit's job environment (one cached instance per process, the one
    ``process_job`` uses) install :class:`PreemptionAwareHandler`."""
    env = JobEnvironment()
    env._handle_signals = types.MethodType(_handle_signals, env)  # type: ignore[method-assign]
    return env


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m hpctool.jobs.runner FOLDER (run by the job's sbatch script)")
    install()
    submission.process_job(args[0])


if __name__ == "__main__":
    main()
