"""The laptop's side of ``hpctool remote``: the run manifest (``$HPCTOOL_HOME/remote-runs.json``,
written atomically, mode 0600) that maps each run id to its host, remote folder and Slurm job ids,
and the small records the remote features hand back."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpctool.atomic import write_atomic
from hpctool.errors import UsageError
from hpctool.home import home

MANIFEST_NAME = "remote-runs.json"
_TOKEN = re.compile(r"(token=)[^\s&]+")


def redact(text: str) -> str:
    """Remote text with any Jupyter token blanked: output never carries a secret."""
    return _TOKEN.sub(r"\1<hidden>", text)


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
        self.path = path or home() / MANIFEST_NAME

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
        return [run for run in self.load().values() if same_host(run, host, address)]


def same_host(run: RemoteRun, host: str, address: str) -> bool:
    return run.host == host or bool(address and run.address == address)


def new_run_id(kind: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{kind[:2]}{secrets.token_hex(2)}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- what users ask for, and what comes back ---------------------------------------------------
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
        path = home() / f"notebook-{self.run.id}.url"
        write_atomic(path, self.local_url(local_port, with_token=True) + "\n", mode=0o600)
        return path
