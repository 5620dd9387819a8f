"""`hpctool local ...`: the local Slurm twin."""

from __future__ import annotations

import argparse

from hpctool.cli.output import print_json, print_table, progress
from hpctool.twin import Twin
from hpctool.twin.layout import DEFAULT_MAX_DYNAMIC, DEFAULT_TIME_SCALE, SCALINGS


def register(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser("local", help="run a real Slurm twin of the cluster on this machine")
    commands = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)

    up = commands.add_parser("up", help="start (or heal) munge, slurmctld, the nodes' slurmd, and MariaDB and "
                             "slurmdbd when the config has accounting",
                             description="Start the twin, or start exactly the daemons that are not running "
                             "(a healthy daemon, and the jobs under it, is never restarted).")
    up.add_argument("--config", help="ParallelCluster config whose SlurmQueues become partitions "
                    "(default: cluster-configs/default.yaml)")
    up.add_argument("--static", "--nodes-per-queue", dest="static", type=int, metavar="N",
                    help="at least N static (always-on) nodes per queue, beyond the config's MinCount (0)")
    up.add_argument("--max-dynamic", type=int, metavar="N",
                    help=f"dynamic nodes per compute resource, at most (MaxCount - MinCount; {DEFAULT_MAX_DYNAMIC})")
    up.add_argument("--time-scale", type=float, metavar="F",
                    help=f"twin seconds per ParallelCluster second for idle time, timeouts ({DEFAULT_TIME_SCALE:g})")
    up.add_argument("--scaling", choices=SCALINGS,
                    help="who scales the nodes: the twin's own programs (twin), or ParallelCluster's node "
                         "daemons against a local EC2 (parallelcluster; docs/twin-pcnode.md)")
    up.epilog = "Options not given are those of the twin's last start (after `down`), else the defaults."
    up.add_argument("--json", action="store_true", help="print the status as JSON")
    up.set_defaults(handler=cmd_up)

    status = commands.add_parser("status", help="daemons, partitions and node states")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    env = commands.add_parser("env", help="print `export SLURM_CONF=...` (use: eval \"$(hpctool local env)\")")
    env.set_defaults(handler=cmd_env)

    update = commands.add_parser(
        "update", help="apply a changed cluster config to the running twin, as `pcluster update-cluster` would",
        description="Apply NEW to the running twin as ParallelCluster applies `pcluster update-cluster` with the "
                    "compute fleet running: refused with `hpctool config diff`'s words when ParallelCluster would "
                    "refuse it (exit 1); otherwise new queues and nodes join, removed ones leave, and the queues "
                    "whose changes follow QueueUpdateStrategy are drained or terminated (docs/config-diff.md).")
    update.add_argument("config", metavar="NEW", help="the changed ParallelCluster config (YAML)")
    update.add_argument("--json", action="store_true", help="machine-readable output")
    update.set_defaults(handler=cmd_update)

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

    cap = commands.add_parser("capacity", help="inject EC2 capacity and boot faults into a queue's dynamic nodes")
    cap.add_argument("target", metavar="QUEUE[/CR]", help="a queue, or one of its compute resources")
    what = cap.add_mutually_exclusive_group(required=True)
    what.add_argument("--insufficient", action="store_true",
                      help="no capacity: resumes fail with InsufficientInstanceCapacity, as on EC2")
    what.add_argument("--slow-boot", type=float, metavar="SECONDS", help="boots take SECONDS")
    what.add_argument("--boot-hang", action="store_true", help="boots never finish (ResumeTimeout takes the node down)")
    what.add_argument("--restore", action="store_true", help="capacity and boots back to normal")
    cap.add_argument("--for", dest="duration", type=float, default=3600, metavar="SECONDS",
                     help="with --insufficient: how long capacity stays away (3600)")
    cap.add_argument("--json", action="store_true", help="machine-readable output")
    cap.set_defaults(handler=cmd_capacity)

    ssh = commands.add_parser("ssh", help="log in to the head node (ssh, with a key the twin made) or a node",
                              description="A login shell, or COMMAND, on the twin's head node over ssh, or on "
                              "NODE's host (as from the head node of a cluster).")
    ssh.add_argument("--user", default=None, help="log in as this user (default: you)")
    ssh.add_argument("words", nargs=argparse.REMAINDER, metavar="[NODE] [-- COMMAND]",
                     help="a node of the twin (default: the head node); COMMAND runs instead of a shell")
    ssh.set_defaults(handler=cmd_ssh)

    image = commands.add_parser("image", help="the node image every host of the twin runs (Debian 13, Slurm 24.11)",
                                description="Show what the node image holds; `build` builds it when it is missing "
                                "or outdated (`--force`: always).")
    image.add_argument("action", nargs="?", choices=["show", "build"], default="show")
    image.add_argument("--force", action="store_true", help="with build: rebuild even when it is current")
    image.add_argument("--json", action="store_true", help="machine-readable output")
    image.set_defaults(handler=cmd_image)

    from hpctool.cli.local_users import register_local_users  # the twin's directory users
    from hpctool.cli.notebook import register_local_hub  # JupyterHub on the twin

    register_local_hub(commands)
    register_local_users(commands)


def _print_status(status: dict, as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    print(f"twin: {'up' if status['up'] else 'down'}  home: {status['home']}")
    if status["config"]:
        print(f"config: {status['config']}")
    rows = [[q["name"], "spot" if q["spot"] else q["capacity_type"].lower(), n["name"], n["kind"], n["state"]]
            for q in status["queues"] for n in q["nodes"]]
    if rows:
        print_table(rows, ["PARTITION", "CAPACITY", "NODE", "KIND", "STATE"])
    spot_services = {n: d for n, d in status["daemons"].items() if n.startswith(("imds ", "spot-handler "))}
    if spot_services:
        running = sum(1 for d in spot_services.values() if d["running"])
        print(f"spot: {running}/{len(spot_services)} IMDS emulators and interruption handlers running")
    for name in status["dead"]:
        print(f"not running: {name}")
    if status["dead"]:
        print("hint: `hpctool local up` starts exactly these again (running jobs are left alone)")
    if status["up"]:
        print(f"\nuse it: eval \"$(hpctool local env)\"   (SLURM_CONF={status['slurm_conf']})")


def cmd_up(args: argparse.Namespace) -> int:
    status = Twin(progress=progress).up(config=args.config, static_per_queue=args.static,
                                        max_dynamic=args.max_dynamic, time_scale=args.time_scale,
                                        scaling=args.scaling)
    _print_status(status, args.json)
    return 0 if status["up"] else 1


def cmd_ssh(args: argparse.Namespace) -> int:
    import getpass

    from hpctool.twin import access

    node, command = access.split_login_words(args.words)
    argv = access.login_argv(Twin(), node, args.user or getpass.getuser(), command)
    return access.run_interactive(argv)


def cmd_image(args: argparse.Namespace) -> int:
    twin = Twin(progress=progress)
    if args.action == "build":
        in_use = twin.hosts.alive("head")
        if args.force and in_use:
            from hpctool.errors import TwinError

            raise TwinError("a twin runs on the node image", "stop it first: `hpctool local down`")
        info = twin.image.build(progress) if args.force else twin.image.ensure(progress, in_use=in_use)
    else:
        info = twin.image.info()
    if args.json:
        print_json(info)
        return 0 if info["present"] else 1
    if not info["present"]:
        print(f"node image: not built ({info['root']})\nhint: `hpctool local image build`")
        return 1
    print(f"node image: {info['root']}")
    print(f"  Debian {info.get('debian', '?')} ({info.get('suite')}), Slurm {info.get('slurm')}")
    print(f"  built {info.get('built_at')} in {info.get('build_seconds')} s, {info.get('size_mb')} MB")
    print(f"  packages: {' '.join(info.get('packages', []))}")
    if not info["current"]:
        print("  outdated: its package list changed; `hpctool local image build` rebuilds it")
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    from hpctool.twin import capacity

    twin = Twin()
    layout = twin.layout()
    if layout is None:
        from hpctool.errors import TwinError

        raise TwinError(f"no twin at {twin.home}", "start it with `hpctool local up`")
    changed = capacity.set_faults(
        twin.paths, layout, args.target,
        insufficient_for=args.duration if args.insufficient else None,
        boot_delay_s=args.slow_boot, boot_hang=True if args.boot_hang else None, restore=args.restore)
    if layout.pcnode:  # EC2 (the twin's moto) answers the launches; ParallelCluster's daemons react
        from hpctool.twin.pcnode import apply_capacity

        apply_capacity(twin, layout, changed)
    elif args.restore:
        capacity.reenable(twin, layout, list(changed))
    if args.json:
        print_json({key: vars(value) for key, value in changed.items()})
        return 0
    for key, fault in changed.items():
        print(f"{key}: {capacity.describe(fault)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = Twin().status()
    _print_status(status, args.json)
    return 0 if status["up"] else 1


def cmd_env(args: argparse.Namespace) -> int:
    print(Twin().env_exports(), end="")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from hpctool.twin.update import update

    result = update(Twin(progress=progress), args.config)
    if args.json:
        print_json(result.to_dict())
        return 0
    if not result.changes:
        print("nothing to apply: the twin already runs this config")
        return 0
    print(f"applied {result.changes} change(s) (QueueUpdateStrategy {result.strategy})")
    for label, names in (("added", result.added), ("removed", result.removed),
                         ("drained, replaced once idle", result.drained),
                         ("replaced, jobs requeued", result.replaced), ("jobs requeued", result.requeued),
                         ("jobs ended with their removed nodes (NODE_FAIL)", result.ended),
                         ("nothing to apply on the twin", result.not_modelled)):
        if names:
            print(f"  {label}: {', '.join(names)}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from hpctool.notebook.hub import TwinHub

    twin = Twin(progress=progress)
    # The notebook hub first: stopping it stops its servers, which cancels their Slurm jobs.
    hub = ["jupyterhub"] if TwinHub(twin).down() else []
    stopped = hub + twin.down(purge=args.purge)
    print(f"stopped {len(stopped)} daemon(s)" if stopped else "nothing was running")
    return 0


def cmd_spot_notice(args: argparse.Namespace) -> int:
    from hpctool.twin import spot

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
    from hpctool.twin import spot

    state = spot.restore_node(Twin(progress=progress), args.node)
    print(f"{args.node}: {state}")
    return 0
