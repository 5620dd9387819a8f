"""The local twin: a real Slurm (munge, MariaDB + slurmdbd, slurmctld, one slurmd per virtual
node) on this one machine, with the partitions of a ParallelCluster config.

All state lives under one folder (``$HPCTOOL_HOME``, default ``~/.local/share/hpctool``). The only
file outside it is the link ``/etc/slurm/slurm.conf``, which the Snakemake jobstep plugin needs
because it strips ``SLURM_CONF`` from the job environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hpctool import daemons
from hpctool.cluster import DEFAULT_CLUSTER_CONFIG, Queue, load_queues
from hpctool.errors import SetupError, TwinError
from hpctool.slurm import Slurm
from hpctool.slurm_parse import node_in_service, node_out_of_service

SYSTEM_SLURM_CONF = Path("/etc/slurm/slurm.conf")
MACHINE_USE_LOCK = Path("/run/lock/hpctool-twin.use.lock")
DEFAULT_PORT_BASE = 16817
CLUSTER_NAME = "twin"
ACCOUNT = "hpctool"
CPUS_PER_NODE = 4  # virtual CPUs a node claims (SlurmdParameters=config_overrides)
REQUIRED_PROGRAMS = [
    "runuser", "munged", "munge", "unmunge", "mariadbd", "mariadb-install-db", "mariadb",
    "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "scontrol", "sinfo", "sbatch", "sacct",
]

CORE_DAEMONS = ("mariadbd", "slurmdbd", "slurmctld")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def default_home() -> Path:
    env = os.environ.get("HPCTOOL_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "hpctool"


def port_base() -> int:
    value = os.environ.get("HPCTOOL_TWIN_PORT_BASE", str(DEFAULT_PORT_BASE))
    if not value.isdigit() or not 1024 <= int(value) <= 65000:
        raise SetupError(f"HPCTOOL_TWIN_PORT_BASE={value!r} is not a port number", "use a number from 1024 to 65000")
    return int(value)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass
class TwinNode:
    name: str
    queue: str
    compute_resource: str
    instance_type: str
    port: int
    spot: bool


@dataclass
class TwinLayout:
    """What the twin is made of: derived from a cluster config, saved as twin.json."""

    config: str
    nodes_per_queue: int
    cpus_per_node: int
    memory_mb_per_node: int
    ports: dict[str, int]
    queues: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[TwinNode] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TwinLayout:
        data = json.loads(text)
        data["nodes"] = [TwinNode(**n) for n in data["nodes"]]
        return cls(**data)

    def spot_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if n.spot]


def plan_layout(queues: list[Queue], config: str, nodes_per_queue: int, base: int) -> TwinLayout:
    """Name the virtual nodes as ParallelCluster does (``<queue>-st-<resource>-<n>``)."""
    if nodes_per_queue < 1:
        raise SetupError(f"--nodes-per-queue {nodes_per_queue} is below 1", "give 1 or more nodes per queue")
    total_nodes = sum(max(nodes_per_queue, len(q.compute_resources)) for q in queues)
    real_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    # Keep the sum of RealMemory well inside the machine, or slurmd jobs would be oversold.
    memory_mb = max(512, min(4096, int(real_mb * 0.6 / max(total_nodes, 1))))
    ports = {"SlurmctldPort": base, "DbdPort": base + 1, "MariaDB port": base + 2}
    nodes: list[TwinNode] = []
    queue_rows = []
    next_port = base + 10
    for queue in queues:
        count = max(nodes_per_queue, len(queue.compute_resources))
        names = []
        for index in range(count):
            resource = queue.compute_resources[index % len(queue.compute_resources)]
            ordinal = index // len(queue.compute_resources) + 1
            node = TwinNode(
                name=f"{queue.name}-st-{resource.name}-{ordinal}",
                queue=queue.name,
                compute_resource=resource.name,
                instance_type=resource.instance_types[0],
                port=next_port,
                spot=queue.is_spot,
            )
            ports[f"Port of NodeName={node.name}"] = next_port
            next_port += 1
            nodes.append(node)
            names.append(node.name)
        queue_rows.append({"name": queue.name, "capacity_type": queue.capacity_type,
                           "spot": queue.is_spot, "nodes": names})
    from hpctool import spot  # late: spot builds on the twin

    ports.update(spot.plan_imds_ports([n.name for n in nodes if n.spot], base))
    return TwinLayout(config=config, nodes_per_queue=nodes_per_queue, cpus_per_node=CPUS_PER_NODE,
                      memory_mb_per_node=memory_mb, ports=ports, queues=queue_rows, nodes=nodes)


class Twin:
    """One local twin, rooted at ``home``."""

    def __init__(self, home: Path | str | None = None, progress: Progress = _quiet) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.progress = progress
        self.etc = self.home / "etc"
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "log"
        self.slurm_conf = self.etc / "slurm.conf"
        self.dbd_conf = self.etc / "slurmdbd.conf"
        self.layout_file = self.home / "twin.json"
        self.mysql_dir = self.home / "mysql"
        self.mysql_socket = self.run_dir / "mysqld.sock"
        self.hostname = socket.gethostname().split(".")[0]

    # -- public operations ------------------------------------------------------------------
    @property
    def slurm(self) -> Slurm:
        return Slurm(self.slurm_conf)

    def layout(self) -> TwinLayout | None:
        try:
            return TwinLayout.from_json(self.layout_file.read_text())
        except FileNotFoundError:
            return None

    def env(self) -> dict[str, str]:
        """Environment for Slurm commands against this twin."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.slurm_conf)
        env["PATH"] = f"{env.get('PATH', '')}:{daemons.SBIN_PATH}"
        return env

    def env_exports(self) -> str:
        return f"export SLURM_CONF={self.slurm_conf}\n"

    def is_up(self) -> bool:
        layout = self.layout()
        if layout is None:
            return False
        # The core daemons only: a node whose slurmd is gone (a reclaimed spot instance) is a
        # state of a running cluster, not a twin that is down.
        core = {n: f for n, f in self._pid_files(layout).items() if n in CORE_DAEMONS}
        return all(daemons.pid_alive(daemons.read_pid(f)) for f in core.values()) and self.slurm.ping()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One `up` or `down` at a time per twin (a user's shell, the test suite, the demo). The
        lock file sits beside the folder, which `down --purge` deletes."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        with open(self.home.parent / f".{self.home.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def exclusive_use(self) -> Iterator[None]:
        """Hold the twin for one user at a time: a test session or a benchmark that drains, kills
        or restarts nodes must not share it with another one (they wait here instead). The lock is
        per machine, not per home: every twin shares munged and ``/etc/slurm/slurm.conf``."""
        MACHINE_USE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(MACHINE_USE_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, config: str | Path | None = None, nodes_per_queue: int = 2) -> dict[str, Any]:
        """Start every daemon that is not running; return :meth:`status`. Safe to call twice."""
        check_prerequisites()
        with self._exclusive():
            return self._up(config, nodes_per_queue)

    def _up(self, config: str | Path | None, nodes_per_queue: int) -> dict[str, Any]:
        config_path = Path(config).resolve() if config is not None else DEFAULT_CLUSTER_CONFIG
        queues = load_queues(config_path)  # a bad config fails before anything starts
        if self.is_up():
            running = self.layout()
            assert running is not None
            wanted = plan_layout(queues, str(config_path), nodes_per_queue, port_base())
            # Same partitions and nodes (e.g. the default config of another checkout): the same twin.
            if (wanted.queues, wanted.nodes) != (running.queues, running.nodes):
                raise TwinError(
                    f"the twin at {self.home} is already up with {running.config} "
                    f"({running.nodes_per_queue} node(s) per queue)",
                    "run `hpctool local down` first to start it with another config",
                )
            self.progress("twin is already up")
            self._claim_system_slurm_conf()  # another twin on this machine may have taken the link
            self._spot().start_services(self, running)
            return self.status()
        layout = plan_layout(queues, str(config_path), nodes_per_queue, port_base())
        self._stop_leftovers()
        daemons.check_ports_free(layout.ports)
        self._claim_system_slurm_conf()
        for folder in (self.etc, self.run_dir, self.log_dir, self.home / "state", self.home / "spool"):
            folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.layout_file, layout.to_json())
        started = time.monotonic()
        self._start_munge()
        self._start_mariadb(layout)
        self._write_slurm_conf(layout, first_job_id=self._last_job_id_in_accounting() + 1)
        self._start_slurmdbd(layout)
        self._start_slurmctld()
        self._start_slurmds(layout)
        self._wait_nodes_idle(layout)
        self._spot().start_services(self, layout)
        self.progress(f"twin is up: {len(layout.nodes)} nodes in {len(layout.queues)} partitions "
                      f"in {time.monotonic() - started:.1f} s")
        return self.status()

    def status(self) -> dict[str, Any]:
        """The twin's daemons, partitions and nodes (the shape ``status --json`` prints)."""
        layout = self.layout()
        result: dict[str, Any] = {"up": False, "home": str(self.home), "slurm_conf": str(self.slurm_conf),
                                  "config": None, "daemons": {}, "queues": []}
        if layout is None:
            return result
        result["config"] = layout.config
        pid_files = {**self._pid_files(layout), **self._spot().service_pid_files(self, layout)}
        for name, pid_file in pid_files.items():
            pid = daemons.read_pid(pid_file)
            result["daemons"][name] = {"pid": pid, "running": daemons.pid_alive(pid)}
        controller_up = result["daemons"].get("slurmctld", {}).get("running", False) and self.slurm.ping()
        states = self.slurm.node_states() if controller_up else {}
        for queue in layout.queues:
            result["queues"].append({
                "name": queue["name"], "capacity_type": queue["capacity_type"], "spot": queue["spot"],
                "nodes": [{"name": n, "state": states.get(n, "unknown")} for n in queue["nodes"]],
            })
        result["up"] = controller_up and all(d["running"] for d in result["daemons"].values())
        return result

    def down(self, purge: bool = False) -> list[str]:
        """Stop the daemons this twin started (by PID file); with ``purge`` delete its folder."""
        with self._exclusive():
            return self._down(purge)

    def _down(self, purge: bool) -> list[str]:
        stopped: list[str] = []
        layout = self.layout()
        if layout is not None:
            for name in self._spot().stop_services(self, layout):
                stopped.append(name)
                self.progress(f"stopped {name}")
            if self.slurm.ping():
                self._cancel_all_jobs()
            pid_files = self._pid_files(layout)
            # Reverse start order: nodes, controller, accounting, its database, munge.
            rank = {"slurmctld": 1, "slurmdbd": 2, "mariadbd": 3, "munged": 4}  # slurmd are 0
            order = sorted(pid_files, key=lambda n: (rank.get(n, 0), n))
            for name in order:
                if daemons.stop_pid(daemons.read_pid(pid_files[name]), name=name):
                    stopped.append(name)
                    self.progress(f"stopped {name}")
        self._release_system_slurm_conf()
        if purge and self.home.exists():
            shutil.rmtree(self.home)
            self.progress(f"removed {self.home}")
        return stopped

    def resume_nodes(self) -> list[str]:
        """Return drained or down nodes to service (a fresh start for tests and the demo)."""
        resumed = []
        for node, state in self.slurm.node_states().items():
            if node_out_of_service(state):
                self.slurm.update_node(node, "resume")
                resumed.append(node)
        return resumed

    def start_node(self, node: str) -> None:
        """Start one node's slurmd again (after the twin reclaimed it, like a new instance)."""
        layout = self._require_layout()
        if node not in {n.name for n in layout.nodes}:
            raise TwinError(f"{node} is not a node of the twin", f"nodes: {', '.join(n.name for n in layout.nodes)}")
        pid_file = self.run_dir / f"slurmd-{node}.pid"
        if not daemons.pid_alive(daemons.read_pid(pid_file)):
            self._spawn_slurmd(node)

    def stop_node(self, node: str) -> bool:
        """Kill one node's slurmd, as EC2 reclaiming the instance would."""
        return daemons.stop_pid(daemons.read_pid(self.run_dir / f"slurmd-{node}.pid"), name=f"slurmd {node}")

    # -- pieces ------------------------------------------------------------------------------
    def _require_layout(self) -> TwinLayout:
        layout = self.layout()
        if layout is None:
            raise TwinError(f"no twin at {self.home}", "start it with `hpctool local up`")
        return layout

    @staticmethod
    def _spot():
        from hpctool import spot  # late: spot builds on the twin (IMDS emulators, handlers)

        return spot

    def _pid_files(self, layout: TwinLayout) -> dict[str, Path]:
        files = {
            "mariadbd": self.run_dir / "mariadbd.pid",
            "slurmdbd": self.run_dir / "slurmdbd.pid",
            "slurmctld": self.run_dir / "slurmctld.pid",
        }
        if (self.run_dir / "munged.pid").exists():
            files["munged"] = self.run_dir / "munged.pid"
        for node in layout.nodes:
            files[f"slurmd {node.name}"] = self.run_dir / f"slurmd-{node.name}.pid"
        return files

    def _stop_leftovers(self) -> None:
        """A half-started twin (e.g. a crash) leaves daemons running: stop ours before starting."""
        layout = self.layout()
        if layout is not None:
            self._spot().stop_services(self, layout)
            for name, pid_file in self._pid_files(layout).items():
                if name != "munged":
                    daemons.stop_pid(daemons.read_pid(pid_file), name=name)

    def _claim_system_slurm_conf(self) -> None:
        target = SYSTEM_SLURM_CONF
        if target.is_symlink():
            if Path(os.readlink(target)) == self.slurm_conf:
                return
            target.unlink()  # a link to another twin's file is ours to replace
        elif target.exists():
            raise TwinError(
                f"{target} exists and is not the twin's: this machine has a real Slurm config",
                f"the twin will not overwrite it; move it away (e.g. mv {target} {target}.orig) or use the real cluster",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(self.slurm_conf)

    def _release_system_slurm_conf(self) -> None:
        target = SYSTEM_SLURM_CONF
        if target.is_symlink() and Path(os.readlink(target)) == self.slurm_conf:
            target.unlink()

    def _last_job_id_in_accounting(self) -> int:
        """The highest job id slurmdbd has recorded (0 on a new database)."""
        result = self._query(f"SELECT COALESCE(MAX(id_job), 0) FROM slurm_acct_db.{CLUSTER_NAME}_job_table")
        text = result.stdout.strip()
        return int(text) if result.returncode == 0 and text.isdigit() else 0

    def _write_slurm_conf(self, layout: TwinLayout, first_job_id: int = 1) -> None:
        lines = [
            "# Written by hpctool local up; the twin's own cluster. Do not edit: it is rewritten.",
            f"ClusterName={CLUSTER_NAME}",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={layout.ports['SlurmctldPort']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # Short credential lifetime: a requeued job waits ~6 s, not ~120 s, before it may restart.
            "AuthInfo=cred_expire=5",
            f"StateSaveLocation={self.home / 'state'}",
            f"SlurmdSpoolDir={self.home / 'spool'}/%n",
            f"SlurmctldPidFile={self.run_dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.run_dir}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir}/slurmd-%n.log",
            # No systemd and no cgroups on CI-like machines.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2,batch_sched_delay=0",
            "ReturnToService=1",
            "JobRequeue=1",
            # Never reuse an id accounting already holds, even when slurmctld's state is lost.
            f"FirstJobId={first_job_id}",
            "KillWait=5",
            "MinJobAge=300",
            # A job without --mem gets memory per CPU, not the whole node.
            f"DefMemPerCPU={layout.memory_mb_per_node // layout.cpus_per_node}",
            "InactiveLimit=0",
            "SlurmdTimeout=60",
            # Lets a virtual node claim more CPUs than the machine has.
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=30",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=localhost",
            f"AccountingStoragePort={layout.ports['DbdPort']}",
            "AccountingStorageEnforce=associations",
            "",
        ]
        for node in layout.nodes:
            features = ["static", node.instance_type, node.compute_resource] + (["spot"] if node.spot else [])
            lines.append(
                f"NodeName={node.name} NodeHostname={self.hostname} NodeAddr=127.0.0.1 Port={node.port} "
                f"CPUs={layout.cpus_per_node} RealMemory={layout.memory_mb_per_node} "
                f"Features={','.join(features)} State=UNKNOWN"
            )
        lines.append("")
        for index, queue in enumerate(layout.queues):
            default = "YES" if index == 0 else "NO"
            lines.append(
                f"PartitionName={queue['name']} Nodes={','.join(queue['nodes'])} Default={default} "
                "MaxTime=INFINITE State=UP OverSubscribe=NO"
            )
        write_atomic(self.slurm_conf, "\n".join(lines) + "\n")

    def _start_munge(self) -> None:
        if self._munge_works():
            return
        self.progress("starting munged")
        munge_run = Path("/run/munge")
        munge_run.mkdir(parents=True, exist_ok=True)
        shutil.chown(munge_run, "munge", "munge")
        # Debian's packaged daemon as the munge user: slurmdbd rejects a private root munged.
        daemons.run_quiet([daemons.find_program("runuser") or "runuser", "-u", "munge", "--",
                           daemons.find_program("munged") or "munged"])
        daemons.wait_until(self._munge_works, name="munged", log_file=Path("/var/log/munge/munged.log"), timeout=10)
        pid = daemons.read_pid(munge_run / "munged.pid")
        if pid:
            write_atomic(self.run_dir / "munged.pid", f"{pid}\n")

    def _munge_works(self) -> bool:
        try:
            cred = subprocess.run(["munge", "-n"], capture_output=True, text=True, timeout=5, check=False)
            if cred.returncode != 0:
                return False
            check = subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, text=True,
                                   timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return check.returncode == 0

    def _query(self, sql: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run SQL as MariaDB's root over the twin's private socket (no password: socket auth)."""
        return subprocess.run(["mariadb", f"--socket={self.mysql_socket}", "-u", "root", "-N", "-B", "-e", sql],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _mysql(self, sql: str, secret: str = "") -> None:
        result = self._query(sql)
        if result.returncode != 0:
            # MariaDB's errors quote the statement: never let them carry the password out.
            detail = result.stderr.strip().replace(secret, "***") if secret else result.stderr.strip()
            raise daemons.daemon_failed("mariadbd", self.log_dir / "mariadbd.log",
                                        f"refused the accounting setup: {detail}")

    def _mysql_ready(self) -> bool:
        return self._query("SELECT 1", timeout=10).returncode == 0

    def _start_mariadb(self, layout: TwinLayout) -> None:
        log = self.log_dir / "mariadbd.log"
        if not (self.mysql_dir / "mysql").is_dir():
            self.progress("initialising MariaDB for accounting")
            daemons.run_quiet(["mariadb-install-db", "--user=root", f"--datadir={self.mysql_dir}",
                               "--auth-root-authentication-method=socket", "--skip-test-db"], timeout=120)
        self.progress("starting mariadbd")
        process = daemons.spawn(
            [daemons.find_program("mariadbd") or "mariadbd", "--no-defaults", "--user=root",
             f"--datadir={self.mysql_dir}", f"--socket={self.mysql_socket}",
             f"--port={layout.ports['MariaDB port']}", "--bind-address=127.0.0.1",
             f"--pid-file={self.run_dir / 'mariadbd.pid'}", f"--log-error={log}",
             "--innodb-buffer-pool-size=64M", "--skip-name-resolve"],
            log,
        )
        daemons.wait_until(self._mysql_ready, name="mariadbd", log_file=log, timeout=60,
                           alive=lambda: process.poll() is None)

    def _start_slurmdbd(self, layout: TwinLayout) -> None:
        password_file = self.etc / "db-password"
        if not password_file.exists():
            write_atomic(password_file, secrets.token_urlsafe(24) + "\n", mode=0o600)
        password = password_file.read_text().strip()
        self._mysql(
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            f"ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
            secret=password,
        )
        log = self.log_dir / "slurmdbd.log"
        conf = "\n".join([
            "# Written by hpctool local up.",
            "AuthType=auth/munge",
            "DbdHost=localhost",
            f"DbdPort={layout.ports['DbdPort']}",
            "SlurmUser=root",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={layout.ports['MariaDB port']}",
            "StorageUser=slurm",
            f"StoragePass={password}",
            "StorageLoc=slurm_acct_db",
            f"LogFile={log}",
            f"PidFile={self.run_dir / 'slurmdbd.pid'}",
            "",
        ])
        write_atomic(self.dbd_conf, conf, mode=0o600)  # holds the database password
        self.progress("starting slurmdbd")
        process = daemons.spawn([daemons.find_program("slurmdbd") or "slurmdbd", "-D"], log, env=self.env())
        pid_file = self.run_dir / "slurmdbd.pid"

        def ready() -> bool:
            if not daemons.pid_alive(daemons.read_pid(pid_file)):
                return False
            result = self.slurm.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"],
                                    check=False, timeout=10)
            return result.returncode == 0

        daemons.wait_until(ready, name="slurmdbd", log_file=log, timeout=30, alive=lambda: process.poll() is None)
        clusters = self.slurm.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]).stdout.split()
        if CLUSTER_NAME not in clusters:
            self.slurm.run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME])
            self.slurm.run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"Cluster={CLUSTER_NAME}",
                            "Description=hpctool twin", "Organization=hpctool"])
        users = self.slurm.run(["sacctmgr", "-n", "-P", "show", "assoc", f"cluster={CLUSTER_NAME}",
                                "format=user"]).stdout.split()
        user = os.environ.get("USER") or "root"
        for name in sorted({"root", user}):
            if name not in users:
                self.slurm.run(["sacctmgr", "-i", "add", "user", name, f"Account={ACCOUNT}",
                                f"Cluster={CLUSTER_NAME}", f"DefaultAccount={ACCOUNT}"])

    def _start_slurmctld(self) -> None:
        log = self.log_dir / "slurmctld.log"
        self.progress("starting slurmctld")
        # Warm start: job ids go on from the saved state, so accounting never shows reused ids.
        process = daemons.spawn([daemons.find_program("slurmctld") or "slurmctld", "-D", "-i"], log, env=self.env())
        daemons.wait_until(self.slurm.ping, name="slurmctld", log_file=log, timeout=30,
                           alive=lambda: process.poll() is None)

    def _spawn_slurmd(self, node: str) -> subprocess.Popen:
        log = self.log_dir / f"slurmd-{node}.log"
        return daemons.spawn([daemons.find_program("slurmd") or "slurmd", "-D", "-N", node], log, env=self.env())

    def _start_slurmds(self, layout: TwinLayout) -> None:
        self.progress(f"starting {len(layout.nodes)} slurmd")
        processes = {node.name: self._spawn_slurmd(node.name) for node in layout.nodes}
        for name, process in processes.items():
            if process.poll() not in (None, 0):
                raise daemons.daemon_failed(f"slurmd {name}", self.log_dir / f"slurmd-{name}.log", "exited during start-up")

    def _wait_nodes_idle(self, layout: TwinLayout, timeout: float = 60) -> None:
        names = {n.name for n in layout.nodes}
        resumed = False

        def ready() -> bool:
            nonlocal resumed
            states = self.slurm.node_states()
            if not resumed and any(node_out_of_service(s) for n, s in states.items() if n in names):
                # Nodes a previous run left drained or down come back: this is a fresh start.
                self.resume_nodes()
                resumed = True
            return all(node_in_service(states.get(n, "unknown")) for n in names)

        daemons.wait_until(ready, name="slurmd", log_file=self.log_dir / f"slurmd-{layout.nodes[0].name}.log",
                           timeout=timeout, interval=0.3)

    def _cancel_all_jobs(self) -> None:
        jobs = [j.get("JobId", "") for j in self.slurm.jobs()
                if j.get("JobState") in {"PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "CONFIGURING", "COMPLETING"}]
        jobs = [j for j in jobs if j]
        if not jobs:
            return
        self.progress(f"cancelling {len(jobs)} job(s)")
        self.slurm.cancel(jobs)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            active = [j for j in self.slurm.jobs() if j.get("JobState") in {"RUNNING", "COMPLETING"}]
            if not active:
                return
            time.sleep(0.5)


def check_prerequisites(euid: int | None = None, path: str | None = None) -> None:
    """Root and Debian's Slurm, munge and MariaDB packages, or a SetupError naming `make setup`."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SetupError(
            "the local twin must run as root (it starts munged, slurmd and MariaDB)",
            "run it as root, e.g. `sudo hpctool local up`",
        )
    missing = [p for p in REQUIRED_PROGRAMS if daemons.find_program(p, path) is None]
    if missing:
        raise SetupError(
            f"programs the twin needs are not installed: {', '.join(missing)}",
            "run `make setup` (installs slurm-wlm, slurmdbd, munge, mariadb-server and the venv)",
        )
