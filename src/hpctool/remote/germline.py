"""The germline workflow on the head node, detached from the laptop (``setsid nohup``): started in
a new run folder, its progress read from Snakemake's log and the Slurm job of each rule."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpctool.errors import UsageError
from hpctool.remote.connection import Remote
from hpctool.remote.manifest import Manifest, RemoteRun, new_run_id, now
from hpctool.remote.state import job_table
from hpctool.remote.transfer import RunFolders
from hpctool.slurm.client import Slurm
from hpctool.workflow.rules import SlurmRuleJob, parse_submissions

RUN_LOG = "hpctool-run.log"  # a detached workflow's own output, in its run folder
_STEPS = re.compile(r"(\d+) of (\d+) steps \((\d+(?:\.\d+)?)%\) done")


def start(remote: Remote, folders: RunFolders, manifest: Manifest, hpctool: str, *,
          configfile: Path | None = None, inputs: Sequence[Path] = (), test: bool = False,
          profile: str = "slurm", snakemake_args: Sequence[str] = ()) -> RemoteRun:
    """Sync the config, sample sheet and inputs into a new run folder and start the workflow
    there, detached from this connection (``setsid nohup``): it survives the laptop leaving."""
    if bool(configfile) == bool(test):
        raise UsageError("give either --configfile or --test", "e.g. --configfile my.yaml --input samples.tsv")
    files = [configfile, *inputs] if configfile else list(inputs)
    run_id = new_run_id("germline")
    root = folders.prepare_root()
    folder = f"{root}/{run_id}"
    with folders.new_folder(root, run_id) as staging:
        if files:
            folders.upload(staging, files)
    argv = [hpctool, "run", "germline", folder, "--profile", profile]
    argv += ["--configfile", f"{folder}/{configfile.name}"] if configfile else ["--test"]
    argv += [f"--snakemake={arg}" for arg in snakemake_args]
    inner = f"{shlex.join(argv)}; echo $? > {shlex.quote(folder)}/hpctool-run.exit"
    # `cd || exit` apart from the `&`: $! must be the setsid'ed shell, the leader of the group
    # that `cancel` stops, not a subshell around it.
    start_line = (f"cd {shlex.quote(folder)} || exit 1; setsid nohup sh -c {shlex.quote(inner)} "
                  f"> {shlex.quote(folder)}/{RUN_LOG} 2>&1 < /dev/null & echo $!")
    result = remote.run(start_line, check=True)
    pid = int(result.stdout.split()[-1])
    run = RemoteRun(run_id, remote.host, folder, "germline", [], now(), pid=pid, script="germline",
                    address=remote.address)
    manifest.add(run)
    return run


def snakemake_log(remote: Remote, run: RemoteRun) -> str:
    return remote.run(f"cat -- {shlex.quote(run.folder)}/.snakemake/log/*.snakemake.log 2>/dev/null").stdout


def submissions(remote: Remote, run: RemoteRun) -> list[SlurmRuleJob]:
    return parse_submissions(snakemake_log(remote, run))


def progress(remote: Remote, slurm: Slurm, run: RemoteRun) -> dict[str, Any]:
    """Whether the workflow still runs, Snakemake's step count, and the Slurm job of each rule."""
    # `ps`, not `kill -0`: a zombie nobody reaped yet has ended.
    state = remote.run(f"case \"$(ps -o stat= -p {int(run.pid or 0)} 2>/dev/null)\" in ''|Z*) ;; "
                       "*) echo running;; esac; "
                       f"cat -- {shlex.quote(run.folder)}/hpctool-run.exit 2>/dev/null; true").stdout.split()
    running = "running" in state
    exit_code = int(state[-1]) if state and state[-1].lstrip("-").isdigit() else None
    log = snakemake_log(remote, run)
    steps = _STEPS.findall(log)
    done, total, percent = (int(steps[-1][0]), int(steps[-1][1]), float(steps[-1][2])) if steps else (0, 0, 0.0)
    rule_submissions = parse_submissions(log)
    ids = [s.slurm_job_id for s in rule_submissions]
    table = {job_id: (r.partition, r.state) for job_id, r in job_table(slurm, ids).items() if r.recorded}
    missing = [job_id for job_id in ids if job_id not in table]
    if missing:  # accounting lags slurmctld by a moment: ask the controller about fresh jobs
        table.update({r["id"]: (r["queue"], r["state"]) for r in slurm.queued(missing)})
    rule_jobs = [{"rule": "+".join(s.rules), "wildcards": s.wildcards, "job_id": s.slurm_job_id,
                  "queue": table.get(s.slurm_job_id, ("", "UNKNOWN"))[0],
                  "state": table.get(s.slurm_job_id, ("", "UNKNOWN"))[1]} for s in rule_submissions]
    return {"run": run.id, "running": running, "exit_code": None if running else exit_code,
            "steps_done": done, "steps_total": total, "percent": percent, "rule_jobs": rule_jobs}
