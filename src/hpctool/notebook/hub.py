"""JupyterHub on the local twin: the configuration a head node gets, run against the twin's Slurm.

The hub runs as root (PAM reads /etc/shadow), jobs run as the logged-in Unix user (``runuser``,
as ``sudo -u`` does on a cluster) on the twin's nodes, with JupyterLab from the project's venv.
Its state (database, cookie secret, config, log) stays in ``$HPCTOOL_HOME/hub``, readable by root
only.

Where it runs follows the users: on a twin whose config has a DirectoryService it runs on the head
node host, as on a cluster, where PAM and ``runuser`` find directory users through SSSD; it
listens on the head node's loopback and this machine reaches it through an SSH port forward to the
head node's sshd, as a user reaches a cluster's hub. Without one its users are this machine's
accounts, so it runs on the machine, on loopback.
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
from hpctool.twin.head import HEAD


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

    @property
    def on_head_node(self) -> bool:
        """True when the twin has a directory: the hub runs on the head node host (see above)."""
        layout = self.twin.layout()
        return layout is not None and layout.directory is not None

    def settings(self, **overrides: Any) -> HubSettings:
        # The hub API where the nodes' JupyterLab reaches it: the host the hub runs on, on the bridge.
        hub_ip = self.twin.network.address(0) if self.on_head_node else self.twin.network.gateway
        return twin_settings(self.repo, self.dir, job_python=str(self.repo / ".venv" / "bin" / "python"),
                             slurm_conf=str(self.twin.slurm_conf), port_base=port_base(),
                             slurm_bin=str(self.twin.client_bin), hub_ip=hub_ip,
                             hosts_file=str(self.twin.etc / "hosts"), **overrides)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings().port}"

    @property
    def forward_pid_file(self) -> Path:
        return self.dir / "ssh-forward.pid"

    def _forward(self, port: int) -> None:
        """``ssh -N -L`` from this machine's loopback to the head node's, through the twin's sshd
        (its host key checked), as root with the twin's key: the hub's page at :attr:`url`."""
        from hpctool.twin import access

        pid = daemons.read_pid(self.forward_pid_file)
        if daemons.pid_alive(pid) and daemons.runs_program(pid, "ssh") and self._answers():
            return
        key = access.user_key(self.twin.etc, "root", lambda argv: self.twin.hosts.run(HEAD, argv))
        argv = access.ssh_argv(self.twin.etc, self.twin.network.address(0), "root", key, [])
        argv[1:1] = ["-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
                     "-L", f"127.0.0.1:{port}:127.0.0.1:{port}"]
        process = daemons.spawn(argv, self.twin.log_dir / "jupyterhub-forward.log")
        write_atomic(self.forward_pid_file, f"{process.pid}\n")
        daemons.wait_until(self._answers, name="the SSH forward to the hub", timeout=20,
                           log_file=self.twin.log_dir / "jupyterhub-forward.log",
                           alive=lambda: process.poll() is None)

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
        write_atomic(self.dir / "allowed.json", json.dumps({"groups": list(settings.allowed_groups),
                                                            "users": list(settings.allowed_users)}), mode=0o600)
        on_head = self.on_head_node
        # On the head node only the forward's port is this machine's: the host has ports of its own.
        ports = [("hub", settings.port)] + ([] if on_head else [("proxy API", settings.proxy_api_port),
                                                                  ("hub API", settings.hub_port)])
        for port_name, port in ports:
            if daemons.port_in_use(port):
                raise TwinError(f"port {port} ({port_name}) is in use",
                                "stop what holds it (`hpctool local hub down`) or set HPCTOOL_TWIN_PORT_BASE")
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.twin.slurm_conf)
        env["PATH"] = f"{self.repo / '.venv' / 'bin'}:{daemons.SBIN_PATH}"
        argv = [str(self.repo / ".venv" / "bin" / "jupyterhub"), "-f", str(self.config_file)]
        if on_head:
            argv = self.twin.hosts.exec_argv(HEAD, argv, cwd=str(self.dir))
        where = "on the head node (reached through an SSH forward)" if on_head else "on this machine"
        progress(f"jupyterhub: starting {where} at {self.url} (log {self.log_file})")
        process = daemons.spawn(argv, self.log_file, env=env)
        started = time.monotonic()
        daemons.wait_until(self._head_answers if on_head else self._answers, name="jupyterhub",
                           log_file=self.log_file, timeout=60, alive=lambda: process.poll() is None)
        if on_head:
            self._forward(settings.port)
        progress(f"jupyterhub: up in {time.monotonic() - started:.1f} s")
        return self.status()

    def _head_answers(self) -> bool:
        """The hub answers on the head node's loopback (asked there, with the image's curl)."""
        probe = self.twin.hosts.exec_argv(HEAD, ["curl", "-fsS", "--max-time", "2",
                                                 f"http://127.0.0.1:{self.settings().port}/hub/api/"])
        result = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
        return result.returncode == 0 and '"version"' in result.stdout

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
        daemons.stop_pid(daemons.read_pid(self.forward_pid_file), name="ssh forward", program="ssh", timeout=5)
        self.forward_pid_file.unlink(missing_ok=True)
        return stopped

    def allowed_groups(self) -> list[str]:
        """The groups the running (or last) hub lets in, as ``up`` was given them."""
        try:
            return list(json.loads((self.dir / "allowed.json").read_text())["groups"])
        except (OSError, ValueError, KeyError):
            return list(self.settings().allowed_groups)

    def status(self) -> dict[str, Any]:
        pid = self._pid()
        groups = ", ".join(self.allowed_groups())
        return {
            "running": pid is not None and self._answers(),
            "pid": pid,
            "url": self.url,
            "log": str(self.log_file),
            "config": str(self.config_file),
            "login": (f"a directory user in group {groups} (PAM through SSSD on the head node: the password "
                      "`hpctool local users add` wrote)" if self.on_head_node else
                      f"a Unix account in group {groups} (PAM: its password)"),
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
