"""JupyterHub on the local twin: the configuration a head node gets, run against the twin's Slurm.

The hub runs as root (PAM reads /etc/shadow), jobs run as the logged-in Unix user (``runuser``,
as ``sudo -u`` does on a cluster) on the twin's nodes. Its state (database, cookie secret, config,
log) stays in ``$HPCTOOL_HOME/hub``, readable by root only. What a notebook user's processes must
read lives in a public folder (``/var/lib/hpctool/twin-hub-<port base>``): a copy of the twin's
slurm.conf, and a Python for the job when the project's venv interpreter is not reachable by other
users (pyenv under /root): the system Python of the same minor version with the venv's
site-packages added (``jobenv``).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from hpctool import daemons
from hpctool.cluster import REPO_ROOT, load_queues
from hpctool.errors import SetupError, TwinError
from hpctool.notebook.config import HubSettings, render_config, spawner_source, twin_settings
from hpctool.twin import Twin, port_base, write_atomic

PUBLIC_ROOT = Path("/var/lib/hpctool")


def _world_reachable(path: Path) -> bool:
    """True when any user can reach ``path`` (every parent searchable, the file readable)."""
    path = path.resolve()
    for parent in path.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH) and (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def _venv_site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SetupError(f"{venv} has no site-packages", "run `make setup` to create the project's venv")
    return found[0]


def job_python(venv: Path, public: Path) -> str:
    """The Python a notebook job runs: the venv's own when other users can run it, else a small
    overlay venv on the system Python of the same minor version that adds the venv's packages."""
    if not _world_reachable(venv):
        raise SetupError(f"{venv} is not readable by other users, so a notebook job cannot run JupyterLab",
                         "put the checkout where other users can read it (e.g. /srv or /opt), "
                         "or `chmod o+rx` its parent folders")
    python = venv / "bin" / "python"
    if _world_reachable(python):
        return str(python)
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = Path(f"/usr/bin/python{minor}")
    if not system.exists() or not _world_reachable(system):
        raise SetupError(f"the venv's Python ({python.resolve()}) is not reachable by other users and "
                         f"there is no /usr/bin/python{minor}",
                         f"install Debian's python{minor} or build the venv on a Python other users can run")
    overlay = public / "jobenv"
    site = overlay / "lib" / f"python{minor}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    write_atomic(overlay / "pyvenv.cfg",
                 f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {minor}\n")
    # `import site` lines of a .pth run at start-up: addsitedir also reads the venv's own .pth files.
    write_atomic(site / "_hpctool_venv.pth", f"import site; site.addsitedir({str(_venv_site_packages(venv))!r})\n")
    (overlay / "bin").mkdir(exist_ok=True)
    for link, target in ((overlay / "bin" / "python", system), (overlay / "share", venv / "share")):
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return str(overlay / "bin" / "python")


class TwinHub:
    """The hub of one twin (``Twin.home``), on ports ``HPCTOOL_TWIN_PORT_BASE + 90..92``."""

    def __init__(self, twin: Twin | None = None, repo: Path = REPO_ROOT) -> None:
        self.twin = twin or Twin()
        self.repo = repo
        self.dir = self.twin.home / "hub"
        self.public = PUBLIC_ROOT / f"twin-hub-{port_base()}"
        self.config_file = self.dir / "jupyterhub_config.py"
        self.pid_file = self.dir / "jupyterhub.pid"
        self.log_file = self.twin.log_dir / "jupyterhub.log"

    def settings(self, **overrides: Any) -> HubSettings:
        return twin_settings(self.repo, self.dir, job_python="", slurm_conf=str(self.public / "slurm.conf"),
                             port_base=port_base(), **overrides)

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
        queues = load_queues(layout.config)
        python = job_python(self.repo / ".venv", self.public)
        settings = replace(self.settings(**overrides), singleuser_python=python)
        return render_config(queues, settings,
                             node_limits=(layout.cpus_per_node, max(1, layout.memory_mb_per_node // 1024)))

    def up(self, progress=lambda _m: None, **overrides: Any) -> dict[str, Any]:
        """Start the hub (or keep the running one); return :meth:`status`."""
        if self._pid():
            progress(f"jupyterhub: already running ({self.url})")
            return self.status()
        proxy = Path(self.settings().proxy_command)
        if not os.access(proxy, os.X_OK):
            raise SetupError(f"configurable-http-proxy is not installed ({proxy})",
                             "run `make setup`, which installs it from npm into .npm/")
        self.public.mkdir(parents=True, exist_ok=True)
        os.chmod(self.public, 0o755)
        # Notebook users run sbatch themselves; the twin's slurm.conf sits in root's home.
        write_atomic(self.public / "slurm.conf", self.twin.slurm_conf.read_text(), mode=0o644)
        text = self.render(**overrides)
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
        env["SLURM_CONF"] = str(self.public / "slurm.conf")
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
            with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as response:
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

