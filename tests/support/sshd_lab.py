"""Throwaway OpenSSH servers on 127.0.0.1 for tests and benchmarks of `hpctool remote`.

Everything lives under one folder: generated host keys, a user key, the authorized_keys file,
each sshd's log, and the *client* side (an ssh config with aliases and a known_hosts file), so
nothing touches the real ~/.ssh. Debian's own ``/usr/sbin/sshd`` runs for real (``-f /dev/null``
plus ``-o`` options); as root it needs ``/run/sshd``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", path.name, "-f", str(path)],
                       check=True, capture_output=True)
    return path


@dataclass
class Sshd:
    name: str
    port: int
    host_key: Path
    log: Path
    process: subprocess.Popen
    options: list[str] = field(default_factory=list)

    def known_hosts_line(self) -> str:
        kind, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def sessions(self) -> list[int]:
        """PIDs of this server's per-connection children."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def drop_connections(self) -> int:
        """Kill every open connection (the listener stays): a dropped link, as the client sees it."""
        killed = 0
        for pid in self.sessions():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        if self.process.poll() is None:
            self.drop_connections()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class SshLab:
    """sshd servers and a matching client config under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self.user_key = keygen(root / "id_user")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{self.user_key}.pub").read_text())
        self.client_config = root / "ssh_config"
        self.known_hosts = root / "known_hosts"
        self.servers: dict[str, Sshd] = {}
        self.aliases: list[str] = []
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder

    def start(self, name: str, set_env: dict[str, str] | None = None, options: list[str] | None = None,
              port: int | None = None) -> Sshd:
        host_key = keygen(self.root / f"host_{name}")
        port = port or free_port()
        log = self.root / f"sshd-{name}.log"
        argv = [SSHD, "-D", "-e", "-f", "/dev/null", "-o", f"HostKey={host_key}", "-o", f"Port={port}",
                "-o", "ListenAddress=127.0.0.1", "-o", f"AuthorizedKeysFile={self.authorized_keys}",
                "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
                "-o", "PermitRootLogin=prohibit-password", "-o", "StrictModes=no", "-o", "PidFile=none",
                "-o", "Subsystem=sftp internal-sftp", "-o", "LogLevel=VERBOSE", "-o", "MaxSessions=64",
                "-o", "MaxStartups=64"]
        if set_env:
            argv += ["-o", "SetEnv=" + " ".join(f"{k}={v}" for k, v in set_env.items())]
        for option in options or []:
            argv += ["-o", option]
        with open(log, "ab") as handle:
            process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        server = Sshd(name, port, host_key, log, process, options or [])
        self._wait_ready(server)
        self.servers[name] = server
        return server

    @staticmethod
    def _wait_ready(server: Sshd, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"sshd {server.name} exited: {server.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd {server.name} did not answer on port {server.port}")

    def alias(self, alias: str, server: Sshd, *, proxy_jump: str | None = None, identity: Path | None = None,
              user: str = "root", extra: dict[str, str] | None = None, port: int | None = None) -> None:
        """Add a ``Host alias`` block to the client config."""
        lines = [f"Host {alias}", "  HostName 127.0.0.1", f"  Port {port or server.port}", f"  User {user}",
                 f"  IdentityFile {identity or self.user_key}", "  IdentitiesOnly yes"]
        if proxy_jump:
            lines.append(f"  ProxyJump {proxy_jump}")
        lines += [f"  {k} {v}" for k, v in (extra or {}).items()]
        with open(self.client_config, "a") as handle:
            handle.write("\n".join(lines) + "\n\n")
        self.aliases.append(alias)

    def trust(self, server: Sshd) -> None:
        """Record the server's host key in the lab's known_hosts (what a first `ssh` would do)."""
        with open(self.known_hosts, "a") as handle:
            handle.write(server.known_hosts_line())

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
