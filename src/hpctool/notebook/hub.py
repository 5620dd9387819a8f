"""JupyterHub on the local twin: the configuration a head node gets, run against the twin's Slurm.

The hub runs as root (PAM reads /etc/shadow), jobs run as the logged-in Unix user (``runuser``,
as ``sudo -u`` does on a cluster) on the twin's nodes, with JupyterLab from the project's venv.
Its state (database, cookie secret, config, log) stays in ``$HPCTOOL_HOME/hub``, readable by root
only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hpctool.atomic import write_atomic
from hpctool.cluster.queues import load_queues
from hpctool.errors import SetupError, TwinError
from hpctool.notebook.config import HubSettings, render_config, spawner_source, twin_settings
from hpctool.progress import Progress, quiet
from hpctool.shipped import data_root
from hpctool.twin import Twin, daemons
from hpctool.twin.core import port_base


def _unsearchable_parents(path: Path) -> list[Path]:
    """Folders on the way to ``path`` that other users cannot enter (no o+x)."""
    return [p for p in reversed(path.resolve().parents) if not os.stat(p).st_mode & stat.S_IXOTH]


def open_paths_for_jobs(paths: list[Path], progress: Progress = quiet) -> list[Path]:
    """Let notebook users reach what their jobs run: slurmd's spool (the job script) in the twin's
    folder and the venv's Python. Adds only the search bit (o+x) to folders that lack it (on this
    machine: /root, where HPCTOOL_HOME and pyenv live): entering by exact name, no listing; files
    keep their own modes (the twin's secrets are 0600, the hub's folder 0700)."""
    changed = []
    for path in paths:
        for folder in _unsearchable_parents(path):
            os.chmod(folder, os.stat(folder).st_mode | stat.S_IXOTH)
            changed.append(folder)
            progress(f"jupyterhub: {folder} is now searchable by other users (o+x), so jobs of notebook "
                     "users can run")
    return changed


class TwinHub:
    """The hub of one twin (``Twin.home``), on ports ``HPCTOOL_TWIN_PORT_BASE + 90..92``."""

    def __init__(self, twin: Twin | None = None, repo: Path | None = None) -> None:
        self.twin = twin or Twin()
        self.repo = repo or data_root()  # the checkout: its .venv and .npm run the hub and the jobs
        self.dir = self.twin.home / "hub"
        self.config_file = self.dir / "jupyterhub_config.py"
        self.pid_file = self.dir / "jupyterhub.pid"
        self.log_file = self.twin.log_dir / "jupyterhub.log"

    def settings(self, **overrides: Any) -> HubSettings:
        return twin_settings(self.repo, self.dir, job_python=str(self.repo / ".venv" / "bin" / "python"),
                             slurm_conf=str(self.twin.slurm_conf), port_base=port_base(),
                             slurm_bin=str(self.twin.client_bin), hub_ip=self.twin.network.gateway,
                             hosts_file=str(self.twin.etc / "hosts"), **overrides)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings().port}"

    def _pid(self) -> int | None:
        """The hub's own pid file (JupyterHub writes it); None when it is not running."""
        pid = daemons.read_pid(self.pid_file)
        return pid if daemons.pid_alive(pid) and daemons.runs_program(pid, "jupyterhub") else None

    def render(self, **overrides: Any) -> str:
        """The twin's jupyterhub_config.py: its queues, with the twin's node sizes as limits."""
        layout = self.twin.layout()
        if layout is None or not self.twin.is_up():
            raise TwinError("the twin is not running", "start it first: hpctool local up")
        return render_config(load_queues(layout.config), self.settings(**overrides),
                             node_limits=(layout.cpus_per_node, max(1, layout.memory_mb_per_node // 1024)))

    def up(self, progress: Progress = quiet, **overrides: Any) -> dict[str, Any]:
        """Start the hub (or keep the running one); return :meth:`status`."""
        if self._pid():
            progress(f"jupyterhub: already running ({self.url})")
            return self.status()
        proxy = Path(self.settings().proxy_command)
        if not os.access(proxy, os.X_OK):
            raise SetupError(f"configurable-http-proxy is not installed ({proxy})",
                             "run `make setup`, which installs it from npm into .npm/")
        text = self.render(**overrides)
        open_paths_for_jobs([self.twin.slurm_conf, self.repo / ".venv" / "bin" / "python",
                             self.repo / ".venv" / "bin" / "jupyterhub-singleuser"], progress)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # database and cookie secret
        write_atomic(self.config_file, text, mode=0o600)
        write_atomic(self.dir / "hpctool_spawner.py", spawner_source(), mode=0o644)
        settings = self.settings(**overrides)
        for port_name, port in (("hub", settings.port), ("proxy API", settings.proxy_api_port),
                                ("hub API", settings.hub_port)):
            if daemons.port_in_use(port):
                raise TwinError(f"port {port} ({port_name}) is in use",
                                "stop what holds it (`hpctool local hub down`) or set HPCTOOL_TWIN_PORT_BASE")
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.twin.slurm_conf)
        env["PATH"] = f"{self.repo / '.venv' / 'bin'}:{daemons.SBIN_PATH}"
        progress(f"jupyterhub: starting on {self.url} (log {self.log_file})")
        process = daemons.spawn([str(self.repo / ".venv" / "bin" / "jupyterhub"), "-f", str(self.config_file)],
                                self.log_file, env=env)
        started = time.monotonic()
        daemons.wait_until(self._answers, name="jupyterhub", log_file=self.log_file, timeout=60,
                           alive=lambda: process.poll() is None)
        progress(f"jupyterhub: up in {time.monotonic() - started:.1f} s")
        return self.status()

    def _answers(self) -> bool:
        try:
            # B310: the URL is the hub's own http://address:port, built above
            with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as response:  # nosec B310
                return response.status == 200 and "version" in json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def down(self) -> bool:
        """Stop the hub (it stops its servers, which cancels their jobs, and its proxy)."""
        stopped = daemons.stop_pid(daemons.read_pid(self.pid_file), name="jupyterhub", timeout=40)
        proxy_pid = daemons.read_pid(self.dir / "jupyterhub-proxy.pid")
        daemons.stop_pid(proxy_pid, name="configurable-http-proxy", timeout=5)
        return stopped

    def status(self) -> dict[str, Any]:
        pid = self._pid()
        settings = self.settings()
        return {
            "running": pid is not None and self._answers(),
            "pid": pid,
            "url": self.url,
            "log": str(self.log_file),
            "config": str(self.config_file),
            "login": f"a Unix account in group {', '.join(settings.allowed_groups)} (PAM: its password)",
            "jupyterhub": _version("jupyterhub"),
            "batchspawner": _version("batchspawner"),
        }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"



def ensure_user(twin: Twin, name: str, password: str, groups: tuple[str, ...] = ()) -> None:
    """A real Unix user with a password (for PAM) and the twin's Slurm association; idempotent.
    For tests and the demo: the twin's notebook users are this machine's accounts."""
    for group in groups:
        if not _getent("group", group):
            daemons.run_quiet(["groupadd", group], timeout=30)
    if not _getent("passwd", name):
        daemons.run_quiet(["useradd", "--create-home", "--shell", "/bin/bash", name], timeout=30)
    if groups:
        daemons.run_quiet(["usermod", "--append", "--groups", ",".join(groups), name], timeout=30)
    # chpasswd reads NAME:PASSWORD on stdin: the password never appears in a process list.
    daemons.run_quiet(["chpasswd"], input_text=f"{name}:{password}\n", timeout=30)
    twin.sync_users()  # the nodes know the new user (its uid, groups and home) at once
    from hpctool.twin.accounting import ACCOUNT

    if ACCOUNT not in twin.slurm.user_accounts(name):
        twin.slurm.add_user(name, ACCOUNT)


def _getent(database: str, key: str) -> bool:
    return subprocess.run(["getent", database, key], capture_output=True, check=False).returncode == 0
