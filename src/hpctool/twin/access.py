"""Reaching the twin as a cluster is reached: the head node runs OpenSSH's sshd (the image's) with
host keys of the twin's own, and ``hpctool local ssh`` logs in there with a key the twin made for
the user; on a compute node it opens a login shell through the node's host (a cluster user would
``ssh`` from the head node).

Keys and the known-hosts file live under the twin's ``etc/ssh/``: nothing in the user's own
``~/.ssh`` is read or changed, and the host key is always checked (``StrictHostKeyChecking=yes``
against the twin's own known-hosts line).
"""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from hpctool.atomic import write_atomic
from hpctool.errors import TwinError, UsageError
from hpctool.twin import daemons

SSHD_PORT = 22


def ssh_dir(etc: Path) -> Path:
    return etc / "ssh"


def render_sshd_config(etc: Path, address: str) -> str:
    folder = ssh_dir(etc)
    return "\n".join([
        "# Written by hpctool local up: the head node's sshd.",
        f"ListenAddress {address}:{SSHD_PORT}",
        f"HostKey {folder / 'ssh_host_ed25519_key'}",
        # Keys only, the twin's own authorized keys (one file per user), never a password.
        f"AuthorizedKeysFile {folder}/authorized_keys/%u",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",  # the twin's folder is root's; its per-user files are checked by mode below
        f"PidFile {folder / 'sshd.pid'}",
        "UsePAM no",
        "X11Forwarding no",
        # ssh-audit's failures (tests/test_security.py): NIST-curve key exchange and SHA-1 MACs off,
        # removed from the defaults so a newer OpenSSH keeps its newer algorithms.
        "KexAlgorithms -ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521",
        "MACs -hmac-sha1,hmac-sha1-etm@openssh.com",
        "AllowTcpForwarding yes",
        "",
    ])


def ensure_keys(etc: Path, run_on_head) -> None:
    """The head node's host key (made once, kept across restarts, as an instance's is)."""
    folder = ssh_dir(etc)
    (folder / "authorized_keys").mkdir(parents=True, exist_ok=True)
    host_key = folder / "ssh_host_ed25519_key"
    if not host_key.exists():
        run_on_head(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "twin-head", "-f", str(host_key)])


def user_key(etc: Path, user: str, run_on_head) -> Path:
    """The twin's key for ``user`` (made on first use) and its authorized-keys entry."""
    folder = ssh_dir(etc)
    key = folder / "users" / f"id_ed25519_{user}"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run_on_head(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{user}@twin", "-f", str(key)])
    authorized = folder / "authorized_keys" / user
    public = (key.parent / f"{key.name}.pub").read_text()
    if not authorized.exists() or authorized.read_text() != public:
        write_atomic(authorized, public, mode=0o644)
    return key


def known_hosts(etc: Path, address: str) -> Path:
    folder = ssh_dir(etc)
    kind, key = (folder / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    line = f"{address} {kind} {key}\n"
    path = folder / "known_hosts"
    if not path.exists() or path.read_text() != line:
        write_atomic(path, line)
    return path


def ssh_argv(etc: Path, address: str, user: str, key: Path, command: list[str]) -> list[str]:
    argv = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known_hosts(etc, address)}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            "-p", str(SSHD_PORT), f"{user}@{address}"]
    return argv + (["--", *command] if command else [])


def sshd_answers(address: str) -> bool:
    import socket

    try:
        with socket.create_connection((address, SSHD_PORT), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def check_ssh_client() -> str:
    program = daemons.find_program("ssh")
    if program is None:
        raise TwinError("the ssh client is not installed", "run `make setup` (openssh-client)")
    return program


def run_interactive(argv: list[str]) -> int:
    """Run a login (or a command) with the caller's terminal; its exit code."""
    try:
        return subprocess.call(argv)
    except OSError as error:
        raise TwinError(f"{argv[0]} could not start: {error}", "run `make setup`") from error


def login_argv(twin, node: str | None, user: str, command: list[str]) -> list[str]:
    """What ``hpctool local ssh`` runs: ssh to the head node, or a login shell on a node's host."""
    layout = twin.layout()
    if layout is None or not twin.hosts.alive("head"):
        raise TwinError("the twin is not running", "start it with `hpctool local up`")
    require_user(twin, user)
    if node in (None, "head"):
        check_ssh_client()
        key = user_key(twin.etc, user, lambda argv: twin.hosts.run("head", argv))
        return ssh_argv(twin.etc, twin.network.address(0), user, key, command)
    if layout.node(node) is None:
        raise UsageError(f"{node} is not a node of the twin", "`hpctool local status` lists them; or give no NODE")
    if not twin.hosts.alive(node):
        raise TwinError(f"{node} is not up (its host runs only while Slurm has it powered up)",
                        "log in to a node that is up, or give a job that node")
    # As ssh does: the command's words are joined and run by the user's login shell.
    shell = ["runuser", "-l", user] + (["-c", " ".join(command)] if command else [])
    return twin.hosts.exec_argv(node, shell)


def require_user(twin, user: str) -> None:
    """A user of this machine (the twin's hosts get them) or of the twin's directory (found on
    the head node through SSSD); anyone else is a clear error."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    found = subprocess.run(twin.hosts.exec_argv("head", ["getent", "passwd", user]), capture_output=True,
                           text=True, timeout=30, check=False)
    if found.returncode != 0:
        raise UsageError(f"no user {user!r} on this machine or in the twin's directory",
                         "give an existing user with --user (`hpctool local users list` shows the directory's)")


def split_login_words(words: list[str]) -> tuple[str | None, list[str]]:
    """``[NODE] [-- COMMAND...]`` -> (NODE or None, COMMAND words)."""
    if "--" in words:
        cut = words.index("--")
        before, command = words[:cut], words[cut + 1:]
    else:
        before, command = words[:1], words[1:]
    if len(before) > 1:
        raise UsageError(f"one NODE at most, not {' '.join(before)}", "hpctool local ssh [NODE] [-- COMMAND]")
    return (before[0] if before else None), command
