"""A host made the way :class:`hpctool.twin.hosts.Hosts` makes one, without a twin: mount, network
and hostname namespaces held by a keeper, the node image as the lower layer of an overlay root,
``/proc``, ``/sys`` and ``/dev`` bound in, and folders bound at paths of our choice; two hosts can
be wired to each other (:func:`connect`, a veth pair, no bridge). For tests of what will run in
the twin's hosts (the directory) while the machine's twin is someone else's."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hpctool.polling import poll_until


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


class BareHost:
    def __init__(self, image_root: Path, folder: Path, binds: Mapping[str, Path], hostname: str = "head") -> None:
        self.image_root = image_root
        self.folder = folder
        self.binds = dict(binds)  # mount point in the host -> folder or file on the machine
        self.hostname = hostname
        self.keeper: int | None = None

    @property
    def root(self) -> Path:
        return self.folder / "root"

    def boot(self) -> None:
        for layer in ("upper", "work", "root"):
            (self.folder / layer).mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(["unshare", "--net", "--mount", "--uts", "--propagation", "private", "--",
                                    "sleep", "infinity"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.keeper = process.pid
        mine = _netns(os.getpid())
        poll_until(lambda: _netns(process.pid) not in (None, mine), timeout=5, interval=0.01,
                   on_timeout=lambda: RuntimeError("unshare made no namespaces"))
        q = shlex.quote
        root = str(self.root)
        lines = ["ip link set lo up", f"hostname {q(self.hostname)}",
                 (f"mount -t overlay overlay -o lowerdir={q(str(self.image_root))},"
                  f"upperdir={q(str(self.folder / 'upper'))},workdir={q(str(self.folder / 'work'))} {q(root)}")]
        lines += [f"mount --rbind /{d} {q(root + '/' + d)}" for d in ("proc", "sys", "dev")]
        for point, source in sorted(self.binds.items()):
            target = q(root + point)
            lines.append(f"mkdir -p {q(os.path.dirname(root + point))}")
            lines.append(f"[ -e {target} ] || touch {target}" if source.is_file() else f"mkdir -p {target}")
            lines.append(f"mount --bind {q(str(source))} {target}")
        subprocess.run(["nsenter", "-t", str(self.keeper), "-m", "-u", "-n", "--", "sh", "-euc", "\n".join(lines)],
                       check=True, capture_output=True, text=True, timeout=30)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """As ``Hosts.exec_argv``: ``argv`` in the host's namespaces with the image as root."""
        assert self.keeper is not None, "boot the host first"
        return ["nsenter", "-t", str(self.keeper), "-m", "-u", "-n", "--", "chroot", str(self.root),
                "sh", "-c", 'cd /; exec "$@"', "host-exec", *argv]

    def run(self, argv: Sequence[str], input_text: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_argv(argv), input=input_text, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def end(self) -> None:
        """Kill every process in the host's network namespace (the keeper last), as the twin ends
        a host; the mounts go with the mount namespace."""
        if self.keeper is None:
            return
        target = _netns(self.keeper)
        deadline = time.monotonic() + 10
        while target is not None and time.monotonic() < deadline:
            members = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _netns(int(p.name)) == target]
            if not members:
                break
            for pid in [p for p in members if p != self.keeper] or members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        try:
            os.waitpid(self.keeper, os.WNOHANG)
        except ChildProcessError:
            pass
        self.keeper = None


def connect(first: BareHost, second: BareHost, first_address: str, second_address: str, prefix: int = 24) -> None:
    """A veth pair between two booted hosts, ``eth0`` in each with its address: the twin's
    bridge in miniature, touching no interface of the machine's (the pair leaves it at once)."""
    assert first.keeper is not None and second.keeper is not None, "boot both hosts first"
    name = f"bh{first.keeper % 100000}"
    subprocess.run(["ip", "link", "add", f"{name}a", "netns", str(first.keeper), "type", "veth",
                    "peer", "name", f"{name}b", "netns", str(second.keeper)], check=True, capture_output=True)
    for host, end, address in ((first, f"{name}a", first_address), (second, f"{name}b", second_address)):
        script = (f"ip link set {end} name eth0 && ip addr add {address}/{prefix} dev eth0 && "
                  "ip link set eth0 up")
        subprocess.run(["nsenter", "-t", str(host.keeper), "-n", "--", "sh", "-c", script], check=True,
                       capture_output=True)
