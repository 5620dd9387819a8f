"""Snakemake as hpctool runs it: ``python -m hpctool.workflow.snakemake_main [LAUNCHER OPTIONS] ARGS``.

Snakemake itself, with adjustments to the Slurm executor plugin made before it starts (written
here because the plugin has no setting for them; each says why):

1. **No node exclusions learned from a NODE_FAIL.** Plugin 2.8 reads a failed job's node with
   ``sacct -o nodelist`` and adds it to ``--exclude`` of every later ``sbatch``. When Slurm has
   already requeued the job, sacct says ``None assigned``, which ends up unquoted on the sbatch
   command line: every later submission of the run fails with ``sbatch: error: Unable to open
   file assigned`` (upstream issue snakemake-executor-plugin-slurm#485, open for 2.8.0). On
   ParallelCluster a node name is a slot, not a machine: clustermgtd replaces a failed instance
   under the same name, so excluding names only shrinks the cluster. Nodes the user lists with
   ``--slurm-exclude-failed-nodes`` stay excluded.
2. **An optional ceiling on the status-check back-off** (``--status-check-ceiling S``, the twin
   profile's runs): the plugin adds 10 s after every check that finds nothing finished, up to
   180 s, so on the twin a 10 s job is seen at 12 s and a 14 s job at 33 s. The ceiling keeps
   the interval at most S seconds. Without the option the plugin's own back-off applies (what a
   real cluster's slurmdbd wants).
3. **One Snakemake per job** (``--rule-in-batch-step``, every ``hpctool run`` on Slurm): the
   plugin's job script starts Snakemake with its ``slurm-jobstep`` executor, which starts a
   second Snakemake under ``srun`` to run the rule: two interpreter starts, two DAG builds, two
   plugin imports for a command that may take a second (61 % of a twin job's time,
   docs/benchmarks.md; upstream issue snakemake-executor-plugin-slurm#400 reports the same wait).
   With the option the job script's Snakemake runs the rule itself with Snakemake's own ``local``
   executor, in the batch step, inside the job's allocation and cgroup: the same as the ``srun``
   step for a one-task job, minus the second start; a group job's rules run one after another,
   as the step ran them. Job arrays and ``--slurm-pass-command-as-script`` keep the plugin's job
   step (they need it).
4. **No ``scontrol show config`` while the plugin is imported.** The plugin computes a help text
   at import by running it: about 10 s on a machine with Slurm's client but no reachable
   controller (a laptop, CI, ``hpctool run --cores``), and one more Slurm round trip in every
   job. Only the help text is affected: the status checks still ask ``scontrol`` when they need
   MinJobAge.
5. **A scheduler that can take SIGTERM at any moment.** Snakemake's scheduler handles SIGTERM
   (and the SIGTERM ``hpctool run`` arranges for its child when it dies) by taking the scheduler's
   lock, a plain ``threading.Lock``. The main thread holds that same lock while it selects jobs,
   which runs the ILP solver (``cbc``) as a subprocess: a signal arriving then deadlocks Snakemake
   for good (seen on this machine: an orphaned Snakemake asleep for an hour on the lock, its
   ``cbc`` a zombie). A re-entrant lock lets the handler set its flag and return; the scheduler
   stops at its next loop, as it would have.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CEILING_OPTION = "--status-check-ceiling"
BATCH_STEP_OPTION = "--rule-in-batch-step"
PLUGIN = "snakemake_executor_plugin_slurm"
JOBSTEP_EXECUTOR_ARGS = "--executor slurm-jobstep"
LOCAL_EXECUTOR_ARGS = "--executor local"
# The plugin versions whose internals the adjustments below were written against and tested on.
PATCHED_PLUGIN_SERIES = ("2.8.",)


class ConfiguredNodesOnly(set):
    """The plugin's set of excluded nodes, which keeps what it starts with (the user's
    ``--slurm-exclude-failed-nodes``) and ignores nodes added during the run."""

    def add(self, node: Any) -> None:
        return None

    def update(self, *others: Iterable[Any]) -> None:
        return None


@dataclass(frozen=True)
class LauncherOptions:
    status_check_ceiling: float | None = None
    rule_in_batch_step: bool = False


def split_launcher_args(argv: Sequence[str]) -> tuple[LauncherOptions, list[str]]:
    """(this launcher's options, Snakemake's arguments): the launcher's come first."""
    args = list(argv)
    ceiling, batch_step = None, False
    while args and args[0] in (CEILING_OPTION, BATCH_STEP_OPTION):
        if args[0] == BATCH_STEP_OPTION:
            batch_step, args = True, args[1:]
            continue
        if len(args) < 2:
            raise SystemExit(f"{CEILING_OPTION} needs a number of seconds")
        try:
            ceiling = float(args[1])
        except ValueError:
            raise SystemExit(f"{CEILING_OPTION}: {args[1]!r} is not a number of seconds") from None
        if ceiling <= 0:
            raise SystemExit(f"{CEILING_OPTION}: {args[1]!r} must be more than 0 seconds")
        args = args[2:]
    return LauncherOptions(ceiling, batch_step), args


def plugin_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snakemake-executor-plugin-slurm")
    except PackageNotFoundError:
        return None


def adjust_slurm_executor(executor_class: type, ceiling: float | None) -> None:
    """Apply both adjustments to the plugin's ``Executor`` class (idempotent)."""
    if getattr(executor_class, "_hpctool_adjusted", False):
        return
    original_post_init: Callable[..., None] = executor_class.__post_init__

    def post_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_post_init(self, *args, **kwargs)
        self._failed_nodes = ConfiguredNodesOnly(getattr(self, "_failed_nodes", ()))

    executor_class.__post_init__ = post_init
    if ceiling is not None:
        inherited = executor_class.next_seconds_between_status_checks

        def capped(self: Any, value: float | None) -> None:
            inherited.fset(self, None if value is None else min(value, ceiling))

        executor_class.next_seconds_between_status_checks = property(inherited.fget, capped)
    executor_class._hpctool_adjusted = True


def uses_jobstep(executor: Any, job: Any) -> bool:
    """Whether a job needs the plugin's ``slurm-jobstep`` executor in its job script."""
    if getattr(executor.workflow.executor_settings, "pass_command_as_script", False):
        return True
    if job.is_group():
        return False
    arrays = getattr(executor, "array_jobs", None) or ()
    return "all" in arrays or job.rule.name in arrays


def run_rules_in_batch_step(executor_class: type) -> None:
    """Adjustment 3: the job script's Snakemake runs the job's rules with the local executor."""
    if getattr(executor_class, "_hpctool_batch_step", False):
        return
    original: Callable[[Any, Any], str] = executor_class.format_job_exec

    def format_job_exec(self: Any, job: Any) -> str:
        command = original(self, job)
        try:
            keep = uses_jobstep(self, job)
        except Exception:  # noqa: BLE001 - raised here, a job would never be submitted (the plugin's submit thread swallows it)
            keep = True
        if keep or JOBSTEP_EXECUTOR_ARGS not in command:
            return command
        return command.replace(JOBSTEP_EXECUTOR_ARGS, LOCAL_EXECUTOR_ARGS, 1)

    executor_class.format_job_exec = format_job_exec
    executor_class._hpctool_batch_step = True


class _ImportTimeAnswer:
    """The plugin's ``get_min_job_age`` that answers "unknown" (what it answers when scontrol
    fails) while the plugin is being imported, and asks scontrol afterwards."""

    def __init__(self, real: Callable[[], int | None]) -> None:
        self.real = real
        self.importing = True

    def __call__(self) -> int | None:
        return None if self.importing else self.real()


def import_plugin_without_scontrol() -> Any:
    """Adjustment 4: import the plugin with its import-time ``scontrol show config`` skipped.
    Its status-query module has only standard-library imports; loaded first under its own name,
    the package's relative imports then bind the wrapper."""
    if PLUGIN in sys.modules:
        return sys.modules[PLUGIN]
    spec = importlib.util.find_spec(PLUGIN)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(PLUGIN)
    name = f"{PLUGIN}.job_status_query"
    query_spec = importlib.util.spec_from_file_location(name, Path(spec.origin).parent / "job_status_query.py")
    if query_spec is None or query_spec.loader is None:
        raise ModuleNotFoundError(name)
    query = importlib.util.module_from_spec(query_spec)
    sys.modules[name] = query
    query_spec.loader.exec_module(query)
    answer = _ImportTimeAnswer(query.get_min_job_age)
    query.get_min_job_age = answer
    try:
        import snakemake_executor_plugin_slurm as plugin
    finally:
        answer.importing = False
    return plugin


def reentrant_scheduler_lock(scheduler_class: type) -> None:
    """Adjustment 5: the scheduler's lock becomes re-entrant once the scheduler is built."""
    if getattr(scheduler_class, "_hpctool_reentrant", False):
        return
    original_init: Callable[..., None] = scheduler_class.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._lock = threading.RLock()

    scheduler_class.__init__ = init
    scheduler_class._hpctool_reentrant = True


def main(argv: Sequence[str] | None = None) -> None:
    options, snakemake_args = split_launcher_args(sys.argv[1:] if argv is None else argv)
    version = plugin_version()
    if version is not None and version.startswith(PATCHED_PLUGIN_SERIES):
        plugin = import_plugin_without_scontrol()
        adjust_slurm_executor(plugin.Executor, options.status_check_ceiling)
        if options.rule_in_batch_step:
            run_rules_in_batch_step(plugin.Executor)
    elif options != LauncherOptions():
        print(f"hpctool: {CEILING_OPTION} and {BATCH_STEP_OPTION} ignored: written for Slurm plugin "
              f"{PATCHED_PLUGIN_SERIES[0]}x, found {version}", file=sys.stderr)
    from snakemake.cli import main as snakemake_cli_main
    from snakemake.scheduling.job_scheduler import JobScheduler

    reentrant_scheduler_lock(JobScheduler)

    sys.argv = ["snakemake", *snakemake_args]
    snakemake_cli_main(snakemake_args)


if __name__ == "__main__":
    main()
