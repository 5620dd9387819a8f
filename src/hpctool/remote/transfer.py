"""Run folders on the head node and the files in and out of them.

A run folder is filled under a hidden ``.ID.partial`` name and renamed into place, so a dropped
upload leaves no half run. Uploads of a few files go over SFTP on the open connection; results come
back with rsync over the same SSH settings (only changed files, resumable, put in place only when
complete).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hpctool.errors import RemoteError, UsageError
from hpctool.progress import Progress, quiet
from hpctool.remote.connection import Remote, quote
from hpctool.remote.manifest import FetchResult, RemoteRun, redact
from hpctool.slurm.runner import not_installed

DEFAULT_ROOT = "~/hpctool-runs"
PARTIAL_DIR = ".rsync-partial"


class RunFolders:
    """The run folders under ``root`` on ``remote``'s host."""

    def __init__(self, remote: Remote, root: str = DEFAULT_ROOT, progress: Progress = quiet) -> None:
        self.remote, self.root = remote, root
        self.progress = progress

    def prepare_root(self, need_slurm: bool = True) -> str:
        """The absolute run root (made if missing); stale partial uploads older than a day go."""
        check = "command -v sbatch >/dev/null || exit 127; " if need_slurm else ""
        root = quote(self.root)
        result = self.remote.run(
            f"{check}mkdir -p -- {root} && cd -- {root} && "
            "find . -maxdepth 1 -name '.*.partial' -mmin +1440 -exec rm -rf {} + ; pwd -P")
        if result.code == 127:
            raise not_installed("sbatch", self.remote.host)
        if not result.ok:
            raise RemoteError(f"cannot use the run root {self.root} on {self.remote.host}: {result.stderr.strip()}",
                              "give a writable folder on shared storage with --remote-root")
        return result.stdout.strip().splitlines()[-1]

    @contextmanager
    def new_folder(self, root: str, run_id: str) -> Iterator[str]:
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

    def upload(self, staging: str, files: Sequence[Path]) -> None:
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

    def remove(self, folder: str) -> None:
        self.remote.run(["rm", "-rf", "--", folder])


def fetch(remote: Remote, run: RemoteRun, dest: Path | None = None, *, bwlimit_kbps: int | None = None,
          exclude: Sequence[str] = (".snakemake/",), timeout: float = 3600,
          progress: Progress = quiet) -> FetchResult:
    """The run folder back with rsync over the same SSH settings: only changed files; partial
    files wait in ``DEST/.rsync-partial`` and every file is put in place only when whole
    (``--delay-updates``), so an interrupted fetch resumes and never leaves a half file."""
    host = remote.host
    if not remote.run(["test", "-d", run.folder]).ok:
        raise RemoteError(f"the run folder {run.folder} is missing on {host}",
                          "it was moved or deleted on the cluster; nothing was fetched")
    dest = (dest or Path(run.id)).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    argv = ["rsync", "-a", "--partial", f"--partial-dir={PARTIAL_DIR}", "--delay-updates", "--stats",
            "-e", shlex.join(remote.ssh_argv())]
    argv += [f"--exclude={pattern}" for pattern in exclude]
    if bwlimit_kbps:
        argv.append(f"--bwlimit={bwlimit_kbps}")
    argv += [f"{host}:{run.folder}/", f"{dest}/"]
    progress(f"fetching {host}:{run.folder} -> {dest}")
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as error:
        raise RemoteError("rsync is not installed here", "install rsync (Debian: apt install rsync)") from error
    except subprocess.TimeoutExpired as error:
        raise RemoteError(f"fetch of {run.id} took over {timeout:.0f} s", "run it again: it resumes") from error
    if result.returncode != 0:
        detail = redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
        dropped = result.returncode in {12, 20, 30, 35, 255}
        raise RemoteError(
            f"fetch of {run.id} from {host} {'was interrupted' if dropped else 'failed'} "
            f"(rsync exit {result.returncode}): {detail}",
            f"run `hpctool remote {host} fetch {run.id}` again: finished files are in place, "
            f"partial ones wait in {dest / PARTIAL_DIR} and resume")
    stats = rsync_stats(result.stdout)
    return FetchResult(dest, stats.get("Number of regular files transferred", 0),
                       stats.get("Total bytes received", 0), stats.get("Literal data", 0),
                       stats.get("Total file size", 0))


def rsync_stats(text: str) -> dict[str, int]:
    stats = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        number = value.strip().split(" ")[0].replace(",", "")
        if number.isdigit():
            stats[key.strip()] = int(number)
    return stats
