"""The local twin's life: start (or heal), status and stop of a real Slurm 24.11 cluster on this
one machine, every node a host of its own (:mod:`hpctool.twin.hosts`) running the node image
(:mod:`hpctool.twin.image`): the head node (munged, MariaDB + slurmdbd, slurmctld) and one host
per compute node (its slurmd and the jobs under it).

All state lives under one folder (``$HPCTOOL_HOME``, default ``~/.local/share/hpctool``); sockets
that hosts share live under ``/run/hpctool/<bridge>``. Each host sees the twin's ``etc/`` as its
``/etc/slurm`` (the Snakemake jobstep plugin strips ``SLURM_CONF`` from a job's environment).

Services that belong to a particular kind of node (spot nodes' IMDS emulators and interruption
handlers, the cluster manager of dynamic nodes) plug in through :class:`TwinService`: the core
knows when to start and stop them, not what they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from hpctool.atomic import write_atomic
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG, load_cluster
from hpctool.errors import SetupError, TwinError
from hpctool.home import TWIN_HOME_ENV
from hpctool.home import home as default_home
from hpctool.polling import poll_until
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import ACTIVE_JOB_STATES
from hpctool.twin import daemons, head, machine, nodes, pcnode_programs
from hpctool.twin.accounting import Accounting
from hpctool.twin.conf import HeadNode, TwinPaths, render_power_script
from hpctool.twin.head import HEAD
from hpctool.twin.hosts import Hosts, plan_network
from hpctool.twin.image import NodeImage, default_image
from hpctool.twin.layout import (
    DEFAULT_MAX_DYNAMIC,
    DEFAULT_TIME_SCALE,
    TwinLayout,
    TwinNode,
    plan_layout,
)
from hpctool.twin.pcnode_conf import PcnodePaths

DEFAULT_PORT_BASE = 16817  # the twin's services on the machine (the notebook hub)
CORE_DAEMONS = ("slurmctld",)
ACCOUNTING_DAEMONS = ("mariadbd", "slurmdbd")  # only when the config has accounting

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class TwinService(Protocol):
    """Processes the twin runs beside Slurm's daemons for some of its nodes."""

    def ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]: ...

    def pid_files(self, twin: Twin, layout: TwinLayout) -> dict[str, Path]: ...

    def start(self, twin: Twin, layout: TwinLayout) -> list[str]: ...

    def stop(self, twin: Twin) -> list[str]: ...


def port_base() -> int:
    value = os.environ.get("HPCTOOL_TWIN_PORT_BASE", str(DEFAULT_PORT_BASE))
    if not value.isdigit() or not 1024 <= int(value) <= 65000:
        raise SetupError(f"HPCTOOL_TWIN_PORT_BASE={value!r} is not a port number", "use a number from 1024 to 65000")
    return int(value)


class Twin:
    """One local twin, rooted at ``home``."""

    def __init__(self, home: Path | str | None = None, progress: Progress = _quiet,
                 services: Sequence[TwinService] = (), image: NodeImage | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.paths = TwinPaths(self.home)
        self.progress = progress
        self.services = list(services)
        self.etc = self.paths.etc
        self.run_dir = self.paths.run
        self.log_dir = self.paths.log
        self.slurm_conf = self.paths.slurm_conf
        self.layout_file = self.home / "twin.json"
        self.image = image or default_image()
        self.network = plan_network(self.home)
        self.hosts = Hosts(self.image.root, self.run_dir, self.network, self.home / "hosts")
        self.shared_run = Path("/run/hpctool") / self.network.bridge  # sockets every host reaches
        self.client_bin = self.paths.bin / "slurm"
        self.accounting = Accounting(self.paths, self.slurm, on_head=lambda argv: self.hosts.exec_argv(HEAD, argv))

    # -- public operations ------------------------------------------------------------------
    @property
    def slurm(self) -> Slurm:
        return Slurm(self.slurm_conf, path=self.env()["PATH"])

    @property
    def head(self) -> HeadNode:
        return HeadNode(hostname=HEAD, address=self.network.address(0),
                        plugin_dir=machine.plugin_dir(self.image.root),
                        munge_socket=str(self.shared_run / "munge" / "munge.socket.2"))

    def addresses(self, layout: TwinLayout) -> dict[str, str]:
        return {n.name: self.network.address(n.index) for n in layout.nodes}

    def layout(self) -> TwinLayout | None:
        try:
            return TwinLayout.from_json(self.layout_file.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:  # a twin.json of an older hpctool
            raise TwinError(f"{self.layout_file} is not a layout this hpctool can read ({exc})",
                            "stop that twin's daemons with an older hpctool, or `hpctool local down --purge`") from exc

    def env(self) -> dict[str, str]:
        """Environment for Slurm commands against this twin."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.slurm_conf)
        env[TWIN_HOME_ENV] = str(self.home)
        path = [p for p in env.get("PATH", "").split(":") if p and p != str(self.client_bin)]
        env["PATH"] = ":".join([str(self.client_bin), *path, daemons.SBIN_PATH])
        return env

    def env_exports(self) -> str:
        return (f"export SLURM_CONF={self.slurm_conf}\nexport {TWIN_HOME_ENV}={self.home}\n"
                f"export PATH={self.client_bin}:\"$PATH\"\n")

    def is_up(self) -> bool:
        layout = self.layout()
        return layout is not None and self._core_alive(layout) and self.slurm.ping()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One change of the twin's daemons at a time (`up`, `down`, `update`, from a user's shell,
        the test suite or the demo). The lock file sits beside the folder, which `down --purge` deletes."""
        with self._lock(f".{self.home.name}.lock"):
            yield

    @contextlib.contextmanager
    def exclusive_use(self) -> Iterator[None]:
        """Hold the twin for one user at a time: a test session or a benchmark that drains, kills
        or restarts nodes must not share it with another one (they wait here instead). Per twin:
        two twins (two homes) share nothing but the node image, which no host writes."""
        with self._lock(f".{self.home.name}.use.lock"):
            yield

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.home.parent.mkdir(parents=True, exist_ok=True)
        with open(self.home.parent / name, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def plan(self, config: str | Path | None = None, *, static_per_queue: int = 0,
             max_dynamic: int = DEFAULT_MAX_DYNAMIC, time_scale: float = DEFAULT_TIME_SCALE,
             scaling: str = "twin") -> TwinLayout:
        """The layout ``up`` would start for ``config`` (a bad config fails here, before anything starts)."""
        config_path = Path(config).resolve() if config is not None else DEFAULT_CLUSTER_CONFIG
        cluster = load_cluster(config_path)
        return plan_layout(cluster.queues, str(config_path), static_per_queue=static_per_queue,
                           max_dynamic=max_dynamic, base=port_base(), time_scale=time_scale,
                           scaledown_idletime_min=cluster.scaledown_idletime_min,
                           service_ports=self._service_ports, instance_store=nodes.has_instance_store,
                           shared_storage=[list(s) for s in cluster.shared_storage], accounting=cluster.accounting,
                           priority=cluster.priority, directory=cluster.directory, scaling=scaling)

    def up(self, config: str | Path | None = None, *, static_per_queue: int | None = None,
           max_dynamic: int | None = None, time_scale: float | None = None,
           scaling: str | None = None) -> dict[str, Any]:
        """Start every daemon that is not running, and only those: a healthy daemon (and the jobs
        under a healthy slurmd) is never restarted. Returns :meth:`status` with ``started``.

        What is not given is taken from the twin's last layout (an ``up`` after ``down`` brings
        back the same twin), else from the defaults (the shipped config, mirrored)."""
        machine.check_prerequisites()
        self.image.require()
        last = self.layout()
        if last is not None:
            config = config if config is not None else last.config
            static_per_queue = last.static_per_queue if static_per_queue is None else static_per_queue
            max_dynamic = last.max_dynamic if max_dynamic is None else max_dynamic
            time_scale = last.time_scale if time_scale is None else time_scale
            scaling = last.scaling if scaling is None else scaling
        wanted = self.plan(config, static_per_queue=static_per_queue or 0,
                           max_dynamic=DEFAULT_MAX_DYNAMIC if max_dynamic is None else max_dynamic,
                           time_scale=time_scale or DEFAULT_TIME_SCALE, scaling=scaling or "twin")
        with self.locked():
            started = self._up(wanted)
        result = self.status()
        result["started"] = started
        return result

    def _up(self, wanted: TwinLayout) -> list[str]:
        began = time.monotonic()
        running = self.layout()
        if running is not None and not running.same_cluster(wanted):
            if self._core_alive(running):
                raise TwinError(
                    f"the twin at {self.home} is already up with {running.config} "
                    f"({len(running.nodes)} nodes, time scale {running.time_scale:g})",
                    "run `hpctool local down` first to start it with another config or other options",
                )
            self._stop_leftovers(running)
            running = None
        fresh = running is None
        layout = running or wanted
        if running is not None and running.config != wanted.config:
            # The same cluster from another path (a moved checkout, a copy): remember the path
            # given now, so that a later `up` without one finds a file that exists.
            layout.config = wanted.config
            write_atomic(self.layout_file, layout.to_json())
        if fresh:
            for folder in (self.etc, self.run_dir, self.log_dir, self.paths.state, self.paths.spool, self.paths.bin):
                folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.layout_file, layout.to_json())
        self._write_power_scripts(layout)
        machine.write_clients(self.client_bin, self.image.root, self.slurm_conf)
        started: list[str] = []
        if machine.start_anchor(self.run_dir / "machine.pid", self.log_dir / "anchor.log"):
            started.append("anchor")
        self.shared_run.mkdir(parents=True, exist_ok=True)
        head.write_name_service(self, layout)
        self.sync_users()
        if not self.hosts.alive(HEAD):
            self.progress("booting the head node")
            self.hosts.boot(nodes.host_spec(self, HEAD, 0, layout))
            started.append("host head")
        if not head.munge_works(self):
            head.start_munge(self)
            started.append("munged")
        if layout.accounting and not self._alive("mariadbd"):
            self.accounting.start_mariadb(layout, self.progress)
            started.append("mariadbd")
        cold = not self._alive("slurmctld") and not any(self.slurmd_alive(n.name) for n in layout.nodes)
        if fresh or cold or not self.slurm_conf.exists():
            # Before slurmdbd: sacctmgr finds slurmdbd through it. Job ids go on from accounting
            # (FirstJobId), so a controller whose state was lost never reuses one. Not rewritten
            # under running slurmd, which would then disagree with the controller's file.
            head.write_slurm_conf(self, layout)
        if layout.accounting and not self._alive("slurmdbd"):
            head.start_slurmdbd(self, layout)
            started.append("slurmdbd")
        if not head.sshd_alive(self):
            head.start_sshd(self)
            started.append("sshd")
        if not self._alive("slurmctld"):
            head.start_slurmctld(self)
            started.append("slurmctld")
        dead_nodes = [n for n in layout.static_nodes() if not self.slurmd_alive(n.name)]
        if dead_nodes:
            self.progress(f"starting {len(dead_nodes)} slurmd")
            for node in dead_nodes:
                self.start_node(node.name)
            started += [f"slurmd {n.name}" for n in dead_nodes]
        # A static node whose host is cut off gets a new instance, as clustermgtd replaces it.
        replaced = [] if fresh else nodes.replace_unreachable(self, layout, dead_nodes, self.progress)
        dead_nodes += [n for n in layout.static_nodes() if n.name in replaced]
        started += [f"host {name}" for name in replaced]
        if fresh:
            nodes.wait_static_in_service(self, layout, self.resume_nodes)
        elif cold:
            # A restart of the whole twin keeps what was drained or down (as a cluster's restart
            # does): wait for every static slurmd to answer, not for every node to take jobs.
            nodes.wait_responding(self, [n.name for n in layout.static_nodes()])
        elif dead_nodes:
            nodes.wait_responding(self, [n.name for n in dead_nodes])
            if nodes.back_in_service(self, replaced):
                nodes.wait_responding(self, replaced)  # slurmctld pings a resumed node once more
        if fresh or cold:  # a new cluster (or one restarted whole): dynamic nodes start powered down
            nodes.power_down_dynamic(self, layout)
        for service in self.services:
            started += service.start(self, layout)
        if not started:
            self.progress("twin is already up: every daemon is running")
        elif fresh:
            self.progress(f"twin is up: {len(layout.nodes)} nodes ({len(layout.dynamic_nodes())} dynamic) "
                          f"in {len(layout.queues)} partitions in {time.monotonic() - began:.1f} s")
        else:
            self.progress(f"healed: started {', '.join(started)} in {time.monotonic() - began:.1f} s")
        return started

    def status(self) -> dict[str, Any]:
        """The twin's daemons, partitions and nodes (the shape ``status --json`` prints)."""
        layout = self.layout()
        result: dict[str, Any] = {"up": False, "home": str(self.home), "slurm_conf": str(self.slurm_conf),
                                  "config": None, "daemons": {}, "queues": [], "dead": []}
        if layout is None:
            return result
        result["config"] = layout.config
        result["time_scale"] = layout.time_scale
        for name, pid_file in self._pid_files(layout).items():
            pid = daemons.read_pid(pid_file)
            result["daemons"][name] = {"pid": pid, "running": daemons.pid_alive(pid)}
        controller_up = result["daemons"]["slurmctld"]["running"] and self.slurm.ping()
        states = self.slurm.node_states() if controller_up else {}
        by_name = {n.name: n for n in layout.nodes}
        for queue in layout.queues:
            result["queues"].append({
                "name": queue["name"], "capacity_type": queue["capacity_type"], "spot": queue["spot"],
                "nodes": [{"name": n, "state": states.get(n, "unknown"),
                           "kind": "dynamic" if by_name[n].dynamic else "static"} for n in queue["nodes"]],
            })
        result["dead"] = sorted(name for name, d in result["daemons"].items() if not d["running"])
        result["up"] = controller_up and not result["dead"]
        return result

    def down(self, purge: bool = False) -> list[str]:
        """Stop the daemons this twin started (by PID file); with ``purge`` delete its folder."""
        with self.locked():
            return self._down(purge)

    def _down(self, purge: bool) -> list[str]:
        stopped: list[str] = []
        layout = self.layout() if self.layout_file.exists() else None
        for service in self.services:
            for name in service.stop(self):
                stopped.append(name)
                self.progress(f"stopped {name}")
        if layout is not None and self.slurm.ping():
            self.cancel_all_jobs()
        # Reverse start order: nodes (dynamic ones too), controller, accounting, database, munge.
        for name, pid_file in self._stop_order():
            if daemons.stop_pid(daemons.read_pid(pid_file), name=name):
                stopped.append(name)
                self.progress(f"stopped {name}")
        for pid_file in sorted(self.run_dir.glob("host-*.pid")) if self.run_dir.exists() else []:
            name = pid_file.name[len("host-"):-len(".pid")]
            if self.hosts.end(name, discard=nodes.node_local(self, name)):
                stopped.append(f"host {name}")
        if self.hosts.remove_bridge():
            stopped.append(f"bridge {self.network.bridge}")
        machine.stop_anchor(self.run_dir / "machine.pid")
        if purge and self.home.exists():
            shutil.rmtree(self.home)
            self.progress(f"removed {self.home}")
        return stopped

    def resume_nodes(self) -> list[str]:
        """Return drained or down nodes to service (a fresh start for tests and the demo):
        static nodes resume, dynamic ones are reset to powered down, as clustermgtd does."""
        return nodes.resume(self, self._require_layout())

    def start_node(self, node: str, boot: bool = False, address: str | None = None,
                   instance_id: str | None = None) -> bool:
        """Start one node's slurmd (a new instance; ``boot``: a dynamic node's boot; ``address``,
        ``instance_id``: an instance's, see nodes.start). False when it was already running."""
        layout = self._require_layout()
        entry = layout.node(node)
        if entry is None:
            raise TwinError(f"{node} is not a node of the twin", f"nodes: {', '.join(n.name for n in layout.nodes)}")
        return nodes.start(self, layout, entry, boot, address, instance_id)

    def stop_node(self, node: str) -> bool:
        """End one node's host, as EC2 terminating the instance would."""
        return nodes.stop(self, node)

    def node_state(self, node: str) -> str:
        return self.slurm.node_states().get(node, "unknown")

    # -- pieces ------------------------------------------------------------------------------
    def _require_layout(self) -> TwinLayout:
        layout = self.layout()
        if layout is None:
            raise TwinError(f"no twin at {self.home}", "start it with `hpctool local up`")
        return layout

    def _service_ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]:
        ports: dict[str, int] = {}
        for service in self.services:
            ports.update(service.ports(nodes, base))
        return ports

    def _core_pid_files(self, layout: TwinLayout) -> dict[str, Path]:
        names = (*ACCOUNTING_DAEMONS, *CORE_DAEMONS) if layout.accounting else CORE_DAEMONS
        return {name: self.run_dir / f"{name}.pid" for name in names}

    def _alive(self, daemon: str) -> bool:
        return daemons.pid_alive(daemons.read_pid(self.run_dir / f"{daemon}.pid"))

    def slurmd_alive(self, node: str) -> bool:
        return nodes.slurmd_alive(self, node)

    def _core_alive(self, layout: TwinLayout) -> bool:
        return all(self._alive(name) for name in self._core_pid_files(layout))

    def _pid_files(self, layout: TwinLayout) -> dict[str, Path]:
        """The daemons that must run for the twin to be up (dynamic nodes' slurmd come and go)."""
        files = {"host head": self.hosts.keeper_pid_file(HEAD), **self._core_pid_files(layout),
                 "sshd": self.run_dir / "sshd.pid"}
        if (self.run_dir / "munged.pid").exists():
            files["munged"] = self.run_dir / "munged.pid"
        for node in layout.static_nodes():
            files[f"slurmd {node.name}"] = self.paths.slurmd_pid(node.name)
        for service in self.services:
            files.update(service.pid_files(self, layout))
        return files

    def _stop_order(self) -> list[tuple[str, Path]]:
        order: list[tuple[str, Path]] = []
        for pid_file in sorted(self.run_dir.glob("slurmd-*.pid")):
            order.append((f"slurmd {pid_file.name[len('slurmd-'):-len('.pid')]}", pid_file))
        for name in ("slurmctld", "sshd", "slurmdbd", "mariadbd", "munged"):
            order.append((name, self.run_dir / f"{name}.pid"))
        return order

    def _stop_leftovers(self, layout: TwinLayout) -> None:
        """A twin of another layout whose core is dead may leave daemons: stop ours first."""
        for service in self.services:
            service.stop(self)
        for name, pid_file in self._stop_order():
            if name != "munged":
                daemons.stop_pid(daemons.read_pid(pid_file), name=name)

    def _write_power_scripts(self, layout: TwinLayout) -> None:
        for action in ("resume", "suspend"):
            script = self.paths.bin / action
            text = (pcnode_programs.render_power_shim(action, PcnodePaths(self.paths), self.run_dir / "machine.pid")
                    if layout.pcnode else render_power_script(action, sys.executable, self.paths))
            if not script.exists() or script.read_text() != text:
                # Replaced atomically: slurmctld may be running the old one (an in-place edit fails).
                write_atomic(script, text, mode=0o755)

    def sync_users(self) -> None:
        """Give every host the machine's people (call after adding one)."""
        machine.write_people(self.etc / "extrausers")

    def cancel_all_jobs(self) -> None:
        """Cancel every pending or running job and wait (briefly) for the running ones to end."""
        jobs = [j.get("JobId", "") for j in self.slurm.jobs() if j.get("JobState") in ACTIVE_JOB_STATES]
        jobs = [j for j in jobs if j]
        if not jobs:
            return
        self.progress(f"cancelling {len(jobs)} job(s)")
        self.slurm.cancel(jobs)
        with contextlib.suppress(TwinError):
            poll_until(lambda: not [j for j in self.slurm.jobs() if j.get("JobState") in {"RUNNING", "COMPLETING"}],
                       timeout=20, interval=0.5,
                       on_timeout=lambda: TwinError("jobs still running after scancel", "they are killed with their slurmd"))
