"""`hpctool remote HOST ...`: work on a cluster's head node from a laptop, over one SSH connection.

Runs live in run folders under a root on the head node's shared storage (``~/hpctool-runs`` by
default; ``/shared/...`` on a ParallelCluster cluster), one folder per run
(:mod:`hpctool.remote.transfer`); the laptop's manifest (:mod:`hpctool.remote.manifest`) maps each
run id to its host, remote folder and Slurm job ids.

Slurm runs on the head node itself: the same :class:`~hpctool.slurm.client.Slurm` client as here,
over an :class:`~hpctool.remote.runner.SshRunner`, its output read by the same parsers. Workflows
start detached (:mod:`hpctool.remote.germline`), notebooks run as jobs
(:mod:`hpctool.remote.notebooks`), admins reach every node (:mod:`hpctool.remote.nodes`). All SSH
goes through :mod:`hpctool.remote.connection`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

from hpctool.errors import RemoteError, SlurmCommandError, SlurmError, UsageError
from hpctool.polling import poll_until
from hpctool.progress import Progress, quiet
from hpctool.remote import germline, nodes, notebooks
from hpctool.remote.connection import Remote
from hpctool.remote.manifest import (
    FetchResult,
    Manifest,
    NodeResult,
    Notebook,
    RemoteRun,
    Submission,
    new_run_id,
    now,
    redact,
    same_host,
)
from hpctool.remote.runner import SshRunner
from hpctool.remote.state import job_table, jobs_state, of_jobs
from hpctool.remote.transfer import DEFAULT_ROOT, RunFolders, fetch
from hpctool.slurm.client import Slurm

__all__ = ["DEFAULT_ROOT", "Manifest", "RemoteRun", "RemoteSession", "Submission"]


class _StillRunning(Exception):
    pass


class RemoteSession:
    """The feature logic of `hpctool remote` over one :class:`~hpctool.remote.connection.Remote`."""

    def __init__(self, remote: Remote, manifest: Manifest | None = None, *, root: str = DEFAULT_ROOT,
                 hpctool: str = "hpctool", progress: Progress = quiet) -> None:
        self.remote = remote
        self.host = remote.host
        self.manifest = manifest or Manifest()
        self.root = root
        self.hpctool = hpctool
        self.progress = progress
        self.slurm = Slurm(runner=SshRunner(remote))
        self.folders = RunFolders(remote, root, self.progress)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remote.close()

    def status(self) -> dict[str, Any]:
        """Queues with their node states, and the user's jobs."""
        node_rows = self.slurm.node_queues()
        jobs = self.slurm.my_jobs()
        queues: dict[str, dict[str, int]] = {}
        for node in node_rows:
            counts = queues.setdefault(node["queue"], {})
            counts[node["state"]] = counts.get(node["state"], 0) + 1
        return {"host": self.host, "queues": queues, "nodes": node_rows, "jobs": jobs}

    # -- batch jobs ------------------------------------------------------------------------------
    def submit(self, job: Submission) -> RemoteRun:
        """Upload the script and inputs to a new run folder, ``sbatch`` it there, record the run."""
        if not job.script.is_file():
            raise UsageError(f"script {job.script} does not exist", "give the batch script to submit")
        if job.cpus < 1 or job.time_min < 1:
            raise UsageError("--cpus and --time must be at least 1", "e.g. --cpus 2 --time 60")
        run_id = new_run_id("batch")
        root = self.folders.prepare_root()
        folder = f"{root}/{run_id}"
        with self.folders.new_folder(root, run_id) as staging:
            self.folders.upload(staging, [job.script, *job.inputs])
        out = "slurm-%A_%a.out" if job.array else "slurm-%j.out"
        options = [f"--chdir={folder}", f"--output={folder}/{out}", f"--job-name={job.name or job.script.stem}",
                   f"--cpus-per-task={job.cpus}", f"--time={job.time_min}"]
        options += [f"--partition={job.queue}"] if job.queue else []
        options += [f"--mem={job.mem}"] if job.mem else []
        options += [f"--array={job.array}"] if job.array else []
        try:
            job_id = self.slurm.sbatch(options, script_path=f"{folder}/{job.script.name}")
        except SlurmCommandError as error:
            self.folders.remove(folder)  # no job: no orphan folder either
            raise SlurmError(f"sbatch on {self.host} refused the job: {error.detail}",
                             "check --queue, --cpus, --mem and --array against `hpctool remote HOST status`") from None
        run = RemoteRun(run_id, self.host, folder, "batch", [job_id], now(), script=job.script.name,
                        address=self.remote.address)
        self.manifest.add(run)
        return run

    # -- runs and jobs ---------------------------------------------------------------------------
    def runs(self) -> list[RemoteRun]:
        return self.manifest.for_host(self.host, self.remote.address)

    def resolve(self, ref: str) -> tuple[RemoteRun | None, list[str]]:
        """A run id (from the manifest) or a Slurm job id -> (run, job ids)."""
        run = self.manifest.get(ref)
        if run is not None:
            if not same_host(run, self.host, self.remote.address):
                raise UsageError(f"run {ref} was started on {run.host}, not {self.host}",
                                 f"use `hpctool remote {run.host} ...`")
            return run, self._run_job_ids(run)
        if re.fullmatch(r"\d+(_\d+)?", ref):
            owner = next((r for r in self.runs() if ref.split("_")[0] in r.job_ids), None)
            return owner, [ref]
        raise UsageError(f"{ref} is neither a run of {self.host} nor a Slurm job id",
                         f"`hpctool remote {self.host} jobs` lists the runs")

    def _run_job_ids(self, run: RemoteRun) -> list[str]:
        if run.kind != "germline":
            return list(run.job_ids)
        return [job.slurm_job_id for job in germline.submissions(self.remote, run)]

    def jobs(self) -> list[dict[str, Any]]:
        """Every run of this host from the manifest, with its jobs' states."""
        runs = self.runs()
        ids = {run.id: self._run_job_ids(run) for run in runs}
        table = job_table(self.slurm, sorted({j for js in ids.values() for j in js}))
        rows = []
        for run in runs:
            records = [asdict(r) for r in table.values() if of_jobs(r.job_id, ids[run.id])]
            rows.append({"run": run.id, "kind": run.kind, "folder": run.folder, "created": run.created,
                         "job_ids": ids[run.id], "states": sorted({r["state"] for r in records}), "jobs": records})
        return rows

    def _finished(self, run: RemoteRun | None, job_ids: list[str]) -> str:
        """'' while running; else the final state."""
        if run is not None and run.kind == "germline":
            progress = self.germline_progress(run)
            return "" if progress["running"] else ("COMPLETED" if progress["exit_code"] == 0 else "FAILED")
        return jobs_state(self.slurm, job_ids)

    # -- logs ------------------------------------------------------------------------------------
    def log_files(self, ref: str) -> list[str]:
        run, job_ids = self.resolve(ref)
        if run is not None and run.kind == "germline" and ref == run.id:
            return [f"{run.folder}/{germline.RUN_LOG}"]
        if run is not None and ref == run.id:
            listing = self.remote.run(f"ls -1 -- {shlex.quote(run.folder)}/slurm-*.out 2>/dev/null")
            files = listing.stdout.split()
            if not files:
                raise RemoteError(f"run {ref} has no job output in {run.folder} yet",
                                  "the job may still be pending; `hpctool remote HOST jobs`")
            return files
        record = self.slurm.find_job(job_ids[0])
        path = record.get("StdOut") if record else None
        if not path and run is not None:
            path = f"{run.folder}/slurm-{job_ids[0]}.out"
        if not path:
            raise RemoteError(f"job {job_ids[0]} is not known to slurmctld on {self.host}",
                              "it may have aged out; use the run id (`hpctool remote HOST jobs`)")
        return [path]

    def read_log(self, path: str, offset: int = 0) -> tuple[str, int]:
        """The log from byte ``offset`` on; returns (text, new offset)."""
        result = self.remote.run(f"test -f {shlex.quote(path)} || exit 3; tail -c +{offset + 1} -- {shlex.quote(path)}")
        if result.code == 3:
            raise RemoteError(f"{path} does not exist on {self.host}", "the job may not have started yet")
        if not result.ok:
            raise RemoteError(f"cannot read {path} on {self.host}: {result.stderr.strip()}", "check its permissions")
        data = result.stdout
        return redact(data), offset + len(data.encode())

    def logs(self, ref: str) -> str:
        files = self.log_files(ref)
        parts = []
        for path in files:
            text, _ = self.read_log(path)
            parts.append(f"==> {path} <==\n{text}" if len(files) > 1 else text)
        return "\n".join(parts)

    def follow(self, ref: str, on_text: Callable[[str], None], interval: float = 1.0,
               timeout: float | None = None) -> str:
        """Print new log output as it comes, until the run's jobs (or workflow) finished; return
        the final state (``RUNNING`` after ``timeout``). A dropped connection raises :class:`RemoteError`."""
        run, job_ids = self.resolve(ref)
        offsets: dict[str, int] = {}

        def step() -> str:
            done = self._finished(run, job_ids)
            try:
                files = self.log_files(ref)
            except RemoteError:
                files = []
            for path in files:
                try:
                    text, offsets[path] = self.read_log(path, offsets.get(path, 0))
                except RemoteError as error:
                    if "dropped" in error.message:
                        raise
                    continue
                if text:
                    on_text(text)
            return done

        try:
            return poll_until(step, timeout=math.inf if timeout is None else timeout, interval=interval,
                              on_timeout=_StillRunning)
        except _StillRunning:
            return "RUNNING"

    # -- cancel ----------------------------------------------------------------------------------
    def cancel(self, ref: str) -> list[str]:
        """Cancel a run's jobs. A workflow: SIGTERM its process group first (Snakemake then submits
        nothing more), cancel the jobs it submitted, wait for the group to end, SIGKILL what is left."""
        run, job_ids = self.resolve(ref)
        workflow = run is not None and run.kind == "germline" and run.pid and ref == run.id
        if workflow:
            self.remote.run(f"kill -TERM -- -{int(run.pid)} 2>/dev/null; true")
            job_ids = self._run_job_ids(run)
        if job_ids:
            self.slurm.cancel(job_ids)
        if workflow:
            self.remote.run(f"for i in $(seq 100); do ps -o stat= --sid {int(run.pid)} | grep -qv '^Z' || break; "
                            f"sleep 0.2; done; kill -KILL -- -{int(run.pid)} 2>/dev/null; true", timeout=60)
        return job_ids

    # -- the other features, each in its module --------------------------------------------------
    def fetch(self, run_id: str, dest: Path | None = None, **options: Any) -> FetchResult:
        """The run folder back with rsync (:func:`hpctool.remote.transfer.fetch`)."""
        run = self.manifest.get(run_id)
        if run is None or not same_host(run, self.host, self.remote.address):
            raise UsageError(f"{run_id} is not a run of {self.host}", f"`hpctool remote {self.host} jobs` lists them")
        return fetch(self.remote, run, dest, progress=self.progress, **options)

    def run_germline(self, **options: Any) -> RemoteRun:
        """The germline workflow, detached (:func:`hpctool.remote.germline.start`)."""
        return germline.start(self.remote, self.folders, self.manifest, self.hpctool, **options)

    def germline_progress(self, run: RemoteRun) -> dict[str, Any]:
        return germline.progress(self.remote, self.slurm, run)

    def start_notebook(self, **options: Any) -> Notebook:
        """JupyterLab as a Slurm job (:func:`hpctool.remote.notebooks.start`)."""
        return notebooks.start(self.remote, self.slurm, self.folders, self.manifest, self.hpctool,
                               progress=self.progress, **options)

    def check_hub(self, hub_host: str, hub_port: int) -> None:
        notebooks.check_hub(self.remote, hub_host, hub_port)

    def running_nodes(self, queue: str) -> list[dict[str, str]]:
        return nodes.running_nodes(self.slurm, self.host, queue)

    def nodes_exec(self, queue: str, command: str, **options: Any) -> list[NodeResult]:
        """A command on every running node of a queue (:func:`hpctool.remote.nodes.nodes_exec`)."""
        return nodes.nodes_exec(self.remote, self.slurm, queue, command, **options)
