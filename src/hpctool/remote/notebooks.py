"""Notebooks from a laptop: JupyterLab as a Slurm job on the cluster (its address and token read
from the job's private output, never printed), or the head node's JupyterHub."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from hpctool.errors import RemoteError, SlurmCommandError, SlurmError
from hpctool.polling import poll_until
from hpctool.progress import Progress, quiet
from hpctool.remote.connection import Remote
from hpctool.remote.manifest import Manifest, Notebook, RemoteRun, new_run_id, now, redact
from hpctool.remote.state import jobs_state
from hpctool.remote.transfer import RunFolders
from hpctool.slurm.client import Slurm

_NOTEBOOK_NODE = re.compile(r"hpctool-notebook ip=(?P<ip>\S+) port=(?P<port>\d+)")
_NOTEBOOK_URL = re.compile(r"https?://(?P<host>[^/:\s]+):(?P<port>\d+)/(?:lab|tree)?\?token=(?P<token>[0-9a-f]+)")


def job_script(python: str) -> str:
    """The notebook job: JupyterLab on the node's own address and a free port, which it prints."""
    return (
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


def start(remote: Remote, slurm: Slurm, folders: RunFolders, manifest: Manifest, hpctool: str, *,
          queue: str | None = None, cpus: int = 1, mem: str | None = None, time_min: int = 240,
          python: str | None = None, timeout: float = 120, progress: Progress = quiet) -> Notebook:
    """JupyterLab as a Slurm job: submitted on the head node, its address and token read from
    the job's output (made private with umask 077), never printed."""
    host = remote.host
    python = python or (str(Path(hpctool).parent / "python") if "/" in hpctool else "python3")
    run_id = new_run_id("notebook")
    root = folders.prepare_root()
    folder = f"{root}/{run_id}"
    with folders.new_folder(root, run_id) as staging:
        remote.run(f"umask 077; cat > {shlex.quote(staging)}/notebook.sh", stdin=job_script(python).encode(),
                   check=True)
    options = [f"--chdir={folder}", f"--output={folder}/notebook-%j.out", "--job-name=hpctool-notebook",
               f"--cpus-per-task={cpus}", f"--time={time_min}"]
    options += [f"--partition={queue}"] if queue else []
    options += [f"--mem={mem}"] if mem else []
    try:
        job_id = slurm.sbatch(options, script_path=f"{folder}/notebook.sh", umask=0o077)
    except SlurmCommandError as error:
        raise SlurmError(f"sbatch on {host} refused the notebook job: {error.detail}",
                         "check --queue/--cpus/--mem") from None
    run = RemoteRun(run_id, host, folder, "notebook", [job_id], now(), script="notebook.sh", address=remote.address)
    manifest.add(run)
    progress(f"notebook job {job_id} submitted; waiting for JupyterLab to start")
    log = f"{folder}/notebook-{job_id}.out"

    def started() -> Notebook | None:
        text = remote.run(f"cat -- {shlex.quote(log)} 2>/dev/null").stdout
        node, url = _NOTEBOOK_NODE.search(text), _NOTEBOOK_URL.search(text)
        if node and url:
            return Notebook(run, job_id, node.group("ip"), int(node.group("port")), url.group("token"))
        if jobs_state(slurm, [job_id]):
            raise RemoteError(f"the notebook job {job_id} ended before JupyterLab started:\n"
                              + redact("\n".join(text.strip().splitlines()[-10:])),
                              f"see the job's last lines above; --python names the Python with "
                              f"jupyterlab on the nodes (now {python})")
        return None

    def gave_up() -> Exception:
        slurm.cancel([job_id], check=False)
        return RemoteError(f"JupyterLab did not start within {timeout:.0f} s (job {job_id}, cancelled)",
                           "the queue may have no free node; try another --queue")

    return poll_until(started, timeout=timeout, interval=1, on_timeout=gave_up)


def check_hub(remote: Remote, hub_host: str, hub_port: int) -> None:
    """The JupyterHub path: the hub must answer on the head node (``/hub/api``)."""
    result = remote.run(
        f"curl -fsS --max-time 5 http://{shlex.quote(hub_host)}:{int(hub_port)}/hub/api "
        f"|| wget -qO- --timeout=5 http://{shlex.quote(hub_host)}:{int(hub_port)}/hub/api")
    if not result.ok or "version" not in result.stdout:
        raise RemoteError(f"no JupyterHub answers at {hub_host}:{hub_port} on {remote.host}",
                          "use `--via job` for JupyterLab as a Slurm job, or give --hub-port")
