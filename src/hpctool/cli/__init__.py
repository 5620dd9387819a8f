"""The ``hpctool`` command line: parses, calls a feature module, prints. No logic lives here.

Each command group is a module of this package with ``register(subparsers)``; its handlers take
the parsed arguments and return an exit code. :func:`main` is the one exit point: it prints an
:class:`~hpctool.errors.HpctoolError` as message and hint, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from hpctool import __version__
from hpctool.errors import HpctoolError

# The command groups, in the order `hpctool --help` lists them.
GROUPS = ["local", "config", "jobs", "bootstrap", "workflow", "notebook", "remote", "cost", "storage", "report"]

# Start-up: each group module imports its feature modules (Twin, submitit, ParallelCluster's
# schema...), which costs up to a second. So only the group of the command being run is imported;
# the others appear in the parser as placeholders with their one-line help, from this table
# (tests/test_cli_startup.py checks it against what the groups register). A group or command
# missing here still works: its group is imported every time, which only costs start-up time.
COMMANDS: dict[str, tuple[str, str]] = {
    "local": ("local", "run a real Slurm twin of the cluster on this machine"),
    "config": ("config", "render, validate and diff ParallelCluster cluster configs"),
    "submit": ("jobs", "submit a shell command (or an array of them) as Slurm jobs, spot-safe"),
    "jobs": ("jobs", "jobs from accounting (without it, those slurmctld knows): queue, node, state, restarts, elapsed"),
    "bootstrap": ("bootstrap", "the node bootstrap (OnNodeConfigured) bundle"),
    "run": ("workflow", "run a Snakemake workflow of this repository (on the twin or a cluster)"),
    "concordance": ("workflow", "compare the variants of two VCFs (exit 0 concordant, 1 discordant, 2 unreadable)"),
    "recall": ("workflow", "share of a truth set's variants a VCF recalls, per sample"),
    "notebook": ("notebook", "JupyterHub with batchspawner: notebooks as Slurm jobs"),
    "remote": ("remote", "submit, watch, fetch and open notebooks on a cluster over SSH (from a laptop)"),
    "cost": ("cost", "what a cluster, jobs, a workflow run or a cohort cost (offline prices)"),
    "storage": ("storage", "storage tiering: S3/EFS lifecycle rules and what they save"),
    "report": ("report", "an HTML page of a run: job timeline per node, cost per queue and rule, QC"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with the `hint:` line every refusal of hpctool ends with."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nhint: `{self.prog} --help` lists what it takes\n")


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not an option (the top level takes no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None, *, lazy: bool = True) -> argparse.ArgumentParser:
    """The parser; with ``lazy``, only the group of ``argv``'s command is really registered."""
    import importlib

    parser = _Parser(
        prog="hpctool",
        description="A genomics HPC cluster on AWS ParallelCluster + Slurm, and a real local twin of it.",
    )
    parser.add_argument("--version", action="version", version=f"hpctool {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = _command_of(sys.argv[1:] if argv is None else argv)
    wanted = COMMANDS[command][0] if lazy and command in COMMANDS else None
    for group in GROUPS:
        placeholders = [(name, text) for name, (owner, text) in COMMANDS.items() if owner == group]
        if lazy and placeholders and group != wanted and (command is None or command in COMMANDS):
            for name, text in placeholders:
                subparsers.add_parser(name, help=text, add_help=False)
        else:
            importlib.import_module(f"hpctool.cli.{group}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except HpctoolError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # `hpctool ... | head`: the reader left, which is no error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
