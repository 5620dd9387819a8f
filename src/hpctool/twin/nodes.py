"""Compute nodes of the twin as instances: a node's host boots with its slurmd (a launched
instance) and ends with every process and its node-local storage (a terminated one), and the
waits that tell when the nodes a start brought up answer Slurm."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import (
    node_in_service,
    node_out_of_service,
    node_powered_down,
    node_state_flags,
)
from hpctool.twin import daemons, identity, machine
from hpctool.twin.conf import TwinPaths
from hpctool.twin.head import HEAD
from hpctool.twin.hosts import Hosts, HostSpec, Network
from hpctool.twin.layout import TwinLayout, TwinNode


class Twin(Protocol):
    """What a node's life needs of the twin (:class:`hpctool.twin.core.Twin`)."""

    home: Path
    paths: TwinPaths
    etc: Path
    shared_run: Path
    network: Network
    hosts: Hosts
    services: Sequence[object]

    @property
    def slurm(self) -> Slurm: ...

    def env(self) -> dict[str, str]: ...

    def addresses(self, layout: TwinLayout) -> dict[str, str]: ...


def host_spec(twin: Twin, name: str, index: int, layout: TwinLayout, address: str | None = None) -> HostSpec:
    """A host's namespaces and folders: the twin's files at their cluster paths, /scratch where
    the instance type has instance store, the config's shared storage at its MountDir."""
    binds = {"/etc/slurm": twin.etc,
             "/etc/hosts": twin.etc / "hosts", "/etc/resolv.conf": twin.etc / "resolv.conf",
             "/var/lib/extrausers": twin.etc / "extrausers"}
    entry = layout.node(name)
    if entry is not None and entry.scratch:
        binds["/scratch"] = twin.hosts.folder(name) / "scratch"
    for storage_name, mount_dir, _ in layout.shared_storage:
        binds[mount_dir] = twin.paths.home / "storage" / storage_name
    binds.update(identity.host_binds(twin, layout))  # SSSD's files, with a DirectoryService
    return HostSpec(name=name, address=address or twin.network.address(index), index=index, private=binds,
                    shared=machine.shared_folders(twin.home) + (twin.shared_run,),
                    imds=bool(entry and entry.spot))


def slurmd_alive(twin: Twin, node: str) -> bool:
    """The node's slurmd runs (its instance is up, in ParallelCluster's terms)."""
    return daemons.pid_alive(daemons.read_pid(twin.paths.slurmd_pid(node)))


def start(twin: Twin, layout: TwinLayout, entry: TwinNode, boot: bool, address: str | None = None,
          instance_id: str | None = None) -> bool:
    """Boot the node's host when it has none (with the services of its kind; at ``address``, an
    instance's, when given) and start its slurmd; ``boot``: ``slurmd -b`` reports the boot as just
    now; ``instance_id``: slurmd reports it (and the instance type), as ParallelCluster's slurmd
    service does, and clustermgtd pairs the node with its instance by it. False when it already ran."""
    if slurmd_alive(twin, entry.name):
        return False
    if not twin.hosts.alive(entry.name):
        twin.hosts.boot(host_spec(twin, entry.name, entry.index, layout, address))
        for service in twin.services:
            hook = getattr(service, "host_booted", None)
            if hook is not None:
                hook(twin, layout, entry)
    (twin.paths.spool / entry.name).mkdir(parents=True, exist_ok=True)
    instance = [f"--instance-id={instance_id}", f"--instance-type={entry.instance_type}"] if instance_id else []
    argv = twin.hosts.exec_argv(entry.name, ["slurmd", "-D", "-N", entry.name, *instance] + (["-b"] if boot else []))
    log = twin.paths.slurmd_log(entry.name)
    process = daemons.spawn(argv, log, env=twin.env())
    time.sleep(0.05)
    if process.poll() not in (None, 0):
        raise daemons.daemon_failed(f"slurmd {entry.name}", log, "exited during start-up")
    return True


def node_local(twin: Twin, name: str) -> list[Path]:
    """A host's instance storage: gone with the instance."""
    return [twin.hosts.folder(name)]


def stop(twin: Twin, node: str) -> bool:
    """End one node's host (its slurmd, jobs and node-local storage), as EC2 terminating the
    instance would."""
    slurmd = daemons.stop_pid(daemons.read_pid(twin.paths.slurmd_pid(node)), name=f"slurmd {node}", timeout=5)
    return twin.hosts.end(node, discard=node_local(twin, node)) or slurmd


def unreachable(twin: Twin, layout: TwinLayout, names: list[str], timeout_s: int = 2) -> list[str]:
    """Of these nodes (whose slurmd runs), those the head node cannot reach on slurmd's port: a host
    cut off from the network, as an instance whose network failed (its slurmd still runs)."""
    addresses = twin.addresses(layout)
    targets = [(n, addresses[n], entry.port) for n in names if (entry := layout.node(n)) is not None]
    if not targets:
        return []
    # One call on the head node tries every node at once (each within timeout_s).
    script = "".join(f"(timeout {timeout_s} bash -c ': </dev/tcp/{address}/{port}' 2>/dev/null || echo {name}) &\n"
                     for name, address, port in targets) + "wait\n"
    result = subprocess.run(twin.hosts.exec_argv(HEAD, ["bash", "-c", script]), capture_output=True, text=True,
                            timeout=timeout_s + 20, check=False)
    return sorted(set(result.stdout.split()) & set(names))


def replace_unreachable(twin: Twin, layout: TwinLayout, skip: Sequence[TwinNode],
                        progress: Callable[[str], None]) -> list[str]:
    """Replace every static node (but ``skip``, just started) the head node cannot reach; their names."""
    running = {n.name: n for n in layout.static_nodes() if n not in skip}
    replaced = unreachable(twin, layout, list(running))
    for name in replaced:
        progress(f"replacing {name}: its host does not answer on the network")
        replace(twin, layout, running[name])
    return replaced


def replace(twin: Twin, layout: TwinLayout, entry: TwinNode) -> None:
    """A new instance for a static node: its host ends (jobs, /tmp and /scratch with it) and a new
    one boots, as clustermgtd replaces an unhealthy static node. slurmd reports the boot, so
    slurmctld requeues what ran there (NODE_FAIL) if it had not already."""
    stop(twin, entry.name)
    start(twin, layout, entry, boot=True)


# Slurm's own reasons for a node whose instance failed and was replaced; an admin's drain stays.
FAILED_NODE_REASONS = ("Not responding", "Node unexpectedly rebooted")


def back_in_service(twin: Twin, names: list[str]) -> list[str]:
    """Replaced nodes take jobs again once their new slurmd answers, as after clustermgtd's
    replacement (slurmctld keeps a node that "unexpectedly rebooted" DOWN by itself). Returns
    the nodes resumed."""
    resumed = []
    for name in names:
        record = twin.slurm.node(name)
        if node_out_of_service(record.get("State", "").lower()) and \
                record.get("Reason", "").startswith(FAILED_NODE_REASONS):
            twin.slurm.update_node(name, "resume")
            resumed.append(name)
    return resumed


def stuck_powered_down(state: str) -> bool:
    """Powered down yet not idle (``mixed~``, ``alloc~``): an allocation its job no longer has."""
    return state.endswith("~") and not state.startswith(("idle", "down"))


def resume(twin: Twin, layout: TwinLayout) -> list[str]:
    """Drained or down nodes back to service: static nodes resume, dynamic ones are reset to
    powered down, as clustermgtd does."""
    resumed = []
    for node, state in twin.slurm.node_states().items():
        entry = layout.node(node)
        if entry is None:
            continue
        if entry.dynamic and (node_out_of_service(state) or stuck_powered_down(state)):
            twin.slurm.update_node(node, "power_down_force")
        elif node_out_of_service(state):
            twin.slurm.update_node(node, "resume")
        else:
            continue
        resumed.append(node)
    return resumed


def wait_static_in_service(twin: Twin, layout: TwinLayout, resume_all: Callable[[], object],
                           timeout: float = 60) -> None:
    """A fresh start: every static node takes jobs (ones a previous twin left drained or down
    are resumed, once)."""
    names = {n.name for n in layout.static_nodes()}
    if not names:
        return
    resumed = False

    def ready() -> bool:
        nonlocal resumed
        states = twin.slurm.node_states()
        if not resumed and any(node_out_of_service(s) for n, s in states.items() if n in names):
            resume_all()
            resumed = True
        return all(node_in_service(states.get(n, "unknown")) for n in names)

    daemons.wait_until(ready, name="slurmd", log_file=twin.paths.slurmd_log(min(names)), timeout=timeout,
                       interval=0.3)


def wait_responding(twin: Twin, names: list[str], timeout: float = 60) -> None:
    """A healed slurmd answers again; an admin's drain or a job on its node stays as it was."""
    if not names:
        return

    def ready() -> bool:
        states = twin.slurm.node_states()
        return all(n in states and "NOT_RESPONDING" not in node_state_flags(states[n])[1]
                   and not states[n].startswith("unk") for n in names)

    daemons.wait_until(ready, name="slurmd", log_file=twin.paths.slurmd_log(names[0]), timeout=timeout,
                       interval=0.3)


def power_down_dynamic(twin: Twin, layout: TwinLayout) -> None:
    """A fresh start is a new cluster: every dynamic node begins powered down (``idle~``)."""
    states = twin.slurm.node_states()
    stale = [n.name for n in layout.dynamic_nodes()
             if not node_powered_down(states.get(n.name, "")) or stuck_powered_down(states.get(n.name, ""))]
    for name in stale:
        stop(twin, name)
        twin.slurm.update_node(name, "power_down_force")


def has_instance_store(instance_type: str) -> bool:
    """Instance store (NVMe) on this type: the node has /scratch, as the bootstrap makes it."""
    from hpctool.configs.instances import catalog  # the catalog loads on first use only

    known = catalog()
    info = known.get(instance_type) if known is not None else None
    return bool(info and info.instance_store_gb)
