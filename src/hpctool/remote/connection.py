"""The SSH connection: the one module that imports fabric (paramiko under it).

A :class:`Remote` is one SSH connection to a host alias of an OpenSSH client config
(``~/.ssh/config`` unless told otherwise): ``HostName``, ``Port``, ``User``, ``IdentityFile``,
``ProxyJump`` (a bastion, through fabric's gateway connections) and ``ProxyCommand`` (e.g. AWS SSM)
are read from it. Keys come from the agent or from files. Host keys are checked against a
known_hosts file on every hop: an unknown key is refused unless ``accept_new`` (then it is
recorded, like OpenSSH's ``StrictHostKeyChecking=accept-new``), a changed key is always refused.

Every paramiko or socket failure becomes a :class:`~hpctool.errors.RemoteError` whose hint names
the host, the key files or the agent; no key material or passphrase is ever put in a message.
File transfers of many files use OpenSSH's rsync with the same settings (:meth:`Remote.ssh_argv`):
fabric has no recursive get/put, and rsync resumes and sends only changes.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import fabric
import paramiko
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    NoValidConnectionsError,
    PasswordRequiredException,
    SSHException,
)

from hpctool.errors import RemoteError

DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_COMMAND_TIMEOUT = 120.0


@dataclass(frozen=True)
class SshSettings:
    """Where the client config and known_hosts are, and the host key policy.

    ``config`` None: ``~/.ssh/config``. ``known_hosts`` None: the config's ``UserKnownHostsFile``
    for the host, else ``~/.ssh/known_hosts``. Tests and benchmarks point both at their own files.
    """

    config: Path | None = None
    known_hosts: Path | None = None
    accept_new: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @classmethod
    def from_env(cls, *, config: str | Path | None = None, known_hosts: str | Path | None = None,
                 accept_new: bool = False) -> SshSettings:
        """Explicit values first, then ``HPCTOOL_SSH_CONFIG`` / ``HPCTOOL_KNOWN_HOSTS``."""
        config = config or os.environ.get("HPCTOOL_SSH_CONFIG") or None
        known_hosts = known_hosts or os.environ.get("HPCTOOL_KNOWN_HOSTS") or None
        return cls(config=Path(config).expanduser() if config else None,
                   known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
                   accept_new=accept_new)

    def config_path(self) -> Path:
        return self.config or Path.home() / ".ssh" / "config"


@dataclass
class Result:
    """A remote command's exit code and output."""

    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class _UnknownHostKey(SSHException):
    def __init__(self, host: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {host}")
        self.host, self.key = host, key


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown key: refuse, or with ``accept_new`` record it in the known_hosts file."""

    def __init__(self, known_hosts: Path, accept_new: bool) -> None:
        self.known_hosts, self.accept_new = known_hosts, accept_new
        self.lock = threading.Lock()

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise _UnknownHostKey(hostname, key)
        with self.lock:
            client.get_host_keys().add(hostname, key.get_name(), key)
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Appending one line is what OpenSSH does; a reader sees the old file or one more line.
            with open(self.known_hosts, "a", encoding="utf-8") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
                handle.flush()
                os.fsync(handle.fileno())


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # SHA256:..., as ssh-keygen -l shows it


class Remote:
    """One SSH connection to ``host`` (an alias of the client config). Use it as a context manager
    or call :meth:`close`; commands, SFTP and port forwards share the one connection."""

    def __init__(self, host: str, settings: SshSettings | None = None) -> None:
        self.host = host
        self.settings = settings or SshSettings()
        config_file = self.settings.config_path()
        try:
            present = config_file.is_file()
        except OSError:  # a name too long: no such file either
            present = False
        if self.settings.config is not None and not present:
            raise RemoteError(f"ssh config {config_file} does not exist", "check --ssh-config / HPCTOOL_SSH_CONFIG")
        try:
            config = fabric.Config(runtime_ssh_path=str(config_file)) if present else fabric.Config()
            self.ssh_config = paramiko.SSHConfig.from_path(str(config_file)) if present else paramiko.SSHConfig()
        except (OSError, ValueError, SSHException) as error:
            raise RemoteError(f"cannot read ssh config {config_file}: {error}", "fix the file's syntax") from error
        self._check_alias(host, config_file)
        self.options = self.ssh_config.lookup(host)
        known = self.settings.known_hosts or Path(
            os.path.expanduser(str(self.options.get("userknownhostsfile", "~/.ssh/known_hosts")).split()[0]))
        self.known_hosts = known
        self.policy = _HostKeyPolicy(known, self.settings.accept_new)
        self.connection = fabric.Connection(host, config=config,
                                            connect_timeout=int(self.settings.connect_timeout))
        self._wrapper: Path | None = None  # the OpenSSH config of ssh_argv(), made on first use
        self._hops = self._chain(self.connection)
        for hop in self._hops:
            self._secure(hop)
        self._open()

    # -- connecting -----------------------------------------------------------------------------
    def _check_alias(self, host: str, config_file: Path) -> None:
        """An unknown alias fails with a clear message, not a DNS error from deep inside."""
        patterns = {p for p in self.ssh_config.get_hostnames() if p != "*"}
        if host in patterns or any(fnmatch.fnmatch(host, p) for p in patterns if "*" in p or "?" in p):
            return
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError) as error:
            raise RemoteError(f"unknown host alias {host!r}: not in {config_file} and not a resolvable name",
                              f"add a `Host {host}` block (HostName, User, IdentityFile) to {config_file}, "
                              "or use one of: " + (", ".join(sorted(patterns)) or "(no aliases there)")) from error

    @staticmethod
    def _chain(connection: fabric.Connection) -> list[fabric.Connection]:
        hops, current = [], connection
        while isinstance(current, fabric.Connection):
            hops.append(current)
            current = current.gateway
        return hops

    def _secure(self, hop: fabric.Connection) -> None:
        """fabric accepts every host key by default; every hop checks ours instead."""
        client = hop.client
        if self.known_hosts.is_file():
            try:
                client.load_host_keys(str(self.known_hosts))
            except (OSError, SSHException) as error:
                raise RemoteError(f"cannot read known_hosts {self.known_hosts}: {error}",
                                  "fix or move the file") from error
        client.set_missing_host_key_policy(self.policy)

    def _open(self) -> None:
        # Open from the outermost gateway inwards so a failure names the hop that failed.
        for hop in reversed(self._hops):
            self._open_hop(hop)

    def _open_hop(self, hop: fabric.Connection) -> None:
        where = _describe(hop)
        try:
            hop.open()
        except _UnknownHostKey as error:
            raise RemoteError(
                f"host key of {where} is unknown ({error.key.get_name()} {fingerprint(error.key)}); refused",
                f"check the fingerprint with the host's admin, then rerun with --accept-new "
                f"(it is added to {self.known_hosts})") from None
        except BadHostKeyException as error:
            raise RemoteError(
                f"host key of {where} has CHANGED: it is now {error.key.get_name()} {fingerprint(error.key)}, "
                f"known_hosts has {fingerprint(error.expected_key)}; refused",
                f"this may be an attack; if the host was really rebuilt, remove the old key with "
                f"`ssh-keygen -R '{_known_hosts_name(hop)}' -f {self.known_hosts}`") from None
        except PasswordRequiredException:
            raise RemoteError(f"a key for {where} is encrypted and no passphrase is available",
                              f"add it to your agent (`ssh-add KEYFILE`); {_keys(hop)}") from None
        except AuthenticationException:
            raise RemoteError(f"authentication to {where} failed: no key was accepted",
                              f"{_keys(hop)}; check IdentityFile in {self.settings.config_path()} "
                              "and that the public key is in the host's authorized_keys") from None
        except NoValidConnectionsError:
            raise RemoteError(f"connection to {where} refused",
                              "is sshd running there, and are HostName/Port right? "
                              f"(`ssh -F {self.settings.config_path()} {hop.original_host}`)") from None
        except TimeoutError:
            raise RemoteError(f"connection to {where} timed out after {self.settings.connect_timeout:.0f} s",
                              "check the network path (VPN, bastion, security group allowing your address)") \
                from None
        except socket.gaierror as error:
            raise RemoteError(f"cannot resolve {hop.host} (host {hop.original_host}): {error.strerror}",
                              f"check HostName in {self.settings.config_path()}") from None
        except (SSHException, OSError, EOFError) as error:
            raise RemoteError(f"ssh to {where} failed: {_plain(error)}",
                              "check the host's sshd and the ProxyJump/ProxyCommand in your ssh config") from None

    def close(self) -> None:
        if self._wrapper is not None:
            shutil.rmtree(self._wrapper, ignore_errors=True)
            self._wrapper = None
        for hop in self._hops:
            with suppress(Exception):  # closing a dead connection is not an error
                hop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise self._dropped("the connection")
        return transport

    @property
    def address(self) -> str:
        """user@hostname:port of the host itself (two aliases, e.g. direct and via a bastion, share it)."""
        return f"{self.connection.user}@{self.connection.host}:{self.connection.port}"

    def _dropped(self, what: str) -> RemoteError:
        return RemoteError(f"connection to {self.host} dropped during {what}",
                           "run the command again: nothing was left half-written")

    # -- commands -------------------------------------------------------------------------------
    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float = DEFAULT_COMMAND_TIMEOUT, check: bool = False) -> Result:
        """Run ``command`` (a shell string, or an argv quoted for the remote shell) and wait."""
        text = command if isinstance(command, str) else shlex.join(command)
        label = text.split()[0] if text.split() else "a command"
        try:
            channel = self.transport.open_session()
            # B601: runs the command the caller built (argv lists are shlex-quoted above)
            channel.exec_command(text)  # nosec B601
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                got = False
                while channel.recv_ready():
                    out += channel.recv(65536)
                    got = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    got = True
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if not self.connection.client.get_transport().is_active():
                    raise self._dropped(f"`{label}`")
                if time.monotonic() > deadline:
                    channel.close()
                    raise RemoteError(f"`{label}` on {self.host} did not finish within {timeout:.0f} s",
                                      "the host may be overloaded; try again")
                if not got:
                    channel.status_event.wait(0.02)
            code = channel.recv_exit_status()
            channel.close()
            if code == -1:  # the channel closed without an exit status: the link went away
                raise self._dropped(f"`{label}`")
        except (SSHException, OSError, EOFError) as error:
            raise RemoteError(f"`{label}` on {self.host} failed: {_plain(error)}",
                              "the connection dropped; run the command again") from None
        result = Result(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip()
            raise RemoteError(f"`{label}` on {self.host} failed (exit {code}): {detail}",
                              "see the message above; the command ran on the remote host")
        return result

    # -- files ----------------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        try:
            return self.connection.client.open_sftp()
        except (SSHException, OSError, EOFError) as error:
            raise RemoteError(f"SFTP to {self.host} failed: {_plain(error)}",
                              "the host's sshd needs an sftp Subsystem") from None

    def put_tree(self, sources: Sequence[tuple[Path, str]]) -> int:
        """Upload local files/folders to remote paths (absolute); return the bytes sent.

        For uploads of a few files (a script, a config) SFTP over the open connection is quicker
        than starting rsync; big input folders belong on shared storage already."""
        sent = 0
        sftp = self.sftp()
        try:
            for local, remote in sources:
                if local.is_dir():
                    for path in sorted([local, *local.rglob("*")]):
                        target = remote if path == local else f"{remote}/{path.relative_to(local).as_posix()}"
                        if path.is_dir():
                            _sftp_mkdir(sftp, target)
                        elif path.is_file():
                            sftp.put(str(path), target)
                            sftp.chmod(target, path.stat().st_mode & 0o777)
                            sent += path.stat().st_size
                else:
                    sftp.put(str(local), remote)
                    sftp.chmod(remote, local.stat().st_mode & 0o777)
                    sent += local.stat().st_size
        except (SSHException, OSError, EOFError) as error:
            raise RemoteError(f"upload to {self.host} failed: {_plain(error)}",
                              "nothing was submitted; run the command again") from None
        finally:
            sftp.close()
        return sent

    def ssh_argv(self) -> list[str]:
        """OpenSSH's client with this connection's settings (for ``rsync -e``): the same config,
        the same known_hosts, keys checked strictly (this connection already vetted them).

        The settings go in a small config that includes the user's: OpenSSH hands ``-F`` (not
        ``-o``) on to the ``ssh -W`` it runs for a ProxyJump, so every hop gets them."""
        if self._wrapper is None:
            folder = Path(tempfile.mkdtemp(prefix="hpctool-ssh-"))
            lines = ["Host *", f"  UserKnownHostsFile {_ssh_quote(str(self.known_hosts))}",
                     "  StrictHostKeyChecking yes", "  BatchMode yes",
                     f"  ConnectTimeout {int(self.settings.connect_timeout)}",
                     "  ServerAliveInterval 5", "  ServerAliveCountMax 3"]
            if self.settings.config_path().is_file():
                lines.append(f"  Include {_ssh_quote(str(self.settings.config_path().resolve()))}")
            (folder / "config").write_text("\n".join(lines) + "\n")
            self._wrapper = folder
        return ["ssh", "-F", str(self._wrapper / "config")]

    # -- ports ----------------------------------------------------------------------------------
    @contextmanager
    def forward(self, remote_host: str, remote_port: int, local_port: int = 0) -> Iterator[int]:
        """Forward 127.0.0.1:``local_port`` (0: a free one) to ``remote_host:remote_port`` as seen
        from the host, through this connection (like ``ssh -L``); yields the local port."""
        port = local_port or free_port()
        with self.connection.forward_local(port, remote_port=remote_port, remote_host=remote_host,
                                           local_host="127.0.0.1"):
            yield port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _describe(hop: fabric.Connection) -> str:
    return f"{hop.original_host} ({hop.user}@{hop.host}:{hop.port})"


def _keys(hop: fabric.Connection) -> str:
    """Which keys were offered, for an authentication error (never the keys themselves)."""
    files = hop.connect_kwargs.get("key_filename") or []
    agent = "the ssh-agent" if os.environ.get("SSH_AUTH_SOCK") else "no ssh-agent (SSH_AUTH_SOCK unset)"
    listed = ", ".join(str(f) for f in files) or "no IdentityFile"
    return f"tried {listed} and {agent}"


def _sftp_mkdir(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.mkdir(path)
    except OSError:
        sftp.stat(path)  # already there is fine; anything else raises


def _known_hosts_name(hop: fabric.Connection) -> str:
    return hop.host if int(hop.port) == 22 else f"[{hop.host}]:{hop.port}"


def _ssh_quote(value: str) -> str:
    return f'"{value}"' if " " in value else value


def _plain(error: BaseException) -> str:
    """An exception as one line, without anything that could be key material."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def quote(path: str) -> str:
    """Quote a remote path for the shell, keeping a leading ``~/`` expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
