"""`hpctool local ...`: the local Slurm twin."""

from __future__ import annotations

import argparse

from hpctool.cli.output import print_json, print_table, progress
from hpctool.twin import Twin


def register(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser("local", help="run a real Slurm twin of the cluster on this machine")
    commands = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)

    up = commands.add_parser("up", help="start munge, MariaDB, slurmdbd, slurmctld and one slurmd per node")
    up.add_argument("--config", help="ParallelCluster config whose SlurmQueues become partitions "
                    "(default: cluster-configs/default.yaml)")
    up.add_argument("--nodes-per-queue", type=int, default=2, metavar="N", help="virtual nodes per queue (2)")
    up.add_argument("--json", action="store_true", help="print the status as JSON")
    up.set_defaults(handler=cmd_up)

    status = commands.add_parser("status", help="daemons, partitions and node states")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    env = commands.add_parser("env", help="print `export SLURM_CONF=...` (use: eval \"$(hpctool local env)\")")
    env.set_defaults(handler=cmd_env)

    down = commands.add_parser("down", help="cancel jobs and stop the daemons the twin started")
    down.add_argument("--purge", action="store_true", help="also delete the twin's folder (state, logs, database)")
    down.set_defaults(handler=cmd_down)

    notice = commands.add_parser("spot-notice", help="serve a spot interruption notice to NODE's IMDS emulator; "
                                 "the node is reclaimed (slurmd killed, DOWN) at the deadline")
    notice.add_argument("node", metavar="NODE", help="a node of a spot queue (see `hpctool local status`)")
    notice.add_argument("--deadline", type=float, default=120, metavar="SECONDS",
                        help="seconds from the notice to the reclaim (120, as EC2)")
    notice.add_argument("--wait", action="store_true", help="wait until the node's handler has requeued its jobs")
    notice.add_argument("--json", action="store_true", help="machine-readable output")
    notice.set_defaults(handler=cmd_spot_notice)

    restore = commands.add_parser("spot-restore", help="bring a noticed or reclaimed spot node back")
    restore.add_argument("node", metavar="NODE")
    restore.set_defaults(handler=cmd_spot_restore)

    from hpctool.cli.notebook import register_local_hub  # JupyterHub on the twin

    register_local_hub(commands)


def _print_status(status: dict, as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    print(f"twin: {'up' if status['up'] else 'down'}  home: {status['home']}")
    if status["config"]:
        print(f"config: {status['config']}")
    rows = [[q["name"], "spot" if q["spot"] else q["capacity_type"].lower(), n["name"], n["state"]]
            for q in status["queues"] for n in q["nodes"]]
    if rows:
        print_table(rows, ["PARTITION", "CAPACITY", "NODE", "STATE"])
    spot_services = {n: d for n, d in status["daemons"].items() if n.startswith(("imds ", "spot-handler "))}
    if spot_services:
        running = sum(1 for d in spot_services.values() if d["running"])
        print(f"spot: {running}/{len(spot_services)} IMDS emulators and interruption handlers running")
    if status["up"]:
        print(f"\nuse it: eval \"$(hpctool local env)\"   (SLURM_CONF={status['slurm_conf']})")


def cmd_up(args: argparse.Namespace) -> int:
    status = Twin(progress=progress).up(config=args.config, nodes_per_queue=args.nodes_per_queue)
    _print_status(status, args.json)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = Twin().status()
    _print_status(status, args.json)
    return 0 if status["up"] else 1


def cmd_env(args: argparse.Namespace) -> int:
    print(Twin().env_exports(), end="")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = Twin(progress=progress).down(purge=args.purge)
    print(f"stopped {len(stopped)} daemon(s)" if stopped else "nothing was running")
    return 0


def cmd_spot_notice(args: argparse.Namespace) -> int:
    from hpctool import spot

    twin = Twin(progress=progress)
    notice = spot.send_spot_notice(twin, args.node, args.deadline)
    result: dict = {"notice": notice.to_dict(), "handled": None}
    if args.wait:
        result["handled"] = spot.wait_notice_handled(twin, args.node, notice, timeout=args.deadline + 30)
    if args.json:
        print_json(result)
        return 0
    print(f"{args.node}: {notice.action} notice served; reclaim at {notice.time}")
    done = result["handled"]
    if done:
        print(f"handler: drained, requeued {', '.join(done['requeued'] + done['requeued_by_job']) or 'no job'}"
              f"{'; left alone (--no-requeue): ' + ', '.join(done['left_alone']) if done['left_alone'] else ''}"
              f" in {done['seconds']:.1f} s")
    print(f"handler log: {spot.files(twin, args.node).handler_log}")
    return 0


def cmd_spot_restore(args: argparse.Namespace) -> int:
    from hpctool import spot

    state = spot.restore_node(Twin(progress=progress), args.node)
    print(f"{args.node}: {state}")
    return 0
