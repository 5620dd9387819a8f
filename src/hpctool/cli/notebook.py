"""`hpctool notebook ...` (the head node's JupyterHub files) and `hpctool local hub ...` (the twin)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpctool.cli.output import print_json, progress


def register(subparsers: argparse._SubParsersAction) -> None:
    notebook = subparsers.add_parser("notebook", help="JupyterHub with batchspawner: notebooks as Slurm jobs")
    commands = notebook.add_subparsers(dest="notebook_command", metavar="ACTION", required=True)
    render = commands.add_parser("render", help="write jupyterhub_config.py, hpctool_spawner.py and the "
                                 "sudoers rule for a cluster's head node (bootstrap/head.d installs them)")
    render.add_argument("--config", help="ParallelCluster config whose queues the form lists "
                        "(default: cluster-configs/default.yaml)")
    render.add_argument("--out-dir", default="bootstrap/notebook", metavar="DIR",
                        help="where to write them (default bootstrap/notebook, which the bundle upload sends)")
    render.add_argument("--allowed-group", action="append", metavar="GROUP",
                        help="Unix group allowed to log in (repeatable; default hpctool-notebook)")
    render.add_argument("--cull-timeout", type=int, default=3600, metavar="SECONDS",
                        help="stop servers idle this long (3600)")
    render.add_argument("--workdir", default="{homedir}",
                        help="the job's folder on shared storage ({username}, {homedir}; default {homedir})")
    render.add_argument("--json", action="store_true")
    render.set_defaults(handler=cmd_render)


def register_local_hub(commands: argparse._SubParsersAction) -> None:
    """`hpctool local hub up|down|status`, added to the `local` group."""
    hub = commands.add_parser("hub", help="JupyterHub on the twin: notebooks as Slurm jobs on its nodes")
    actions = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start JupyterHub against the running twin")
    up.add_argument("--cull-timeout", type=int, default=3600, metavar="SECONDS",
                    help="stop servers idle this long (3600)")
    up.add_argument("--allowed-group", action="append", metavar="GROUP",
                    help="Unix or directory group allowed to log in (repeatable; default hpctool-notebook)")
    up.add_argument("--json", action="store_true")
    up.set_defaults(handler=cmd_hub_up)
    status = actions.add_parser("status", help="where to open it and how to log in")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_hub_status)
    down = actions.add_parser("down", help="stop JupyterHub (its notebook jobs are cancelled)")
    down.set_defaults(handler=cmd_hub_down)


def _print_hub(status: dict, as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    print(f"jupyterhub: {'running' if status['running'] else 'not running'}  "
          f"(JupyterHub {status['jupyterhub']}, batchspawner {status['batchspawner']})")
    print(f"open:   {status['url']}/   (from another machine: ssh -L {status['url'].rsplit(':', 1)[1]}:"
          f"127.0.0.1:{status['url'].rsplit(':', 1)[1]} THIS-HOST)")
    print(f"log in: {status['login']}")
    print(f"log:    {status['log']}")


def cmd_hub_up(args: argparse.Namespace) -> int:
    from hpctool.notebook.hub import TwinHub

    groups = {"allowed_groups": tuple(args.allowed_group)} if args.allowed_group else {}
    status = TwinHub().up(progress=progress, cull_timeout=args.cull_timeout,
                          cull_every=max(1, min(300, args.cull_timeout // 4)), **groups)
    _print_hub(status, args.json)
    return 0


def cmd_hub_status(args: argparse.Namespace) -> int:
    from hpctool.notebook.hub import TwinHub

    status = TwinHub().status()
    _print_hub(status, args.json)
    return 0 if status["running"] else 1


def cmd_hub_down(args: argparse.Namespace) -> int:
    from hpctool.notebook.hub import TwinHub

    print("jupyterhub stopped" if TwinHub().down() else "jupyterhub was not running")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from hpctool.notebook.config import write_head_node_files

    written = write_head_node_files(Path(args.out_dir), config=args.config,
                                    allowed_groups=tuple(args.allowed_group or ()),
                                    cull_timeout=args.cull_timeout, workdir=args.workdir)
    if args.json:
        print_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            print(f"wrote {path}")
    return 0
