"""The JupyterHub configuration of a cluster: pure renderers from the queue model and settings.

:func:`render_config` gives ``jupyterhub_config.py`` (a batchspawner ``SlurmSpawner`` subclass with
the cluster's queues as its form, absolute Slurm paths, timeouts for the target, the idle culler
as a hub service, PAM with an allow rule), :func:`render_sudoers` the sudo rule that lets the hub's
service user run sbatch/squeue/scancel as notebook users and nothing else. The same renderer
serves a head node (:func:`cluster_settings`) and the local twin (:func:`twin_settings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import jinja2

from hpctool.cluster.queues import Queue
from hpctool.errors import ConfigError

# vCPUs and memory (GiB) of the instance types hpctool's configs use. Written here because the
# EC2 API (DescribeInstanceTypes) needs an account and network; extend it for other types.
INSTANCE_SPECS: dict[str, tuple[int, int]] = {
    "c6a.4xlarge": (16, 32), "c6a.8xlarge": (32, 64), "c6i.4xlarge": (16, 32), "c6i.8xlarge": (32, 64),
    "c7a.8xlarge": (32, 64), "c7i.large": (2, 4), "c7i.xlarge": (4, 8), "c7i.2xlarge": (8, 16),
    "c7i.4xlarge": (16, 32), "c7i.8xlarge": (32, 64), "c7i.16xlarge": (64, 128),
    "m7i.xlarge": (4, 16), "m7i.2xlarge": (8, 32), "m7i.4xlarge": (16, 64), "m7i.8xlarge": (32, 128),
    "m6i.4xlarge": (16, 64), "m6a.4xlarge": (16, 64),
    "r7i.2xlarge": (8, 64), "r7i.4xlarge": (16, 128), "r7i.8xlarge": (32, 256),
    "i4i.4xlarge": (16, 128), "i4i.8xlarge": (32, 256), "f2.6xlarge": (24, 256), "f2.12xlarge": (48, 512),
}
# Memory a notebook may ask for: what Slurm schedules on a ParallelCluster node (about 95 %).
SCHEDULABLE_MEMORY = 0.95

JOBS_GROUP = "hpctool-notebook"
SERVICE_USER = "jupyterhub"
TWIN_SERVICE_USER = "root"
CHP_VERSION = "5.3.0"  # configurable-http-proxy from npm, installed by scripts/setup.sh and head.d
# The releases the tests prove together (JupyterHub's major is pinned in pyproject.toml too).
HUB_REQUIREMENTS = ("jupyterhub==6.1.1", "batchspawner==1.3.0", "jupyterhub-idle-culler==2.0.0", "pamela==1.2.0")

BATCH_SCRIPT = """#!/bin/bash
#SBATCH --job-name=jupyterlab
#SBATCH --output={{workdir}}/.jupyterhub-slurm-%j.log
#SBATCH --chdir={{workdir}}
#SBATCH --export={{keepvars}}
#SBATCH --partition={{partition}}
#SBATCH --cpus-per-task={{nprocs}}
#SBATCH --mem={{memory}}
#SBATCH --time={{runtime}}
#SBATCH --no-requeue
{% if account %}#SBATCH --account={{account}}
{% endif %}set -euo pipefail
echo "hpctool notebook: job ${SLURM_JOB_ID} on ${SLURMD_NODENAME} in ${SLURM_JOB_PARTITION}"
{{prologue}}
exec {{cmd}}
"""


@dataclass(frozen=True)
class QueueChoice:
    """One queue as the form shows it."""

    name: str
    spot: bool
    instance_type: str
    cpus: int
    memory_gb: int

    def to_dict(self) -> dict:
        return {"name": self.name, "spot": self.spot, "instance_type": self.instance_type,
                "cpus": self.cpus, "memory_gb": self.memory_gb}


@dataclass(frozen=True)
class HubSettings:
    """Everything about a hub that is not the queues. Paths are absolute: the hub runs sbatch
    through sudo, whose ``secure_path`` lacks ``/opt/slurm/bin`` on ParallelCluster."""

    target: str                      # "cluster" or "twin": comments and defaults only
    config_dir: str                  # where jupyterhub_config.py and hpctool_spawner.py live
    state_dir: str                   # database, cookie secret, pid files (root or service user only)
    slurm_bin: str                   # folder of sbatch, squeue, scancel, sinfo
    proxy_command: str               # configurable-http-proxy
    exec_prefix: str                 # how the hub runs Slurm's commands as the user
    singleuser_python: str           # the job's Python, or "" to use the module's PATH (cluster)
    singleuser_bin: str              # folder of jupyterhub-singleuser in the job ("" = PATH)
    prologue: str                    # shell lines before JupyterLab starts in the job
    bind_ip: str = "127.0.0.1"       # the public proxy: loopback; reach it with an SSH forward
    port: int = 8000
    proxy_api_port: int = 8001
    hub_port: int = 8081
    hub_bind_ip: str = "127.0.0.1"   # the hub API; jobs on compute nodes must reach it
    hub_connect_ip: str = ""         # "" = the bind ip; "auto" = this host's address at start-up
    allowed_groups: tuple[str, ...] = (JOBS_GROUP,)
    allowed_users: tuple[str, ...] = ()
    admin_users: tuple[str, ...] = ()
    service_user: str = SERVICE_USER
    workdir: str = "{homedir}"       # the job's folder on shared storage ({username}, {homedir})
    account: str = ""                # Slurm account for the jobs ("" = the user's default)
    start_timeout: int = 900         # dynamic nodes take minutes to boot on a cluster
    http_timeout: int = 300
    poll_interval: int = 30
    startup_poll_interval: float = 2.0
    fatal_reason_grace: float = 60.0
    job_node_address: str = ""       # "" = the job's node name (resolved as the hub's host does)
    job_hosts_file: str = ""         # resolve the job's node name here (the twin's hosts file)
    # B104: nodes are in private subnets; the hub must reach the server on them
    job_bind_ip: str = "0.0.0.0"     # where JupyterLab listens on its node  # nosec B104
    cull_timeout: int = 3600         # idle culler: seconds without activity
    cull_every: int = 300
    max_hours: int = 24
    default_hours: int = 4
    environment: tuple[tuple[str, str], ...] = ()
    extra_lines: tuple[str, ...] = field(default=())  # lines appended as they are (tests, sites)


def cluster_settings(**overrides) -> HubSettings:
    """A head node of a ParallelCluster cluster (what bootstrap/head.d installs)."""
    base = HubSettings(
        target="cluster",
        config_dir="/opt/hpctool/jupyterhub/etc",
        state_dir="/var/lib/hpctool/jupyterhub",
        slurm_bin="/opt/slurm/bin",
        proxy_command="/opt/hpctool/jupyterhub/npm/bin/configurable-http-proxy",
        exec_prefix="/usr/bin/sudo -E -u {username}",
        singleuser_python="",
        singleuser_bin="",
        prologue=". /usr/share/lmod/lmod/init/bash && module load jupyterlab",
        # B104: the head node's security group limits who reaches the hub (ssh -L in practice)
        hub_bind_ip="0.0.0.0",  # nosec B104
        hub_connect_ip="auto",
    )
    return replace(base, **overrides)


def twin_settings(repo: Path, hub_dir: Path, job_python: str, slurm_conf: str, port_base: int,
                  slurm_bin: str = "/usr/bin", hub_ip: str = "127.0.0.1", hosts_file: str = "",
                  **overrides) -> HubSettings:
    """The local twin: the hub as root (PAM reads /etc/shadow), jobs as the user through runuser,
    JupyterLab from the project's venv, timeouts of nodes that start in seconds."""
    base = HubSettings(
        target="twin",
        config_dir=str(hub_dir),
        state_dir=str(hub_dir),
        slurm_bin=slurm_bin,
        proxy_command=str(repo / ".npm" / "bin" / "configurable-http-proxy"),
        exec_prefix="/usr/sbin/runuser -u {username} --",
        singleuser_python=job_python,
        singleuser_bin=str(repo / ".venv" / "bin"),
        prologue="",
        port=port_base + 90, proxy_api_port=port_base + 91, hub_port=port_base + 92,
        service_user=TWIN_SERVICE_USER,
        start_timeout=120, http_timeout=60, poll_interval=2, startup_poll_interval=0.5,
        # The hub API on the twin's bridge, where the nodes' JupyterLab reaches it; the job's node
        # name resolved through the twin's hosts file, as a cluster's DNS resolves it.
        # B104: the twin's nodes are on its private bridge
        hub_bind_ip=hub_ip, fatal_reason_grace=0.0, job_hosts_file=hosts_file, job_bind_ip="0.0.0.0",  # nosec B104
        environment=(("SLURM_CONF", slurm_conf),),
    )
    return replace(base, **overrides)


def queue_choices(queues: list[Queue], node_limits: tuple[int, int] | None = None) -> list[QueueChoice]:
    """The form's queues. A queue's limits are its smallest instance type's vCPUs and schedulable
    memory (a request must fit any node of the queue), or ``node_limits`` (cpus, memory GB) when the
    nodes are not the instance types (the twin's virtual nodes)."""
    choices = []
    for queue in queues:
        types = [t for r in queue.compute_resources for t in r.instance_types]
        unknown = [t for t in types if t not in INSTANCE_SPECS]
        if unknown and node_limits is None:
            raise ConfigError(
                f"queue {queue.name}: instance type {unknown[0]} has no known vCPU/memory size",
                "add it to hpctool.notebook.config.INSTANCE_SPECS (vCPUs, GiB)",
            )
        if node_limits is not None:
            cpus, memory = node_limits
        else:
            cpus = min(INSTANCE_SPECS[t][0] for t in types)
            memory = min(int(INSTANCE_SPECS[t][1] * SCHEDULABLE_MEMORY) for t in types)
        label = types[0] if len(types) == 1 else f"{types[0]} (+{len(types) - 1} more)"
        choices.append(QueueChoice(queue.name, queue.is_spot, label, cpus, memory))
    return choices


def check_settings(settings: HubSettings) -> None:
    """The rules a hub must keep; ConfigError otherwise (the generated file checks them again)."""
    if not settings.allowed_groups and not settings.allowed_users:
        raise ConfigError("the hub has no allow rule: nobody, or with allow_all everybody, could log in",
                          f"allow a Unix group (default {JOBS_GROUP}) or named users")
    for name in (*settings.allowed_groups, *settings.allowed_users, *settings.admin_users):
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", name):
            raise ConfigError(f"{name!r} is not a Unix user or group name", "use lower-case POSIX names")
    for label, path in (("slurm_bin", settings.slurm_bin), ("proxy_command", settings.proxy_command),
                        ("config_dir", settings.config_dir), ("state_dir", settings.state_dir)):
        if not path.startswith("/"):
            raise ConfigError(f"{label} {path!r} is not an absolute path",
                              "sudo's secure_path and the job's PATH differ from yours: give absolute paths")
    if settings.bind_ip not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(f"the hub would listen on {settings.bind_ip}, not on loopback",
                          "keep bind_ip 127.0.0.1 and reach it through an SSH port forward or a TLS proxy")
    if settings.cull_timeout < 1 or settings.cull_every < 1:
        raise ConfigError("the idle culler's timeout and interval must be positive",
                          "the default culls after 3600 s without activity")
    if not 1 <= settings.default_hours <= settings.max_hours:
        raise ConfigError(f"default_hours {settings.default_hours} is not within 1..{settings.max_hours}",
                          "lower default_hours or raise max_hours")


def _triple_quoted(text: str) -> str:
    if '"""' in text or "\\" in text:
        return repr(text)
    return '"""' + text + '"""'


def _template() -> jinja2.Template:
    text = resources.files("hpctool.notebook").joinpath("templates/jupyterhub_config.py.j2").read_text()
    # B701: renders Python and sudoers files, not HTML
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,  # nosec B701
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["py"] = repr
    env.filters["pylong"] = lambda items: "[\n" + "".join(f"    {item!r},\n" for item in items) + "]"
    env.filters["pyblock"] = _triple_quoted
    return env.from_string(text)


def render_config(queues: list[Queue], settings: HubSettings,
                  node_limits: tuple[int, int] | None = None) -> str:
    """``jupyterhub_config.py`` for these queues and settings (pure: same input, same text)."""
    check_settings(settings)
    choices = [c.to_dict() for c in queue_choices(queues, node_limits)]
    bin_ = settings.slurm_bin.rstrip("/")
    if settings.singleuser_python:
        singleuser = f"{settings.singleuser_python} -m batchspawner.singleuser"
        cmd = [f"{settings.singleuser_bin}/jupyterhub-singleuser"]
    else:  # the Lmod module puts both on the job's PATH
        singleuser, cmd = "batchspawner-singleuser", ["jupyterhub-singleuser"]
    return _template().render(
        s=settings,
        queues=choices,
        sbatch=f"{bin_}/sbatch --parsable",
        squeue=f"{bin_}/squeue -h -j {{job_id}} --states=all -o '%T|%B|%r'",
        scancel=f"{bin_}/scancel {{job_id}}",
        sinfo=f"{bin_}/sinfo",
        singleuser=singleuser,
        cmd=cmd,
        batch_script=BATCH_SCRIPT,
        environment=dict(settings.environment),
    )


def render_sudoers(settings: HubSettings) -> str:
    """The sudoers rule: the hub's service user runs sbatch, squeue and scancel (with the job's
    environment, SETENV) as members of the allowed groups or users, and nothing else."""
    check_settings(settings)
    bin_ = settings.slurm_bin.rstrip("/")
    runas = ", ".join([f"%{g}" for g in settings.allowed_groups] + list(settings.allowed_users))
    return (
        "# Generated by hpctool (hpctool.notebook.config.render_sudoers); install as\n"
        "# /etc/sudoers.d/hpctool-jupyterhub, mode 0440. JupyterHub's batchspawner submits, queries\n"
        "# and cancels notebook jobs as the user; the hub's service user may do that and nothing else.\n"
        f"Cmnd_Alias HPCTOOL_NOTEBOOK_SLURM = {bin_}/sbatch, {bin_}/squeue, {bin_}/scancel\n"
        f"Defaults:{settings.service_user} !requiretty\n"
        f"{settings.service_user} ALL=({runas}) NOPASSWD:SETENV: HPCTOOL_NOTEBOOK_SLURM\n"
    )


def spawner_source() -> str:
    """The spawner module's text, installed beside jupyterhub_config.py as ``hpctool_spawner.py``."""
    return resources.files("hpctool.notebook").joinpath("spawner.py").read_text()


def head_node_files(queues: list[Queue], settings: HubSettings) -> dict[str, str]:
    """What bootstrap/head.d/50-jupyterhub.sh installs on a head node, by file name (pure)."""
    return {
        "jupyterhub_config.py": render_config(queues, settings),
        "hpctool_spawner.py": spawner_source(),
        "sudoers": render_sudoers(settings),
        "requirements.txt": "".join(f"{r}\n" for r in HUB_REQUIREMENTS),
        "chp-version": f"{CHP_VERSION}\n",
        "allowed-groups": "".join(f"{g}\n" for g in settings.allowed_groups),
    }


def write_head_node_files(out_dir: Path, config: str | None = None, allowed_groups: tuple[str, ...] = (),
                          cull_timeout: int = 3600, workdir: str = "{homedir}") -> list[Path]:
    """Render the head node's files for the cluster config's queues into ``out_dir``."""
    from hpctool.atomic import write_atomic
    from hpctool.cluster.queues import load_queues

    overrides: dict = {"cull_timeout": cull_timeout, "cull_every": max(1, min(300, cull_timeout // 4)),
                       "workdir": workdir}
    if allowed_groups:
        overrides["allowed_groups"] = allowed_groups
    files = head_node_files(load_queues(config), cluster_settings(**overrides))
    written = []
    for name, text in files.items():
        path = out_dir / name
        write_atomic(path, text, mode=0o600 if name == "sudoers" else 0o644)
        written.append(path)
    return written
