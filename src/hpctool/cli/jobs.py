"""`hpctool submit ...` and `hpctool jobs`: run work on the cluster (or the twin) through submitit.

Feature modules are imported in the handlers: `hpctool jobs` never pays for submitit's import.
"""

from __future__ import annotations

import argparse
import sys

from hpctool.cli.output import print_json, print_table, progress


def register(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser(
        "submit", help="submit a shell command (or an array of them) as Slurm jobs, spot-safe",
        description="Submit COMMAND (run with bash -c) through submitit. On spot queues the job is "
                    "requeueable: on an interruption notice it gets USR2 (trap it to save state) and "
                    "is requeued; SLURM_RESTART_COUNT tells a rerun from a first run.",
    )
    submit.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the shell command (put it after --); with --array, {} is the input")
    submit.add_argument("--queue", "-p", help="Slurm partition (ParallelCluster queue)")
    submit.add_argument("--cpus", "-c", type=int, default=1, help="CPUs per job or task (1)")
    submit.add_argument("--mem", help="memory per job or task, e.g. 4G (default: the queue's per-CPU default)")
    submit.add_argument("--time", type=int, default=60, metavar="MINUTES", help="time limit in minutes (60)")
    requeue = submit.add_mutually_exclusive_group()
    requeue.add_argument("--requeue", dest="requeue", action="store_true", default=None,
                         help="requeue on interruption (default on spot queues)")
    requeue.add_argument("--no-requeue", dest="requeue", action="store_false",
                         help="never requeue: the spot handler leaves it alone")
    submit.add_argument("--name", default="hpctool", help="job name (hpctool)")
    submit.add_argument("--array", metavar="FILE", help="one task per line of FILE ({} in COMMAND is the line)")
    submit.add_argument("--call", metavar="MODULE:FUNCTION",
                        help="run a Python callable instead of a shell command (importable on the nodes); "
                             "with --array it gets each line as its one argument")
    submit.add_argument("--folder", help="where submitit keeps job files and logs, one folder per submission "
                                          "(default $HPCTOOL_JOBS_DIR, else ~/.local/state/hpctool/jobs)")
    submit.add_argument("--cluster-config", metavar="YAML",
                        help="the cluster's ParallelCluster config: its SPOT queues get --requeue by default "
                             "(default $HPCTOOL_CLUSTER_CONFIG; nodes with the `spot` feature count too)")
    submit.add_argument("--wait", action="store_true", help="wait for the jobs and print their results")
    submit.add_argument("--json", action="store_true", help="machine-readable output")
    submit.set_defaults(handler=cmd_submit)

    table = subparsers.add_parser("jobs", help="jobs from accounting (without it, those slurmctld knows): queue, node, state, restarts, elapsed")
    table.add_argument("job_ids", nargs="*", metavar="JOBID", help="only these jobs")
    table.add_argument("--since", default="now-1days", help="start of the window (sacct -S; now-1days)")
    table.add_argument("--json", action="store_true", help="machine-readable output")
    table.set_defaults(handler=cmd_jobs)


def cmd_submit(args: argparse.Namespace) -> int:
    from hpctool import jobs

    command = " ".join(args.command[1:] if args.command[:1] == ["--"] else args.command)
    resources = jobs.Resources(queue=args.queue, cpus=args.cpus, mem=args.mem, time_min=args.time,
                               requeue=args.requeue, name=args.name)
    items = jobs.read_array_file(args.array) if args.array else None
    jobs.check_work(command, args.call)
    cluster = jobs.resolve_cluster(cluster_config=args.cluster_config, arrays=items is not None)
    submitted, requeue = jobs.submit_work(resources, command=command, call=args.call, items=items,
                                          folder=args.folder, cluster=cluster)
    progress(f"submitted {len(submitted)} job(s) to {args.queue or 'the default queue'}"
             f" ({'requeue on interruption' if requeue else 'no requeue'})")
    rows = jobs.wait_results(submitted) if args.wait else [
        {"id": job.job_id, "folder": str(job.paths.folder)} for job in submitted]
    if args.json:
        print_json({"requeue": requeue, "jobs": rows})
    elif args.wait:
        print_table([[r["id"], r["state"], str(r["result"])] for r in rows], ["JOBID", "STATE", "RESULT"])
    else:
        for row in rows:
            print(row["id"])
    return 1 if any(r.get("state") == "FAILED" for r in rows) else 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from hpctool.jobs.table import controller_warning, job_table
    from hpctool.slurm.client import Slurm

    slurm = Slurm()
    rows, note = job_table(slurm, job_ids=args.job_ids or None, since=args.since)
    if note is not None:
        print(f"note: {note.message}\nhint: {note.hint}", file=sys.stderr)
    elif (warning := controller_warning(slurm)) is not None:
        print(f"warning: {warning.message}\nhint: {warning.hint}", file=sys.stderr)
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    print_table([[r.id, r.name, r.queue, r.node, r.state, str(r.restarts), str(r.elapsed_s)] for r in rows],
                ["JOBID", "NAME", "QUEUE", "NODE", "STATE", "RESTARTS", "ELAPSED_S"])
    return 0
