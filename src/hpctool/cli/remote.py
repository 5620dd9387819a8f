"""`hpctool remote HOST ...`: the cluster from a laptop, over SSH (HOST is an ssh config alias)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpctool.cli.output import print_json, print_table, progress
from hpctool.errors import UsageError
from hpctool.polling import poll_until

if TYPE_CHECKING:
    from hpctool.remote.session import RemoteSession

# fabric and paramiko load only when a `remote` command runs: every other command starts faster.
DEFAULT_ROOT = "~/hpctool-runs"  # = hpctool.remote.transfer.DEFAULT_ROOT


def register(subparsers: argparse._SubParsersAction) -> None:
    remote = subparsers.add_parser(
        "remote", help="submit, watch, fetch and open notebooks on a cluster over SSH (from a laptop)",
        description="Work on the cluster's head node over one SSH connection. HOST is an alias of your "
                    "ssh config (HostName, User, IdentityFile, ProxyJump or an SSM ProxyCommand). Host keys "
                    "are checked against known_hosts; an unknown key is refused unless --accept-new.")
    remote.add_argument("host", metavar="HOST", help="an ssh config alias of the head node")
    remote.add_argument("--ssh-config", help="ssh client config (default ~/.ssh/config; env HPCTOOL_SSH_CONFIG)")
    remote.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts; env HPCTOOL_KNOWN_HOSTS)")
    remote.add_argument("--accept-new", action="store_true",
                        help="accept and record an unknown host key (a changed one is always refused)")
    remote.add_argument("--remote-root", default=os.environ.get("HPCTOOL_REMOTE_ROOT", DEFAULT_ROOT),
                        help="run folders on the head node's shared storage (~/hpctool-runs; env HPCTOOL_REMOTE_ROOT)")
    remote.add_argument("--remote-hpctool", default=os.environ.get("HPCTOOL_REMOTE_HPCTOOL", "hpctool"),
                        help="hpctool on the head node (default: on PATH; env HPCTOOL_REMOTE_HPCTOOL)")
    actions = remote.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser("status", help="queues and node states, and your jobs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    submit = actions.add_parser("submit", help="upload a batch script and its inputs to a new run folder, sbatch it")
    submit.add_argument("script", type=Path, help="the batch script")
    submit.add_argument("inputs", type=Path, nargs="*", help="files or folders it needs (next to it in the run folder)")
    submit.add_argument("--queue", "-p", help="Slurm partition (ParallelCluster queue)")
    submit.add_argument("--cpus", "-c", type=int, default=1, help="CPUs per task (1)")
    submit.add_argument("--mem", help="memory, e.g. 4G")
    submit.add_argument("--time", type=int, default=60, metavar="MINUTES", help="time limit in minutes (60)")
    submit.add_argument("--array", metavar="SPEC", help="a job array, e.g. 0-9 or 1-100%%10")
    submit.add_argument("--name", default="", help="job name (the script's name)")
    submit.add_argument("--json", action="store_true", help="machine-readable output")
    submit.set_defaults(handler=cmd_submit)

    jobs = actions.add_parser("jobs", help="your runs on HOST (from the local manifest) and their jobs' states")
    jobs.add_argument("run", nargs="?", help="one run: its progress (a workflow: steps and a job per rule)")
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(handler=cmd_jobs)

    logs = actions.add_parser("logs", help="a run's or job's output")
    logs.add_argument("ref", metavar="RUN|JOB")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the jobs end")
    logs.set_defaults(handler=cmd_logs)

    cancel = actions.add_parser("cancel", help="cancel a run's jobs (a workflow is stopped first) or one job")
    cancel.add_argument("ref", metavar="RUN|JOB")
    cancel.set_defaults(handler=cmd_cancel)

    fetch = actions.add_parser("fetch", help="a run folder back with rsync (changed files only, resumable)")
    fetch.add_argument("run", metavar="RUN")
    fetch.add_argument("dest", nargs="?", type=Path, help="local folder (default ./RUN)")
    fetch.add_argument("--bwlimit", type=int, metavar="KBPS", help="limit the bandwidth (rsync --bwlimit)")
    fetch.add_argument("--json", action="store_true", help="machine-readable output")
    fetch.set_defaults(handler=cmd_fetch)

    run = actions.add_parser("run", help="start a workflow on the head node, detached (it survives you leaving)")
    flows = run.add_subparsers(dest="workflow", metavar="WORKFLOW", required=True)
    germline = flows.add_parser("germline", help="the germline workflow")
    data = germline.add_mutually_exclusive_group(required=True)
    data.add_argument("--configfile", type=Path, help="your config (uploaded to the run folder)")
    data.add_argument("--test", action="store_true", help="the seeded test data, made on the cluster")
    germline.add_argument("--input", type=Path, action="append", default=[], dest="inputs",
                          help="a sample sheet or data folder the config names (relative paths; repeat it)")
    germline.add_argument("--profile", default="slurm", help="Snakemake profile on the head node (slurm)")
    germline.add_argument("--snakemake", action="append", default=[], metavar="ARG", help="passed on to snakemake")
    germline.add_argument("--follow", action="store_true", help="report progress until the workflow ends")
    germline.add_argument("--json", action="store_true", help="machine-readable output")
    germline.set_defaults(handler=cmd_run_germline)

    notebook = actions.add_parser("notebook", help="JupyterLab on the cluster, forwarded to a local port")
    notebook.add_argument("--via", choices=["job", "hub"], default="job",
                          help="job: JupyterLab as a Slurm job (default); hub: the cluster's JupyterHub")
    notebook.add_argument("--queue", "-p", help="Slurm partition for the notebook job")
    notebook.add_argument("--cpus", "-c", type=int, default=1)
    notebook.add_argument("--mem", help="memory, e.g. 4G")
    notebook.add_argument("--time", type=int, default=240, metavar="MINUTES", help="time limit (240)")
    notebook.add_argument("--python", help="python with jupyterlab on the nodes (default: next to --remote-hpctool)")
    notebook.add_argument("--port", type=int, default=0, help="local port (default: a free one)")
    notebook.add_argument("--hub-port", type=int, default=8000, help="JupyterHub's port on the head node (8000)")
    notebook.add_argument("--keep", action="store_true", help="leave the notebook job running when you stop")
    notebook.add_argument("--open", action="store_true", help="open the browser (with the token; nothing printed)")
    notebook.set_defaults(handler=cmd_notebook)

    nodes = actions.add_parser("nodes", help="admin: run a command on the nodes of a queue")
    node_actions = nodes.add_subparsers(dest="nodes_action", metavar="ACTION", required=True)
    exec_ = node_actions.add_parser("exec", help="CMD on every running node of --queue, in parallel")
    exec_.add_argument("--queue", "-p", required=True)
    exec_.add_argument("--via", choices=["srun", "ssh"], default="srun",
                       help="srun -w NODE (default; idle nodes) or the head node's ssh to each node (busy ones too)")
    exec_.add_argument("--timeout", type=float, default=300, help="seconds per node (300)")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD")
    exec_.add_argument("--json", action="store_true", help="machine-readable output")
    exec_.set_defaults(handler=cmd_nodes_exec)


def _session(args: argparse.Namespace) -> RemoteSession:
    from hpctool.remote.connection import Remote, SshSettings
    from hpctool.remote.session import RemoteSession

    settings = SshSettings.from_env(config=args.ssh_config, known_hosts=args.known_hosts, accept_new=args.accept_new)
    connection = Remote(args.host, settings)
    return RemoteSession(connection, root=args.remote_root, hpctool=args.remote_hpctool, progress=progress)


def cmd_status(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        data = session.status()
    if args.json:
        print_json(data)
        return 0
    rows = [[queue, ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
            for queue, counts in sorted(data["queues"].items())]
    print_table(rows, ["QUEUE", "NODES"])
    print()
    print_table([[j["id"], j["queue"], j["name"], j["state"], j["time"], j["nodes"]] for j in data["jobs"]],
                ["JOBID", "QUEUE", "NAME", "STATE", "TIME", "NODES"])
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from hpctool.remote.manifest import Submission

    job = Submission(args.script, tuple(args.inputs), args.queue, args.cpus, args.mem, args.time,
                                 args.array, args.name)
    session = _session(args)
    with session.remote:
        run = session.submit(job)
    if args.json:
        print_json({"run": run.id, "folder": run.folder, "job_ids": run.job_ids})
    else:
        progress(f"run {run.id} in {args.host}:{run.folder}")
        print(f"{run.id} {' '.join(run.job_ids)}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        if args.run:
            run, _ = session.resolve(args.run)
            if run is None or run.kind != "germline":
                rows = [r for r in session.jobs() if r["run"] == args.run or args.run in r["job_ids"]]
                if args.json:
                    print_json(rows)
                    return 0
                _print_runs(rows)
                return 0
            data = session.germline_progress(run)
            if args.json:
                print_json(data)
            else:
                _print_progress(data)
            return 0
        rows = session.jobs()
    if args.json:
        print_json(rows)
    else:
        _print_runs(rows)
    return 0


def _print_runs(rows: list[dict]) -> None:
    print_table([[r["run"], r["kind"], ",".join(r["job_ids"]) or "-", ",".join(r["states"]) or "-", r["folder"]]
                 for r in rows], ["RUN", "KIND", "JOBS", "STATES", "FOLDER"])


def _print_progress(data: dict) -> None:
    state = "running" if data["running"] else f"ended (exit {data['exit_code']})"
    print(f"{data['run']}: {state}, {data['steps_done']} of {data['steps_total']} steps ({data['percent']:.0f}%)")
    if data["rule_jobs"]:
        print_table([[j["rule"], j["wildcards"] or "-", j["job_id"], j["queue"], j["state"]] for j in data["rule_jobs"]],
                    ["RULE", "WILDCARDS", "JOBID", "QUEUE", "STATE"])


def cmd_logs(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        if not args.follow:
            sys.stdout.write(session.logs(args.ref))
            return 0
        state = session.follow(args.ref, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    progress(f"{args.ref}: {state}")
    return 0 if state in {"COMPLETED", ""} else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        cancelled = session.cancel(args.ref)
    print(f"cancelled {' '.join(cancelled) or 'nothing (no jobs)'}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        result = session.fetch(args.run, args.dest, bwlimit_kbps=args.bwlimit)
    if args.json:
        print_json({"dest": str(result.dest), "files_transferred": result.files_transferred,
                    "bytes_received": result.bytes_received, "total_size": result.total_size})
    else:
        print(f"{result.dest}: {result.files_transferred} file(s) updated, {result.bytes_received} bytes received")
    return 0


def cmd_run_germline(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        run = session.run_germline(configfile=args.configfile, inputs=args.inputs, test=args.test,
                                   profile=args.profile, snakemake_args=args.snakemake)
        progress(f"germline run {run.id} started in {args.host}:{run.folder} (pid {run.pid}); "
                 "it keeps running when you disconnect")
        if not args.follow:
            print_json({"run": run.id, "folder": run.folder, "pid": run.pid}) if args.json else print(run.id)
            return 0

        def ended() -> dict | None:
            data = session.germline_progress(run)
            if not data["running"]:
                return data
            progress(f"{data['steps_done']} of {data['steps_total']} steps, {len(data['rule_jobs'])} Slurm job(s)")
            return None

        data = poll_until(ended, timeout=math.inf, interval=5, on_timeout=RuntimeError)
    print_json(data) if args.json else _print_progress(data)
    return 0 if data["exit_code"] == 0 else 1


def cmd_notebook(args: argparse.Namespace) -> int:
    session = _session(args)
    with session.remote:
        if args.via == "hub":
            # The JupyterHub path: the hub on the head node does the spawning (batchspawner); we
            # only forward its port. Logging in happens in the browser, so no token passes here.
            session.check_hub("127.0.0.1", args.hub_port)
            with session.remote.forward("127.0.0.1", args.hub_port, args.port) as port:
                print(f"JupyterHub of {args.host}: http://127.0.0.1:{port}/hub/  (Ctrl-C to stop forwarding)")
                _wait_forever()
            return 0
        notebook = session.start_notebook(queue=args.queue, cpus=args.cpus, mem=args.mem, time_min=args.time,
                                          python=args.python)
        try:
            with session.remote.forward(notebook.node_ip, notebook.port, args.port) as port:
                secret = notebook.save_url(port)
                print(f"JupyterLab (job {notebook.job_id}): {notebook.local_url(port)}")
                print(f"  the URL with its token is in {secret} (readable only by you)")
                if args.open:
                    import webbrowser

                    webbrowser.open(notebook.local_url(port, with_token=True))
                print("  Ctrl-C stops forwarding" + ("" if args.keep else " and cancels the job"), flush=True)
                _wait_forever()
        finally:
            if not args.keep:
                session.slurm.cancel([notebook.job_id], check=False)
    return 0


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        progress("stopped")


def cmd_nodes_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command given", "e.g. hpctool remote HOST nodes exec --queue spot -- uptime")
    session = _session(args)
    with session.remote:
        results = session.nodes_exec(args.queue, " ".join(command), via=args.via, timeout=args.timeout)
    if not results:
        progress(f"queue {args.queue} has no running nodes")
    if args.json:
        print_json([{"node": r.node, "exit_code": r.code, "output": r.output} for r in results])
    else:
        for r in results:
            last = r.output.splitlines()[-1] if r.output else ""
            print(f"{r.node}\texit {r.code}\t{last}")
    return 0 if all(r.code == 0 for r in results) else 1
