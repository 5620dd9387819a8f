"""Snakemake as hpctool runs it: ``python -m hpctool.snakemake_main [--status-check-ceiling S] ARGS``.

Snakemake itself, with two adjustments to the Slurm executor plugin made before it starts (both
written here because the plugin has no setting for them; each says why):

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
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

CEILING_OPTION = "--status-check-ceiling"
# The plugin versions whose internals the adjustments below were written against and tested on.
PATCHED_PLUGIN_SERIES = ("2.8.",)


class ConfiguredNodesOnly(set):
    """The plugin's set of excluded nodes, which keeps what it starts with (the user's
    ``--slurm-exclude-failed-nodes``) and ignores nodes added during the run."""

    def add(self, node: Any) -> None:
        return None

    def update(self, *others: Iterable[Any]) -> None:
        return None


def split_launcher_args(argv: Sequence[str]) -> tuple[float | None, list[str]]:
    """(ceiling, Snakemake's arguments) from this launcher's command line."""
    args = list(argv)
    if args[:1] != [CEILING_OPTION]:
        return None, args
    if len(args) < 2:
        raise SystemExit(f"{CEILING_OPTION} needs a number of seconds")
    try:
        ceiling = float(args[1])
    except ValueError:
        raise SystemExit(f"{CEILING_OPTION}: {args[1]!r} is not a number of seconds") from None
    if ceiling <= 0:
        raise SystemExit(f"{CEILING_OPTION}: {args[1]!r} must be more than 0 seconds")
    return ceiling, args[2:]


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


def main(argv: Sequence[str] | None = None) -> None:
    ceiling, snakemake_args = split_launcher_args(sys.argv[1:] if argv is None else argv)
    version = plugin_version()
    if version is not None and version.startswith(PATCHED_PLUGIN_SERIES):
        import snakemake_executor_plugin_slurm as plugin

        adjust_slurm_executor(plugin.Executor, ceiling)
    elif ceiling is not None:
        print(f"hpctool: {CEILING_OPTION} ignored: written for Slurm plugin {PATCHED_PLUGIN_SERIES[0]}x, "
              f"found {version}", file=sys.stderr)
    from snakemake.cli import main as snakemake_cli_main

    sys.argv = ["snakemake", *snakemake_args]
    snakemake_cli_main(snakemake_args)


if __name__ == "__main__":
    main()
