"""``hpctool.jobs``: work on the cluster (or the twin) from Python, on submitit.

    from hpctool import jobs
    cluster = jobs.resolve_cluster(arrays=True)
    job = jobs.submit(MyCheckpointable(), resources=jobs.Resources(queue="spot", cpus=2, mem="4G"),
                      cluster=cluster)

The modules: :mod:`~hpctool.jobs.requests` (what a job asks for, the cluster it asks it of),
:mod:`~hpctool.jobs.submission` (submitit, sbatch's refusals, arrays), :mod:`~hpctool.jobs.work`
(spot-safe shell commands, the reference checkpointable), :mod:`~hpctool.jobs.runner` (what runs
in each job on a node), :mod:`~hpctool.jobs.table` (``hpctool jobs``, without submitit). This
package's names load their module on first use, so ``hpctool jobs`` never imports submitit.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "requests": ["MAX_NUM_TIMEOUT", "SIGNAL_DELAY_S", "Resources", "SlurmCluster", "check_resources",
                 "default_folder", "parse_mem_mb", "resolve_cluster", "spot_queues", "wants_requeue"],
    "submission": ["array_commands", "check_work", "error_line", "executor", "load_callable", "map_array",
                   "read_array_file", "split_evenly", "submit", "submit_work", "wait_results"],
    "watch": ["QueueWatchedJob", "QueueWatcher", "states_from_queue"],
    "work": ["SHELL_CHECKPOINT_WAIT_S", "CheckpointedSum", "ShellCommand"],
    "table": ["JobRow", "job_table", "list_jobs", "rows_from_controller"],
}
_MODULE_OF = {name: module for module, names in _API.items() for name in names}
__all__ = [name for names in _API.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'hpctool.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hpctool.jobs.{module}"), name)
