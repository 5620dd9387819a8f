"""`hpctool remote HOST ...`: work on a cluster's head node from a laptop, over one SSH connection.

Runs live in run folders under a root on the head node's shared storage (``~/hpctool-runs`` by
default; ``/shared/...`` on a ParallelCluster cluster), one folder per run, made complete under a
hidden ``.ID.partial`` name and renamed into place, so a dropped upload leaves no half run. A local
manifest (``$HPCTOOL_HOME/remote-runs.json``, written atomically) maps each run id to its host,
remote folder and Slurm job ids.

Slurm runs on the head node itself (``sinfo``, ``squeue``, ``sbatch``, ``sacct``, ``scancel`` over
the connection); the remote output is read with :mod:`hpctool.slurm_parse`'s parsers, the same ones
used locally. Results come back with rsync over the same SSH settings (only changed files,
resumable, put in place only when complete). Workflows start detached (``setsid nohup``) so they
outlive the laptop's connection. All SSH goes through :mod:`hpctool.remote`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from hpctool.atomic import write_atomic
from hpctool.errors import RemoteError, SlurmError, UsageError
from hpctool.remote import Remote, Result, quote
from hpctool.slurm_parse import (
    SACCT_FIELDS,
    node_in_service,
    parse_delimited,
    parse_sacct_jobs,
    parse_sbatch_parsable,
    parse_scontrol_records,
)
from hpctool.workflow import parse_submissions

DEFAULT_ROOT = "~/hpctool-runs"
MANIFEST_NAME = "remote-runs.json"
RUN_LOG = "hpctool-run.log"  # a detached workflow's own output, in its run folder
PARTIAL_DIR = ".rsync-partial"
_STEPS = re.compile(r"(\d+) of (\d+) steps \((\d+(?:\.\d+)?)%\) done")
_NOTEBOOK_URL = re.compile(r"https?://(?P<host>[^/:\s]+):(?P<port>\d+)/(?:lab|tree)?\?token=(?P<token>[0-9a-f]+)")
_NOTEBOOK_NODE = re.compile(r"hpctool-notebook ip=(?P<ip>\S+) port=(?P<port>\d+)")
_TOKEN = re.compile(r"(token=)[^\s&]+")
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def redact(text: str) -> str:
    """Remote text with any Jupyter token blanked: output never carries a secret."""
    return _TOKEN.sub(r"\1<hidden>", text)


# -- the local manifest ------------------------------------------------------------------------
def data_dir() -> Path:
    return Path(os.environ.get("HPCTOOL_HOME") or Path.home() / ".local" / "share" / "hpctool")


@dataclass
class RemoteRun:
    """One run started from this laptop: where it lives and which Slurm jobs are its own."""

    id: str
    host: str
    folder: str
    kind: str  # "batch", "germline" or "notebook"
    job_ids: list[str] = field(default_factory=list)
    created: str = ""
    pid: int | None = None  # a detached workflow's process (group) on the head node
    script: str = ""
    address: str = ""  # user@hostname:port: the same head node under another alias

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteRun:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class Manifest:
    """Run id -> :class:`RemoteRun`, in one JSON file written atomically (mode 0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / MANIFEST_NAME

    def load(self) -> dict[str, RemoteRun]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {key: RemoteRun.from_dict(value) for key, value in data.get("runs", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise UsageError(f"the run manifest {self.path} is unreadable: {error}",
                             "move it aside; runs on the cluster are untouched") from error

    def save(self, runs: dict[str, RemoteRun]) -> None:
        text = json.dumps({"runs": {key: asdict(run) for key, run in runs.items()}}, indent=2) + "\n"
        write_atomic(self.path, text, mode=0o600)

    def add(self, run: RemoteRun) -> None:
        runs = self.load()
        runs[run.id] = run
        self.save(runs)

    def get(self, run_id: str) -> RemoteRun | None:
        return self.load().get(run_id)

    def for_host(self, host: str, address: str = "") -> list[RemoteRun]:
        return [run for run in self.load().values() if _same_host(run, host, address)]


def _same_host(run: RemoteRun, host: str, address: str) -> bool:
    return run.host == host or bool(address and run.address == address)


def new_run_id(kind: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{kind[:2]}{secrets.token_hex(2)}"


# -- what users ask for ------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    """A batch script and its inputs, and what to ask Slurm for."""

    script: Path
    inputs: tuple[Path, ...] = ()
    queue: str | None = None
    cpus: int = 1
    mem: str | None = None
    time_min: int = 60
    array: str | None = None  # sbatch's --array spec: 0-9, 1-100%10
    name: str = ""


@dataclass
class FetchResult:
    dest: Path
    files_transferred: int
    bytes_received: int
    literal_bytes: int
    total_size: int


@dataclass
class NodeResult:
    node: str
    code: int
    output: str


@dataclass
class Notebook:
    run: RemoteRun
    job_id: str
    node_ip: str
    port: int
    token: str  # never printed; only written to a 0600 file or handed to the browser

    def local_url(self, local_port: int, with_token: bool = False) -> str:
        base = f"http://127.0.0.1:{local_port}/lab"
        return f"{base}?token={self.token}" if with_token else base

    def save_url(self, local_port: int) -> Path:
        """The URL with its token, in a file only the user can read (it is never printed)."""
        path = data_dir() / f"notebook-{self.run.id}.url"
        write_atomic(path, self.local_url(local_port, with_token=True) + "\n", mode=0o600)
        return path


class RemoteSession:
    """The feature logic of `hpctool remote` over one :class:`~hpctool.remote.Remote` connection."""

    def __init__(self, remote: Remote, manifest: Manifest | None = None, *, root: str = DEFAULT_ROOT,
                 hpctool: str = "hpctool", progress: Progress = _quiet) -> None:
        self.remote = remote
        self.host = remote.host
        self.manifest = manifest or Manifest()
        self.root = root
        self.hpctool = hpctool
        self.progress = progress

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remote.close()

    # -- Slurm on the head node ------------------------------------------------------------------
    def slurm(self, argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> Result:
        """One Slurm command on the head node; Slurm missing there is its own clear error."""
        result = self.remote.run(argv, timeout=timeout)
        if result.code == 127:
            raise SlurmError(f"Slurm is not installed on {self.host}: {argv[0]}: command not found",
                             f"is {self.host} the cluster's head node? (Slurm's commands must be on its PATH)")
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip()
            raise SlurmError(f"{argv[0]} on {self.host} failed (exit {result.code}): {detail}",
                             "check that slurmctld answers there (`scontrol ping`)")
        return result

    def status(self) -> dict[str, Any]:
        """Queues with their node states, and the user's jobs."""
        nodes = parse_delimited(self.slurm(["sinfo", "-h", "-N", "-o", "%N|%R|%T"]).stdout,
                                ["node", "queue", "state"])
        jobs = parse_delimited(self.slurm(["squeue", "-h", "--me", "-o", "%i|%P|%j|%T|%M|%N"]).stdout,
                               ["id", "queue", "name", "state", "time", "nodes"])
        queues: dict[str, dict[str, int]] = {}
        for node in nodes:
            counts = queues.setdefault(node["queue"], {})
            counts[node["state"]] = counts.get(node["state"], 0) + 1
        return {"host": self.host, "queues": queues, "nodes": nodes, "jobs": jobs}

    # -- run folders -----------------------------------------------------------------------------
    def _prepare_root(self, need_slurm: bool = True) -> str:
        """The absolute run root (made if missing); stale partial uploads older than a day go."""
        check = "command -v sbatch >/dev/null || exit 127; " if need_slurm else ""
        root = quote(self.root)
        result = self.remote.run(
            f"{check}mkdir -p -- {root} && cd -- {root} && "
            "find . -maxdepth 1 -name '.*.partial' -mmin +1440 -exec rm -rf {} + ; pwd -P")
        if result.code == 127:
            raise SlurmError(f"Slurm is not installed on {self.host}: sbatch: command not found",
                             f"is {self.host} the cluster's head node? (Slurm's commands must be on its PATH)")
        if not result.ok:
            raise RemoteError(f"cannot use the run root {self.root} on {self.host}: {result.stderr.strip()}",
                              "give a writable folder on shared storage with --remote-root")
        return result.stdout.strip().splitlines()[-1]

    @contextmanager
    def _new_folder(self, root: str, run_id: str) -> Iterator[str]:
        """A run folder filled under a hidden name, renamed into place when the block succeeds."""
        staging, final = f"{root}/.{run_id}.partial", f"{root}/{run_id}"
        self.remote.run(["mkdir", "-p", "--", staging], check=True)
        try:
            yield staging
            self.remote.run(["mv", "-T", "--", staging, final], check=True)
        except BaseException:
            try:
                self.remote.run(["rm", "-rf", "--", staging], timeout=30)
            except RemoteError:
                pass  # the connection is gone: the hidden folder is cleaned by a later run
            raise

    def _upload(self, staging: str, files: Sequence[Path]) -> None:
        pairs = []
        for path in files:
            if not path.exists():
                raise UsageError(f"{path} does not exist", "check the path of the script and its inputs")
            pairs.append((path, f"{staging}/{path.name}"))
        names = [p.name for p in files]
        if len(set(names)) != len(names):
            raise UsageError(f"two inputs share a name: {', '.join(names)}", "inputs land side by side in the run folder")
        sent = self.remote.put_tree(pairs)
        self.progress(f"uploaded {len(files)} item(s), {sent} bytes")

    def submit(self, job: Submission) -> RemoteRun:
        """Upload the script and inputs to a new run folder, ``sbatch`` it there, record the run."""
        if not job.script.is_file():
            raise UsageError(f"script {job.script} does not exist", "give the batch script to submit")
        if job.cpus < 1 or job.time_min < 1:
            raise UsageError("--cpus and --time must be at least 1", "e.g. --cpus 2 --time 60")
        run_id = new_run_id("batch")
        root = self._prepare_root()
        folder = f"{root}/{run_id}"
        with self._new_folder(root, run_id) as staging:
            self._upload(staging, [job.script, *job.inputs])
        out = "slurm-%A_%a.out" if job.array else "slurm-%j.out"
        argv = ["sbatch", "--parsable", f"--chdir={folder}", f"--output={folder}/{out}",
                f"--job-name={job.name or job.script.stem}", f"--cpus-per-task={job.cpus}", f"--time={job.time_min}"]
        if job.queue:
            argv.append(f"--partition={job.queue}")
        if job.mem:
            argv.append(f"--mem={job.mem}")
        if job.array:
            argv.append(f"--array={job.array}")
        result = self.slurm([*argv, f"{folder}/{job.script.name}"], check=False)
        if not result.ok:
            self.remote.run(["rm", "-rf", "--", folder])  # no job: no orphan folder either
            raise SlurmError(f"sbatch on {self.host} refused the job: {(result.stderr or result.stdout).strip()}",
                             "check --queue, --cpus, --mem and --array against `hpctool remote HOST status`")
        job_id = parse_sbatch_parsable(result.stdout)
        run = RemoteRun(run_id, self.host, folder, "batch", [job_id], _now(), script=job.script.name,
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
            if not _same_host(run, self.host, self.remote.address):
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
        return [job.slurm_job_id for job in self._germline_submissions(run)]

    def job_table(self, job_ids: Sequence[str]) -> dict[str, Any]:
        """Job id -> sacct record (as a dict) for these jobs."""
        if not job_ids:
            return {}
        text = self.slurm(["sacct", "-X", "-D", "--parsable2", "--noheader", "-o", ",".join(SACCT_FIELDS),
                           "-j", ",".join(job_ids)]).stdout
        return {record.job_id: record for record in parse_sacct_jobs(text)}

    def jobs(self) -> list[dict[str, Any]]:
        """Every run of this host from the manifest, with its jobs' states."""
        runs = self.runs()
        ids = {run.id: self._run_job_ids(run) for run in runs}
        table = self.job_table(sorted({j for js in ids.values() for j in js}))
        rows = []
        for run in runs:
            records = [asdict(r) for r in table.values() if _of_jobs(r.job_id, ids[run.id])]
            rows.append({"run": run.id, "kind": run.kind, "folder": run.folder, "created": run.created,
                         "job_ids": ids[run.id], "states": sorted({r["state"] for r in records}), "jobs": records})
        return rows

    # -- logs ------------------------------------------------------------------------------------
    def log_files(self, ref: str) -> list[str]:
        run, job_ids = self.resolve(ref)
        if run is not None and run.kind == "germline" and ref == run.id:
            return [f"{run.folder}/{RUN_LOG}"]
        if run is not None and ref == run.id:
            listing = self.remote.run(f"ls -1 -- {shlex.quote(run.folder)}/slurm-*.out 2>/dev/null")
            files = listing.stdout.split()
            if not files:
                raise RemoteError(f"run {ref} has no job output in {run.folder} yet",
                                  "the job may still be pending; `hpctool remote HOST jobs`")
            return files
        record = parse_scontrol_records(self.slurm(["scontrol", "-o", "show", "job", job_ids[0]], check=False).stdout)
        path = record[0].get("StdOut") if record else None
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
        the final state. A dropped connection raises :class:`RemoteError`."""
        run, job_ids = self.resolve(ref)
        offsets: dict[str, int] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
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
            if done:
                return done
            if deadline is not None and time.monotonic() > deadline:
                return "RUNNING"
            time.sleep(interval)

    def _finished(self, run: RemoteRun | None, job_ids: list[str]) -> str:
        """'' while running; else the final state."""
        if run is not None and run.kind == "germline":
            progress = self.germline_progress(run)
            return "" if progress["running"] else ("COMPLETED" if progress["exit_code"] == 0 else "FAILED")
        result = self.slurm(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%T"], check=False)
        if result.ok and result.stdout.strip():
            return ""
        table = self.job_table([j.split("_")[0] for j in job_ids])
        states = sorted({r.state for r in table.values()})
        return ",".join(states) or "GONE"

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
            self.slurm(["scancel", *job_ids])
        if workflow:
            self.remote.run(f"for i in $(seq 100); do ps -o stat= --sid {int(run.pid)} | grep -qv '^Z' || break; "
                            f"sleep 0.2; done; kill -KILL -- -{int(run.pid)} 2>/dev/null; true", timeout=60)
        return job_ids

    # -- fetch -----------------------------------------------------------------------------------
    def fetch(self, run_id: str, dest: Path | None = None, *, bwlimit_kbps: int | None = None,
              exclude: Sequence[str] = (".snakemake/",), timeout: float = 3600) -> FetchResult:
        """The run folder back with rsync over the same SSH settings: only changed files; partial
        files wait in ``DEST/.rsync-partial`` and every file is put in place only when whole
        (``--delay-updates``), so an interrupted fetch resumes and never leaves a half file."""
        run = self.manifest.get(run_id)
        if run is None or not _same_host(run, self.host, self.remote.address):
            raise UsageError(f"{run_id} is not a run of {self.host}", f"`hpctool remote {self.host} jobs` lists them")
        if not self.remote.run(["test", "-d", run.folder]).ok:
            raise RemoteError(f"the run folder {run.folder} is missing on {self.host}",
                              "it was moved or deleted on the cluster; nothing was fetched")
        dest = (dest or Path(run.id)).resolve()
        dest.mkdir(parents=True, exist_ok=True)
        argv = ["rsync", "-a", "--partial", f"--partial-dir={PARTIAL_DIR}", "--delay-updates", "--stats",
                "-e", shlex.join(self.remote.ssh_argv())]
        argv += [f"--exclude={pattern}" for pattern in exclude]
        if bwlimit_kbps:
            argv.append(f"--bwlimit={bwlimit_kbps}")
        argv += [f"{self.host}:{run.folder}/", f"{dest}/"]
        self.progress(f"fetching {self.host}:{run.folder} -> {dest}")
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as error:
            raise RemoteError("rsync is not installed here", "install rsync (Debian: apt install rsync)") from error
        except subprocess.TimeoutExpired as error:
            raise RemoteError(f"fetch of {run_id} took over {timeout:.0f} s", "run it again: it resumes") from error
        if result.returncode != 0:
            detail = redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
            dropped = result.returncode in {12, 20, 30, 35, 255}
            raise RemoteError(
                f"fetch of {run_id} from {self.host} {'was interrupted' if dropped else 'failed'} "
                f"(rsync exit {result.returncode}): {detail}",
                f"run `hpctool remote {self.host} fetch {run_id}` again: finished files are in place, "
                f"partial ones wait in {dest / PARTIAL_DIR} and resume")
        stats = _rsync_stats(result.stdout)
        return FetchResult(dest, stats.get("Number of regular files transferred", 0),
                           stats.get("Total bytes received", 0), stats.get("Literal data", 0),
                           stats.get("Total file size", 0))

    # -- germline, detached ----------------------------------------------------------------------
    def run_germline(self, *, configfile: Path | None = None, inputs: Sequence[Path] = (), test: bool = False,
                     profile: str = "slurm", snakemake_args: Sequence[str] = ()) -> RemoteRun:
        """Sync the config, sample sheet and inputs into a new run folder and start the workflow
        there, detached from this connection (``setsid nohup``): it survives the laptop leaving."""
        if bool(configfile) == bool(test):
            raise UsageError("give either --configfile or --test", "e.g. --configfile my.yaml --input samples.tsv")
        files = [configfile, *inputs] if configfile else list(inputs)
        run_id = new_run_id("germline")
        root = self._prepare_root()
        folder = f"{root}/{run_id}"
        with self._new_folder(root, run_id) as staging:
            if files:
                self._upload(staging, files)
        argv = [self.hpctool, "run", "germline", folder, "--profile", profile]
        argv += ["--configfile", f"{folder}/{configfile.name}"] if configfile else ["--test"]
        argv += [f"--snakemake={arg}" for arg in snakemake_args]
        inner = f"{shlex.join(argv)}; echo $? > {shlex.quote(folder)}/hpctool-run.exit"
        # `cd || exit` apart from the `&`: $! must be the setsid'ed shell, the leader of the group
        # that `cancel` stops, not a subshell around it.
        start = (f"cd {shlex.quote(folder)} || exit 1; setsid nohup sh -c {shlex.quote(inner)} "
                 f"> {shlex.quote(folder)}/{RUN_LOG} 2>&1 < /dev/null & echo $!")
        result = self.remote.run(start, check=True)
        pid = int(result.stdout.split()[-1])
        run = RemoteRun(run_id, self.host, folder, "germline", [], _now(), pid=pid, script="germline",
                        address=self.remote.address)
        self.manifest.add(run)
        return run

    def _germline_log(self, run: RemoteRun) -> str:
        return self.remote.run(f"cat -- {shlex.quote(run.folder)}/.snakemake/log/*.snakemake.log 2>/dev/null").stdout

    def _germline_submissions(self, run: RemoteRun):
        return parse_submissions(self._germline_log(run))

    def germline_progress(self, run: RemoteRun) -> dict[str, Any]:
        """Whether the workflow still runs, Snakemake's step count, and the Slurm job of each rule."""
        # `ps`, not `kill -0`: a zombie nobody reaped yet has ended.
        state = self.remote.run(f"case \"$(ps -o stat= -p {int(run.pid or 0)} 2>/dev/null)\" in ''|Z*) ;; "
                                "*) echo running;; esac; "
                                f"cat -- {shlex.quote(run.folder)}/hpctool-run.exit 2>/dev/null; true").stdout.split()
        running = "running" in state
        exit_code = int(state[-1]) if state and state[-1].lstrip("-").isdigit() else None
        log = self._germline_log(run)
        steps = _STEPS.findall(log)
        done, total, percent = (int(steps[-1][0]), int(steps[-1][1]), float(steps[-1][2])) if steps else (0, 0, 0.0)
        submissions = parse_submissions(log)
        ids = [s.slurm_job_id for s in submissions]
        table = {job_id: (r.partition, r.state) for job_id, r in self.job_table(ids).items() if r.recorded}
        missing = [job_id for job_id in ids if job_id not in table]
        if missing:  # accounting lags slurmctld by a moment: ask the controller about fresh jobs
            queued = self.slurm(["squeue", "-h", "-j", ",".join(missing), "-o", "%i|%P|%T"], check=False)
            if queued.ok:
                table.update({r["id"]: (r["queue"], r["state"])
                              for r in parse_delimited(queued.stdout, ["id", "queue", "state"])})
        rule_jobs = [{"rule": "+".join(s.rules), "wildcards": s.wildcards, "job_id": s.slurm_job_id,
                      "queue": table.get(s.slurm_job_id, ("", "UNKNOWN"))[0],
                      "state": table.get(s.slurm_job_id, ("", "UNKNOWN"))[1]} for s in submissions]
        return {"run": run.id, "running": running, "exit_code": None if running else exit_code,
                "steps_done": done, "steps_total": total, "percent": percent, "rule_jobs": rule_jobs}

    # -- notebooks -------------------------------------------------------------------------------
    def start_notebook(self, *, queue: str | None = None, cpus: int = 1, mem: str | None = None,
                       time_min: int = 240, python: str | None = None, timeout: float = 120) -> Notebook:
        """JupyterLab as a Slurm job: submitted on the head node, its address and token read from
        the job's output (made private with umask 077), never printed."""
        python = python or (str(Path(self.hpctool).parent / "python") if "/" in self.hpctool else "python3")
        run_id = new_run_id("notebook")
        root = self._prepare_root()
        folder = f"{root}/{run_id}"
        script = (
            "#!/bin/bash\nset -euo pipefail\n"
            "# The node's own address: the head node forwards to it; never 0.0.0.0.\n"
            "ip=$(hostname -I 2>/dev/null | awk '{print $1}'); ip=${ip:-127.0.0.1}\n"
            f"port=$({shlex.quote(python)} -c 'import socket; s=socket.socket(); s.bind((\"\", 0)); "
            "print(s.getsockname()[1])')\n"
            'echo "hpctool-notebook ip=$ip port=$port"\n'
            'export JUPYTER_RUNTIME_DIR="$PWD/.jupyter-runtime"  # private to the run folder\n'
            "# Jupyter refuses root unless told; only the twin's jobs (and admins) run as root.\n"
            'as_root=(); if [ "$(id -u)" = 0 ]; then as_root=(--allow-root); fi\n'
            f"exec {shlex.quote(python)} -m jupyterlab --no-browser --ip=\"$ip\" --port=\"$port\" "
            "--ServerApp.port_retries=0 --ServerApp.root_dir=\"$PWD\" \"${as_root[@]}\"\n")
        with self._new_folder(root, run_id) as staging:
            self.remote.run(f"umask 077; cat > {shlex.quote(staging)}/notebook.sh", stdin=script.encode(), check=True)
        argv = ["sbatch", "--parsable", f"--chdir={folder}", f"--output={folder}/notebook-%j.out",
                "--job-name=hpctool-notebook", f"--cpus-per-task={cpus}", f"--time={time_min}"]
        argv += [f"--partition={queue}"] if queue else []
        argv += [f"--mem={mem}"] if mem else []
        result = self.remote.run(f"umask 077; {shlex.join([*argv, f'{folder}/notebook.sh'])}")
        if result.code == 127:
            raise SlurmError(f"Slurm is not installed on {self.host}", "is it the cluster's head node?")
        if not result.ok:
            raise SlurmError(f"sbatch on {self.host} refused the notebook job: {result.stderr.strip()}",
                             "check --queue/--cpus/--mem")
        job_id = parse_sbatch_parsable(result.stdout)
        run = RemoteRun(run_id, self.host, folder, "notebook", [job_id], _now(), script="notebook.sh",
                        address=self.remote.address)
        self.manifest.add(run)
        self.progress(f"notebook job {job_id} submitted; waiting for JupyterLab to start")
        log = f"{folder}/notebook-{job_id}.out"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.remote.run(f"cat -- {shlex.quote(log)} 2>/dev/null").stdout
            node, url = _NOTEBOOK_NODE.search(text), _NOTEBOOK_URL.search(text)
            if node and url:
                return Notebook(run, job_id, node.group("ip"), int(node.group("port")), url.group("token"))
            if self._finished(run, [job_id]):
                raise RemoteError(f"the notebook job {job_id} ended before JupyterLab started:\n"
                                  + redact("\n".join(text.strip().splitlines()[-10:])),
                                  f"see the job's last lines above; --python names the Python with "
                                  f"jupyterlab on the nodes (now {python})")
            time.sleep(1)
        self.slurm(["scancel", job_id], check=False)
        raise RemoteError(f"JupyterLab did not start within {timeout:.0f} s (job {job_id}, cancelled)",
                          "the queue may have no free node; try another --queue")

    def check_hub(self, hub_host: str, hub_port: int) -> None:
        """The JupyterHub path: the hub must answer on the head node (``/hub/api``)."""
        result = self.remote.run(
            f"curl -fsS --max-time 5 http://{shlex.quote(hub_host)}:{int(hub_port)}/hub/api "
            f"|| wget -qO- --timeout=5 http://{shlex.quote(hub_host)}:{int(hub_port)}/hub/api")
        if not result.ok or "version" not in result.stdout:
            raise RemoteError(f"no JupyterHub answers at {hub_host}:{hub_port} on {self.host}",
                              "use `--via job` for JupyterLab as a Slurm job, or give --hub-port")

    # -- admin: a command on every running node of a queue ---------------------------------------
    def running_nodes(self, queue: str) -> list[dict[str, str]]:
        result = self.slurm(["sinfo", "-h", "-N", "-p", queue, "-o", "%N|%T|%o"])
        rows = parse_delimited(result.stdout, ["node", "state", "addr"])
        if not rows:
            raise UsageError(f"queue {queue} has no nodes on {self.host}",
                             f"`hpctool remote {self.host} status` lists the queues")
        # idle~ (powered down), idle# (powering up), idle% (powering down): not running, skip them
        return [r for r in rows if node_in_service(r["state"]) and not r["state"].split("+")[0].endswith(("~", "#", "%"))]

    def nodes_exec(self, queue: str, command: str, *, via: str = "srun", timeout: float = 300,
                   parallel: int = 16) -> list[NodeResult]:
        """Run ``command`` on each running node of ``queue`` through the head node, in parallel.

        ``srun``: one step per node (``srun -w NODE``), Slurm's own path, which works anywhere the
        head node runs Slurm (and on idle nodes only: a busy node answers after ``--immediate``).
        ``ssh``: the head node's ssh to each node's address (ParallelCluster sets up cluster-internal
        keys), for nodes busy with jobs."""
        if via not in {"srun", "ssh"}:
            raise UsageError(f"--via {via}: use srun or ssh", "srun by default")
        if not command.strip():
            raise UsageError("no command to run", "put it after --, e.g. -- systemctl is-active slurmd")
        nodes = self.running_nodes(queue)
        if not nodes:
            return []

        def one(node: dict[str, str]) -> NodeResult:
            if via == "srun":
                argv = ["srun", f"--nodelist={node['node']}", "--nodes=1", "--ntasks=1", f"--partition={queue}",
                        "--immediate=30", "--job-name=hpctool-exec", "--quiet", "bash", "-c", command]
            else:
                argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", node["addr"], command]
            result = self.remote.run(argv, timeout=timeout)
            return NodeResult(node["node"], result.code, redact((result.stdout + result.stderr).strip()))

        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(nodes)))) as pool:
            return list(pool.map(one, nodes))


def _of_jobs(record_id: str, job_ids: Sequence[str]) -> bool:
    """A sacct id (``123``, an array task ``123_4``, ``123_[5-9]`` pending) belongs to these jobs."""
    return record_id in job_ids or record_id.split("_")[0] in job_ids


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rsync_stats(text: str) -> dict[str, int]:
    stats = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        number = value.strip().split(" ")[0].replace(",", "")
        if number.isdigit():
            stats[key.strip()] = int(number)
    return stats
