"""Hosts of the twin: the head node and every compute node are hosts of their own on this one
machine, as instances are on EC2.

A host is a set of Linux namespaces held open by a *keeper* process (``sleep infinity``): its own
network (an address on the twin's bridge, its own loopback), mount table and hostname. Its root is
an overlay of the node image (read-only, shared by all hosts) and a layer of its own, as an
instance has a root volume of its own made from the AMI: what a job writes to ``/tmp`` or anywhere
outside the shared folders stays on that host. On instance types with instance store it has
``/scratch``; the shared folders are bound in at their own paths. Everything that runs on the host (slurmd, the jobs under it, the IMDS emulator of a
spot node) is started inside those namespaces with ``nsenter`` and ``chroot`` into the image.
Ending a host kills every process in its network namespace and discards its node-local storage,
as a terminated instance loses its disks.

We build hosts from ``unshare``/``nsenter``/``ip`` ourselves because no packaged tool here starts
a process tree in a prepared root with namespaces of our choosing without a container engine
(none runs on these machines).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hpctool.errors import SetupError, TwinError
from hpctool.polling import poll_until
from hpctool.twin import daemons

KEEPER = ("sleep", "infinity")
# The address EC2's instance metadata service answers at; only spot nodes' hosts have it.
IMDS_ADDRESS = "169.254.169.254"


@dataclass(frozen=True)
class Network:
    """The twin's bridge and subnet (a /24 of its own; the machine's end is ``.1``)."""

    bridge: str
    subnet: str

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet)[1])

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def address(self, index: int) -> str:
        """The address of host number ``index`` (0 is the head node)."""
        network = ipaddress.ip_network(self.subnet)
        if not 0 <= index < network.num_addresses - 12:
            raise SetupError(f"the twin's subnet {self.subnet} has no address for host {index}",
                             "use fewer nodes (--max-dynamic, --static)")
        return str(network[10 + index])


def plan_network(home: Path) -> Network:
    """Bridge name and subnet from the twin's home folder: two twins on one machine get two."""
    digest = hashlib.sha256(str(home.resolve()).encode()).digest()
    return Network(bridge=f"hpct-{digest.hex()[:6]}", subnet=f"10.{200 + digest[0] % 50}.{digest[1]}.0/24")


@dataclass(frozen=True)
class HostSpec:
    """What one host is made of."""

    name: str
    address: str
    index: int
    private: dict[str, Path] = field(default_factory=dict)  # mount point in the host -> its folder
    shared: tuple[Path, ...] = ()  # machine folders seen at the same path on every host
    imds: bool = False  # the host answers at 169.254.169.254 (spot nodes)


def _run(argv: Sequence[str], what: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} is not installed ({what})", "run `make setup` (iproute2, util-linux)") from exc
    except subprocess.TimeoutExpired as exc:
        raise TwinError(f"{what}: {argv[0]} did not finish in {timeout:.0f} s", "see the twin's logs") from exc
    if result.returncode != 0:
        raise TwinError(f"{what} failed: {(result.stderr or result.stdout).strip()[-400:]}",
                        "the twin needs root with network and mount namespaces (unshare, ip); "
                        "inside a container, run it with --privileged")
    return result


class Hosts:
    """The hosts of one twin: keepers' PID files under ``run_dir``, the image at ``root``."""

    def __init__(self, root: Path, run_dir: Path, network: Network, hosts_dir: Path | None = None) -> None:
        self.root = root  # the node image
        self.run_dir = run_dir
        self.network = network
        self.hosts_dir = hosts_dir if hosts_dir is not None else run_dir.parent / "hosts"

    def folder(self, name: str) -> Path:
        """The host's own disk: its root layer and node-local storage (deleted when it ends)."""
        return self.hosts_dir / name

    def host_root(self, name: str) -> Path:
        return self.folder(name) / "root"

    # -- the bridge --------------------------------------------------------------------------
    def ensure_bridge(self) -> None:
        net = self.network
        if Path(f"/sys/class/net/{net.bridge}").exists():
            return
        self._check_subnet_free()
        _run(["ip", "link", "add", net.bridge, "type", "bridge"], f"creating the twin's bridge {net.bridge}")
        _run(["ip", "addr", "add", f"{net.gateway}/{net.prefix}", "dev", net.bridge], "addressing the bridge")
        _run(["ip", "link", "set", net.bridge, "up"], "starting the bridge")

    def remove_bridge(self) -> bool:
        if not Path(f"/sys/class/net/{self.network.bridge}").exists():
            return False
        _run(["ip", "link", "del", self.network.bridge], f"removing the bridge {self.network.bridge}")
        return True

    def _check_subnet_free(self) -> None:
        """Another interface in our subnet (another twin, or this machine's own network) is an
        error, not something to share."""
        ours = ipaddress.ip_network(self.network.subnet)
        listing = _run(["ip", "-o", "-4", "addr", "show"], "listing the machine's addresses").stdout
        for line in listing.splitlines():
            words = line.split()
            if "inet" in words:
                address = ipaddress.ip_interface(words[words.index("inet") + 1])
                if address.network.overlaps(ours):
                    raise SetupError(f"{words[1]} already has {address}, in the twin's subnet {ours}",
                                     "another twin or network uses it: stop that twin, or use another HPCTOOL_HOME")

    # -- hosts -------------------------------------------------------------------------------
    def keeper_pid_file(self, name: str) -> Path:
        return self.run_dir / f"host-{name}.pid"

    def keeper(self, name: str) -> int | None:
        """The keeper's PID while the host exists (a PID that now runs something else: None)."""
        pid = daemons.read_pid(self.keeper_pid_file(name))
        if pid and daemons.pid_alive(pid) and daemons.runs_program(pid, KEEPER[0]):
            return pid
        return None

    def alive(self, name: str) -> bool:
        return self.keeper(name) is not None

    def boot(self, spec: HostSpec) -> int:
        """Create the host (its keeper, address, mounts and hostname); returns the keeper's PID.
        An existing host is kept as it is."""
        pid = self.keeper(spec.name)
        if pid is not None:
            return pid
        self.ensure_bridge()
        for layer in ("upper", "work", "root"):
            (self.folder(spec.name) / layer).mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(["unshare", "--net", "--mount", "--uts", "--propagation", "private", "--",
                                    *KEEPER], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        pid = process.pid
        try:
            poll_until(lambda: _in_own_netns(pid), timeout=5, interval=0.01,
                       on_timeout=lambda: TwinError(f"host {spec.name}: its namespaces were not made",
                                                    "the twin needs root with network and mount namespaces"))
            self._wire(spec, pid)
            _run(["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "sh", "-euc", self._setup_script(spec)],
                 f"setting up host {spec.name}")
        except BaseException:
            _kill_netns(pid)
            raise
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._address_file(spec.name).write_text(f"{spec.address}\n")
        (self.keeper_pid_file(spec.name)).write_text(f"{pid}\n")
        return pid

    def _address_file(self, name: str) -> Path:
        return self.run_dir / f"host-{name}.address"

    def address(self, name: str) -> str | None:
        """The address the host was booted at (an instance's may differ from its node's plan)."""
        try:
            return self._address_file(name).read_text().strip() or None
        except OSError:
            return None

    def link(self, index: int) -> str:
        """The machine's end of host ``index``'s link on the bridge (down: the host is cut off)."""
        return f"{self.network.bridge[:10]}-{index}"

    def _wire(self, spec: HostSpec, pid: int) -> None:
        veth = self.link(spec.index)
        if Path(f"/sys/class/net/{veth}").exists():  # left by a host that died uncleanly
            try:
                _run(["ip", "link", "del", veth], f"removing the old link of host {spec.name}")
            except TwinError:
                # The kernel removes the link itself once the ended host's namespace is gone.
                if Path(f"/sys/class/net/{veth}").exists():
                    raise
        # The same MAC for the same address: a host that ends and boots again (a replaced
        # instance) is reachable at once, with no stale neighbour entry on the bridge or the hosts.
        mac = "02:00:" + ":".join(f"{int(octet):02x}" for octet in spec.address.split("."))
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "address", mac, "netns", str(pid)],
             f"connecting host {spec.name} to the bridge")
        _run(["ip", "link", "set", veth, "master", self.network.bridge, "up"], f"connecting host {spec.name}")

    def _setup_script(self, spec: HostSpec) -> str:
        root = str(self.host_root(spec.name))
        own = self.folder(spec.name)
        q = shlex.quote
        lines = [
            "ip link set lo up",
            f"ip addr add {spec.address}/{self.network.prefix} dev eth0",
            # No default route: a host reaches the twin's subnet and nothing else.
            "ip link set eth0 up",
            f"hostname {q(spec.name)}",
        ]
        if spec.imds:
            lines.append(f"ip addr add {IMDS_ADDRESS}/32 dev lo")
        lines.append(f"mount -t overlay overlay -o lowerdir={q(str(self.root))},upperdir={q(str(own / 'upper'))},"
                     f"workdir={q(str(own / 'work'))} {q(root)}")
        for folder in ("proc", "sys", "dev"):
            lines.append(f"mount --rbind /{folder} {q(root + '/' + folder)}")
        # Node-local storage first, so a shared folder below it shows through.
        for mount_point, source in sorted(spec.private.items()):
            target = q(root + mount_point)
            if source.is_file():
                lines.append(f"[ -e {target} ] || {{ mkdir -p {q(str(Path(root + mount_point).parent))}; touch {target}; }}")
            else:
                lines.append(f"mkdir -p {q(str(source))} {target}")
            lines.append(f"mount --bind {q(str(source))} {target}")
        for path in sorted(spec.shared, key=lambda p: len(p.parts)):
            target = root + str(path)
            lines += [f"mkdir -p {q(target)}", f"mount --bind {q(str(path))} {q(target)}"]
        return "\n".join(lines) + "\n"

    def exec_argv(self, name: str, argv: Sequence[str], cwd: str = "/") -> list[str]:
        """``argv`` run on host ``name`` (in its namespaces, with the image as root)."""
        pid = self.keeper(name)
        if pid is None:
            raise TwinError(f"host {name} is not running", "`hpctool local up` starts the twin's hosts")
        return ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "chroot", str(self.host_root(name)),
                "sh", "-c", f'cd {shlex.quote(cwd)} 2>/dev/null || cd /; exec "$@"', "host-exec", *argv]

    def run(self, name: str, argv: Sequence[str], *, timeout: float = 30,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command on host ``name`` to completion; TwinError with its output on failure."""
        return daemons.run_quiet(self.exec_argv(name, argv), timeout=timeout, input_text=input_text)

    def end(self, name: str, discard: Sequence[Path] = ()) -> bool:
        """Terminate the host: every process in it is killed; ``discard`` folders are deleted."""
        pid = self.keeper(name)
        self.keeper_pid_file(name).unlink(missing_ok=True)
        ended = pid is not None and _kill_netns(pid)
        for folder in discard:
            shutil.rmtree(folder, ignore_errors=True)
        return ended

    def shutdown(self, name: str, grace_s: float = 15, discard: Sequence[Path] = ()) -> bool:
        """End the host as an OS shutdown does: SIGTERM to every process (slurmctld saves its state,
        MariaDB flushes), SIGKILL after ``grace_s`` to what is left, then :meth:`end`."""
        pid = self.keeper(name)
        if pid is None:
            return False
        members = [p for p in _netns_members(pid) if p != pid]
        for member in members:
            try:
                os.kill(member, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(daemons.pid_alive(p) for p in members):
            time.sleep(0.1)
        return self.end(name, discard)

    def processes(self, name: str) -> list[int]:
        pid = self.keeper(name)
        return _netns_members(pid) if pid else []


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _in_own_netns(pid: int) -> bool:
    mine = _netns(os.getpid())
    theirs = _netns(pid)
    return theirs is not None and theirs != mine and daemons.runs_program(pid, KEEPER[0])


def _netns_members(pid: int) -> list[int]:
    target = _netns(pid)
    if target is None:
        return []
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _netns(int(entry.name)) == target:
            members.append(int(entry.name))
    return members


def _kill_netns(pid: int, timeout: float = 10) -> bool:
    """SIGKILL every process in ``pid``'s network namespace until none is left (an instance that
    is gone leaves nothing behind). The keeper goes last: it holds the namespace's identity."""
    target = _netns(pid)
    if target is None or target == _netns(os.getpid()):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = _netns_members(pid) if _netns(pid) == target else []
        others = [p for p in members if p != pid]
        for member in others or members:
            try:
                os.kill(member, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not members:
            return True
        time.sleep(0.05)
    return True
