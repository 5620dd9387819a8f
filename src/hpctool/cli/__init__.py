"""The ``hpctool`` command line: parses, calls a feature module, prints. No logic lives here.

Each command group is a module of this package with ``register(subparsers)``; its handlers take
the parsed arguments and return an exit code. :func:`main` is the one exit point: it prints an
:class:`~hpctool.errors.HpctoolError` as message and hint, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hpctool import __version__
from hpctool.errors import HpctoolError

# The command groups, in the order `hpctool --help` lists them.
GROUPS = ["local", "config", "jobs", "bootstrap", "workflow", "notebook"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="hpctool",
        description="A genomics HPC cluster on AWS ParallelCluster + Slurm, and a real local twin of it.",
    )
    parser.add_argument("--version", action="version", version=f"hpctool {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        importlib.import_module(f"hpctool.cli.{group}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
