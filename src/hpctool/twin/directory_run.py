"""Running the twin's directory: slapd on the head node, SSSD on a node host.

Nothing here knows the twin's hosts: every command goes through a callable that turns an argv
into the argv that runs it on the host (``Twin.hosts.exec_argv(HEAD, argv)`` on the twin, as
:mod:`hpctool.twin.accounting` does for MariaDB), so the same code runs slapd in a host of the
twin or in any namespace + chroot of the node image. The directory's folder must be seen at the
same path on the machine and on the head node (the twin's folder is shared with every host).

slapd listens on ldaps:// only (the head node's address, for SSSD on every node) and on
ldapi:// (a socket in the folder, for root on the head node, which slapd maps to the rootdn):
there is no ldap:// listener to send a password to in clear text.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hpctool.atomic import write_atomic
from hpctool.errors import SetupError, TwinError
from hpctool.twin import daemons
from hpctool.twin.directory import (
    DirectorySettings,
    SlapdPaths,
    render_base_tree,
    render_slapd_config,
)
from hpctool.twin.tls import TlsFiles, ensure_tls

OnHost = Callable[[list[str]], list[str]]  # argv -> the argv that runs it on the host
SOCKET_MAX = 107  # sun_path's size on Linux, less its terminating NUL


@dataclass(frozen=True)
class DirectoryFolder:
    """The directory's files (one folder of the twin, on the machine and the head node alike)."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "slapd.d"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.root / "tls")

    @property
    def socket(self) -> Path:
        """ldapi://, in a folder only root may enter: another user on the head node connecting
        with SASL EXTERNAL would be an authenticated user of the directory."""
        return self.root / "run" / "ldapi"

    @property
    def pid_file(self) -> Path:
        return self.root / "slapd.pid"

    @property
    def log(self) -> Path:
        return self.root / "slapd.log"

    @property
    def read_only_password(self) -> Path:
        return self.root / "read-only-password"

    @property
    def passwords(self) -> Path:
        """Each directory user's password (for the notebook hub), one file each, mode 0600."""
        return self.root / "passwords"

    @property
    def ldapi_uri(self) -> str:
        return "ldapi://" + quote(str(self.socket), safe="")

    def slapd_paths(self) -> SlapdPaths:
        tls = self.tls
        return SlapdPaths(data_dir=str(self.data_dir), ca_cert=str(tls.ca_cert),
                          server_cert=str(tls.server_cert), server_key=str(tls.server_key))


def _chown_tree(path: Path, owner: tuple[int, int]) -> None:
    os.chown(path, *owner)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), *owner, follow_symlinks=False)


class DirectoryServer:
    """slapd on the head node, for one twin's directory folder."""

    def __init__(self, folder: DirectoryFolder, settings: DirectorySettings, on_head: OnHost,
                 owner: tuple[int, int], log_file: Path | None = None) -> None:
        self.folder = folder
        self.settings = settings
        self.on_head = on_head
        self.owner = owner  # the image's openldap (uid, gid)
        self.log = log_file or folder.log  # the twin: log/slapd.log, beside its other daemons

    # -- the LDAP tools, as root over ldapi:// --------------------------------------------------
    def tool(self, program: str, args: Sequence[str], input_text: str | None = None,
             check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``ldapsearch``, ``ldapadd``, ... as the rootdn (SASL EXTERNAL over the socket)."""
        argv = self.on_head([program, "-Q", "-Y", "EXTERNAL", "-H", self.folder.ldapi_uri, *args])
        if check:
            return daemons.run_quiet(argv, timeout=timeout, input_text=input_text)
        return subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def ready(self) -> bool:
        try:
            return self.tool("ldapwhoami", [], check=False, timeout=10).returncode == 0
        except (subprocess.TimeoutExpired, TwinError):
            return False

    def pid(self) -> int | None:
        pid = daemons.read_pid(self.folder.pid_file)
        return pid if pid and daemons.pid_alive(pid) and daemons.runs_program(pid, "slapd") else None

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self, names: Sequence[str], addresses: Sequence[str] = ()) -> bool:
        """The certificates (for the head node's ``names`` and ``addresses``), the cn=config tree
        and the base tree, made once; True when the directory was new. A folder made for another
        domain is an error: its users belong to that one."""
        if len(str(self.folder.socket)) > SOCKET_MAX:
            raise SetupError(f"the directory's socket path {self.folder.socket} is longer than {SOCKET_MAX} bytes",
                             "use a shorter HPCTOOL_HOME")
        self.folder.root.mkdir(parents=True, exist_ok=True)
        # B103: slapd, once it is openldap, traverses it to its config and data; the secrets in
        # it are files of mode 0600 and the socket's folder is root's alone
        os.chmod(self.folder.root, 0o755)  # nosec B103
        self.folder.socket.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.folder.socket.parent, 0o700)
        ensure_tls(self.folder.tls, names, addresses, key_owner=self.owner)
        stamp = self.folder.root / "base-dn"
        if stamp.exists():
            made_for = stamp.read_text().strip()
            if made_for.lower() != self.settings.base_dn.lower():
                raise TwinError(f"the twin's directory holds {made_for}, not {self.settings.base_dn} "
                                "(the config's DirectoryService.DomainName changed)",
                                "`hpctool local down --purge` forgets it (and its users)")
        config = render_slapd_config(self.settings, self.folder.slapd_paths())
        config_file = self.folder.root / "config.ldif"
        new = not stamp.exists()
        if new:
            # A new tree: passwords set in an older one mean nothing to it.
            self.folder.read_only_password.unlink(missing_ok=True)
            shutil.rmtree(self.folder.passwords, ignore_errors=True)
            shutil.rmtree(self.folder.data_dir, ignore_errors=True)
            self.folder.data_dir.mkdir(mode=0o700)  # slapadd -n0 checks olcDbDirectory exists
        if new or not config_file.exists() or config_file.read_text() != config:
            # cn=config is rebuilt whole from its LDIF (an hpctool upgrade, a moved folder); the
            # data, the users, stay. Never under a running slapd: it holds the old one.
            if self.pid() is not None:
                raise TwinError("slapd's configuration changed while it runs",
                                "`hpctool local down`, then `hpctool local up` starts it with the new one")
            write_atomic(config_file, config, mode=0o644)
            shutil.rmtree(self.folder.config_dir, ignore_errors=True)
            self.folder.config_dir.mkdir(mode=0o750)
            daemons.run_quiet(self.on_head(["slapadd", "-n0", "-F", str(self.folder.config_dir),
                                            "-l", str(config_file)]), timeout=60)
        if new:
            base_file = self.folder.root / "base.ldif"
            write_atomic(base_file, render_base_tree(self.settings), mode=0o644)
            daemons.run_quiet(self.on_head(["slapadd", "-n1", "-F", str(self.folder.config_dir),
                                            "-l", str(base_file)]), timeout=60)
        _chown_tree(self.folder.config_dir, self.owner)
        _chown_tree(self.folder.data_dir, self.owner)
        if new:
            write_atomic(stamp, self.settings.base_dn + "\n")
        return new

    # -- the daemon -----------------------------------------------------------------------------
    def start(self, address: str, port: int = 636, timeout: float = 30) -> int:
        """slapd in the foreground of a detached session, as the image's ``openldap`` user;
        returns its PID. A running one is kept. The read-only user gets its password at the
        first start."""
        running = self.pid()
        if running is not None:
            return running
        self.folder.socket.unlink(missing_ok=True)  # left by a killed slapd: it would refuse to bind
        listen = f"ldaps://{address}:{port}/ {self.folder.ldapi_uri}"
        # -d keeps slapd in the foreground (its PID is the one we spawn) and sends its log (the
        # "stats" level: connections, binds, operations; never passwords) to the log file.
        argv = self.on_head(["slapd", "-d", "stats", "-F", str(self.folder.config_dir), "-h", listen,
                             "-u", "openldap", "-g", "openldap"])
        process = daemons.spawn(argv, self.log)
        try:
            daemons.wait_until(self.ready, name="slapd", log_file=self.log, timeout=timeout,
                               alive=lambda: process.poll() is None)
        except TwinError:
            process.kill()  # one that hangs in its start would hold the port for the next try
            raise
        write_atomic(self.folder.pid_file, f"{process.pid}\n")
        if not self.folder.read_only_password.exists():
            self.set_password(self.settings.read_only_dn, self.folder.read_only_password)
        return process.pid

    def stop(self) -> bool:
        stopped = daemons.stop_pid(self.pid(), name="slapd")
        self.folder.pid_file.unlink(missing_ok=True)
        return stopped

    def set_password(self, dn: str, password_file: Path) -> str:
        """A new random password for ``dn``, written to ``password_file`` (mode 0600) and set with
        the password-modify operation, so slapd stores only its argon2 hash. Returns it; callers
        must never print it."""
        password = secrets.token_urlsafe(18)
        write_atomic(password_file, password, mode=0o600)  # no newline: ldappasswd -T takes it all
        self.tool("ldappasswd", ["-T", str(password_file), dn])
        return password


# -- SSSD on a host ---------------------------------------------------------------------------------
SSSD_CONF = "/etc/sssd/sssd.conf"


def sssd_argv(config: str = SSSD_CONF) -> list[str]:
    """SSSD's monitor in the foreground (``-i``), logging to stderr (no journal in a host)."""
    return ["sssd", "-i", "--logger=stderr", "-c", config]


def start_sssd(on_host: OnHost, log_file: Path, pid_file: Path | None = None,
               timeout: float = 30) -> subprocess.Popen:
    """Start SSSD on a host whose ``/etc/sssd/sssd.conf`` (mode 0600, root's) is in place; return
    when its NSS responder answers (its PID in ``pid_file``, when given, for :func:`stop_sssd`)."""
    process = daemons.spawn(on_host(sssd_argv()), log_file)
    if pid_file is not None:
        write_atomic(pid_file, f"{process.pid}\n")

    def answering() -> bool:
        return subprocess.run(on_host(["test", "-S", "/var/lib/sss/pipes/nss"]), capture_output=True,
                              check=False, timeout=10).returncode == 0

    daemons.wait_until(answering, name="sssd", log_file=log_file, timeout=timeout,
                       alive=lambda: process.poll() is None)
    return process


def stop_sssd(pid_file: Path) -> bool:
    """Stop the SSSD a PID file names (its monitor ends its responders and providers)."""
    stopped = daemons.stop_pid(daemons.read_pid(pid_file), name="sssd")
    pid_file.unlink(missing_ok=True)
    return stopped


def expire_sssd_cache(on_host: OnHost) -> None:
    """Forget what SSSD cached on a host (a removed user stops resolving at once, not after
    ``entry_cache_timeout``)."""
    daemons.run_quiet(on_host(["sss_cache", "-E"]), timeout=30)
