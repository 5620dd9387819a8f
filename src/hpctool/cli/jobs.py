"""`hpctool submit ...` and `hpctool jobs`: run work on the cluster (or the twin) through submitit."""

from __future__ import annotations

import argparse
import importlib
import re

from hpctool import jobs
from hpctool.cli.output import print_json, print_table, progress
from hpctool.errors import UsageError


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
    submit.add_argument("--folder", default=jobs.DEFAULT_FOLDER, help="where submitit keeps job files and logs")
    submit.add_argument("--wait", action="store_true", help="wait for the jobs and print their results")
    submit.add_argument("--json", action="store_true", help="machine-readable output")
    submit.set_defaults(handler=cmd_submit)

    table = subparsers.add_parser("jobs", help="jobs from accounting: queue, node, state, restarts, elapsed")
    table.add_argument("job_ids", nargs="*", metavar="JOBID", help="only these jobs")
    table.add_argument("--since", default="now-1days", help="start of the window (sacct -S; now-1days)")
    table.add_argument("--json", action="store_true", help="machine-readable output")
    table.set_defaults(handler=cmd_jobs)


def _callable(spec: str):
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UsageError(f"--call {spec!r} is not MODULE:FUNCTION", "e.g. --call mypackage.tasks:align")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--call {spec}: {error}", "the module must be importable here and on the nodes") from error
    if not callable(target):
        raise UsageError(f"--call {spec}: not callable", "name a function or a callable class instance")
    return target


def cmd_submit(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    text = " ".join(command)
    if bool(text) == bool(args.call):
        raise UsageError("give either a shell command (after --) or --call MODULE:FUNCTION",
                         "e.g. hpctool submit --queue spot -- 'bwa mem ref.fa reads.fq > out.sam'")
    resources = jobs.Resources(queue=args.queue, cpus=args.cpus, mem=args.mem, time_min=args.time,
                               requeue=args.requeue, name=args.name)
    if args.array:
        items = jobs.read_array_file(args.array)
        if args.call:
            submitted = jobs.map_array(_callable(args.call), items, resources, args.folder)
        else:
            submitted = jobs.map_array(jobs.ShellCommand(), jobs.array_commands(text, items), resources, args.folder)
    elif args.call:
        submitted = [jobs.submit(_callable(args.call), resources=resources, folder=args.folder)]
    else:
        submitted = [jobs.submit(jobs.ShellCommand(text), resources=resources, folder=args.folder)]
    requeue = jobs.wants_requeue(resources)
    progress(f"submitted {len(submitted)} job(s) to {args.queue or 'the default queue'}"
             f" ({'requeue on interruption' if requeue else 'no requeue'})")
    rows = [{"id": job.job_id, "folder": str(job.paths.folder)} for job in submitted]
    if args.wait:
        for row, job in zip(rows, submitted, strict=True):
            try:
                row["result"] = job.result()
                row["state"] = "COMPLETED"
            except Exception as error:  # noqa: BLE001 (a failed job is a result to report, not a crash)
                row["result"] = None
                row["state"] = "FAILED"
                row["error"] = _error_line(error)
    if args.json:
        print_json({"requeue": requeue, "jobs": rows})
    elif args.wait:
        print_table([[r["id"], r["state"], str(r["result"])] for r in rows], ["JOBID", "STATE", "RESULT"])
    else:
        for row in rows:
            print(row["id"])
    return 1 if any(r.get("state") == "FAILED" for r in rows) else 0


def _error_line(error: Exception) -> str:
    """The line that says what failed in submitit's report (the traceback's last exception line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (named or lines or [repr(error)])[-1]


def cmd_jobs(args: argparse.Namespace) -> int:
    rows = jobs.list_jobs(job_ids=args.job_ids or None, since=args.since)
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    print_table([[r.id, r.name, r.queue, r.node, r.state, str(r.restarts), str(r.elapsed_s)] for r in rows],
                ["JOBID", "NAME", "QUEUE", "NODE", "STATE", "RESTARTS", "ELAPSED_S"])
    return 0
