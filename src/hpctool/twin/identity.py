"""One identity on every node of a twin whose config has ``DirectoryService``: slapd on the head
node, SSSD on every host (the head node and each compute node), as ParallelCluster sets SSSD up
on every node of a cluster with a directory, and the directory's users (``hpctool local users``)
with their Slurm associations when the cluster has accounting.

A :class:`~hpctool.twin.core.TwinService`: the core starts it after Slurm's daemons, and each
node host that boots later (a dynamic node) gets its SSSD from :meth:`IdentityService.host_booted`.
The pieces (slapd's and SSSD's files, the runners, the users) are :mod:`hpctool.twin.directory`,
:mod:`hpctool.twin.directory_run` and :mod:`hpctool.twin.directory_users`; this module plugs them
into the twin's hosts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hpctool.atomic import write_atomic
from hpctool.errors import SlurmCommandError, TwinError, UsageError
from hpctool.slurm.client import Slurm
from hpctool.twin import daemons
from hpctool.twin.conf import TwinPaths
from hpctool.twin.directory import (
    DirectorySettings,
    render_nsswitch,
    render_sssd_conf,
    settings_from_config,
)
from hpctool.twin.directory_run import (
    DirectoryFolder,
    DirectoryServer,
    expire_sssd_cache,
    start_sssd,
    stop_sssd,
)
from hpctool.twin.directory_users import AddedUser, DirectoryUsers
from hpctool.twin.head import HEAD
from hpctool.twin.hosts import Hosts, Network
from hpctool.twin.image import NodeImage, image_user
from hpctool.twin.layout import TwinLayout, TwinNode
from hpctool.twin.usernames import local_ids, local_names

NO_DIRECTORY_HINT = ("give the cluster config a DirectoryService (the values' directory: block, docs/directory.md), "
                     "then `hpctool local down` and `hpctool local up --config CLUSTER.yaml`")


class Twin(Protocol):
    home: Path
    paths: TwinPaths
    etc: Path
    run_dir: Path
    log_dir: Path
    network: Network
    hosts: Hosts
    image: NodeImage

    @property
    def slurm(self) -> Slurm: ...

    def layout(self) -> TwinLayout | None: ...


def settings(layout: TwinLayout) -> DirectorySettings:
    return settings_from_config(layout.directory)


def folder(twin: Twin) -> DirectoryFolder:
    return DirectoryFolder(twin.home / "directory")


def sssd_dir(twin: Twin) -> Path:
    return twin.etc / "sssd"


def host_binds(twin: Twin, layout: TwinLayout) -> dict[str, Path]:
    """What every host of a twin with a directory sees, besides the twin's usual files: SSSD's
    folder (a folder, so that a rewritten sssd.conf shows through), nsswitch.conf with ``sss``,
    and the twin's CA where the config tells SSSD to find the domain's."""
    if layout.directory is None:
        return {}
    prepare_host_files(twin, layout)
    return {"/etc/sssd": sssd_dir(twin), "/etc/nsswitch.conf": twin.etc / "nsswitch.conf",
            settings(layout).ca_cert: folder(twin).tls.ca_cert}


def prepare_host_files(twin: Twin, layout: TwinLayout) -> None:
    """The files a host binds at boot, before the directory runs (its CA made, sssd.conf not yet)."""
    from hpctool.twin.tls import ensure_tls

    server_folder = folder(twin)
    server_folder.root.mkdir(parents=True, exist_ok=True)
    ensure_tls(server_folder.tls, [HEAD], [twin.network.address(0)], key_owner=image_user(twin.image.root, "openldap"))
    (sssd_dir(twin) / "conf.d").mkdir(parents=True, exist_ok=True)
    sssd_dir(twin).chmod(0o711)
    nsswitch = render_nsswitch((twin.image.root / "etc" / "nsswitch.conf").read_text())
    target = twin.etc / "nsswitch.conf"
    if not target.exists() or target.read_text() != nsswitch:
        write_atomic(target, nsswitch, mode=0o644)


def server(twin: Twin, layout: TwinLayout) -> DirectoryServer:
    return DirectoryServer(folder(twin), settings(layout), lambda argv: twin.hosts.exec_argv(HEAD, argv),
                           owner=image_user(twin.image.root, "openldap"), log_file=twin.log_dir / "slapd.log")


def sssd_pid_file(twin: Twin, host: str) -> Path:
    return twin.run_dir / f"sssd-{host}.pid"


def _sssd_running(twin: Twin, host: str) -> bool:
    pid = daemons.read_pid(sssd_pid_file(twin, host))
    return daemons.pid_alive(pid) and daemons.runs_program(pid, "sssd")


def _running_hosts(twin: Twin, layout: TwinLayout) -> list[str]:
    return [name for name in [HEAD, *(n.name for n in layout.nodes)] if twin.hosts.alive(name)]


def _start_sssd(twin: Twin, host: str) -> None:
    start_sssd(lambda argv: twin.hosts.exec_argv(host, argv), twin.log_dir / f"sssd-{host}.log",
               pid_file=sssd_pid_file(twin, host))


class IdentityService:
    """The directory as a service of the twin (only when the layout has a directory)."""

    def ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]:
        return {}

    def pid_files(self, twin: Twin, layout: TwinLayout) -> dict[str, Path]:
        if layout.directory is None:
            return {}
        files = {"slapd": folder(twin).pid_file}
        files.update({f"sssd {host}": sssd_pid_file(twin, host) for host in _running_hosts(twin, layout)})
        return files

    def start(self, twin: Twin, layout: TwinLayout) -> list[str]:
        if layout.directory is None:
            return []
        started = []
        directory = server(twin, layout)
        if directory.pid() is None:
            directory.prepare([HEAD], [twin.network.address(0)])
            directory.start(twin.network.address(0))
            started.append("slapd")
        conf = render_sssd_conf(settings(layout), folder(twin).read_only_password.read_text())
        conf_file = sssd_dir(twin) / "sssd.conf"
        if not conf_file.exists() or conf_file.read_text() != conf:
            write_atomic(conf_file, conf, mode=0o600)
        for host in _running_hosts(twin, layout):
            if not _sssd_running(twin, host):
                _start_sssd(twin, host)
                started.append(f"sssd {host}")
        return started

    def stop(self, twin: Twin) -> list[str]:
        stopped = [f"sssd {path.stem[len('sssd-'):]}" for path in sorted(twin.run_dir.glob("sssd-*.pid"))
                   if stop_sssd(path)]
        layout = twin.layout()
        if layout is not None and layout.directory is not None and server(twin, layout).stop():
            stopped.append("slapd")
        return stopped

    def host_booted(self, twin: Twin, layout: TwinLayout, node: TwinNode) -> None:
        """A node's host came up: its SSSD, once the directory has made sssd.conf (at the twin's
        first start the service's own start does it after slapd)."""
        if layout.directory is not None and (sssd_dir(twin) / "sssd.conf").exists():
            _start_sssd(twin, node.name)


# -- users ------------------------------------------------------------------------------------------
@dataclass
class UserChange:
    """What `hpctool local users add|remove` did (the shape ``--json`` prints)."""

    name: str
    uid: int
    gid: int
    group: str
    home: str
    password_file: str = ""
    account: str = ""  # the Slurm account, when the cluster has accounting

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _users(twin: Twin) -> tuple[TwinLayout, DirectoryUsers]:
    layout = twin.layout()
    if layout is None:
        raise TwinError(f"no twin at {twin.home}", "start it with `hpctool local up`")
    if layout.directory is None:
        raise UsageError("this twin's cluster config has no DirectoryService: its users are the machine's",
                         NO_DIRECTORY_HINT)
    directory = server(twin, layout)
    if directory.pid() is None:
        raise TwinError("the twin's directory (slapd) is not running", "`hpctool local up` starts it")
    root = twin.image.root / "etc"
    passwd = (root / "passwd").read_text() + _read(twin.etc / "extrausers" / "passwd")
    group = (root / "group").read_text() + _read(twin.etc / "extrausers" / "group")
    return layout, DirectoryUsers(directory, reserved=local_names(passwd) | local_names(group),
                                  taken_ids=local_ids(passwd) | local_ids(group))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _expire_caches(twin: Twin, layout: TwinLayout) -> None:
    """Every running host forgets what SSSD cached, so a change shows at once everywhere."""
    for host in _running_hosts(twin, layout):
        if _sssd_running(twin, host):
            with contextlib.suppress(TwinError):  # a host ending meanwhile has nothing to forget
                expire_sssd_cache(lambda argv, host=host: twin.hosts.exec_argv(host, argv))


def list_users(twin: Twin) -> list[dict[str, Any]]:
    layout, users = _users(twin)
    listing = users.listing()
    accounts: dict[str, list[str]] = {}
    if layout.accounting:
        for row in twin.slurm.associations():
            if row.user:
                accounts.setdefault(row.user, []).append(row.account)
    return [{"name": u.name, "uid": u.uid, "gid": u.gid, "group": listing.group_of(u.gid) or "",
             "groups": sorted(g.name for g in listing.groups if u.name in g.members and g.gid != u.gid),
             "home": u.home, "accounts": sorted(accounts.get(u.name, []))} for u in listing.users]


def join_group(twin: Twin, name: str, group: str) -> bool:
    """``name`` joins ``group`` on every node (the hub's allow group, for one); its Slurm account
    stays its primary group's. False: it was a member already."""
    layout, users = _users(twin)
    joined = users.join(name, group)
    _expire_caches(twin, layout)
    return joined


def leave_group(twin: Twin, name: str, group: str) -> None:
    """``name`` leaves ``group`` on every node: a hub that allows only that group refuses it."""
    layout, users = _users(twin)
    users.leave(name, group)
    _expire_caches(twin, layout)


def add_user(twin: Twin, name: str, group: str | None = None) -> UserChange:
    """A directory user on every node, and (with accounting) a Slurm association under the
    account of its group (made when missing), whose fair share the user's jobs then count in."""
    layout, users = _users(twin)
    added: AddedUser = users.add(name, group)
    user, group_name = added.user, added.group
    _expire_caches(twin, layout)
    change = UserChange(name, user.uid, user.gid, group_name, user.home,
                        password_file=str(added.password_file))
    if layout.accounting:
        slurm = twin.slurm
        if not any(row.account == group_name and not row.user for row in slurm.associations()):
            slurm.add_account(group_name, description=f"group {group_name}")
        slurm.add_user(name, group_name, default=True)
        change.account = group_name
    return change


def remove_user(twin: Twin, name: str) -> UserChange:
    """The user leaves the directory (every node stops resolving it) and Slurm's accounting; its
    home stays, as in AD. Slurm refuses while the user has jobs: nothing changes then."""
    layout, users = _users(twin)
    listing = users.listing()
    known = next((u for u in listing.users if u.name == name), None)
    if known is None:
        raise UsageError(f"{name!r} is not a user of the twin's directory",
                         "`hpctool local users list` shows them")
    account = ""
    if layout.accounting and any(row.user == name for row in twin.slurm.associations()):
        try:
            twin.slurm.remove_user(name)
        except SlurmCommandError as error:
            raise TwinError(f"Slurm refused to remove {name}: {error.message}",
                            f"wait for {name}'s jobs to end (or scancel -u {name}), then try again") from error
        account = listing.group_of(known.gid) or ""
    removed = users.remove(name)
    _expire_caches(twin, layout)
    return UserChange(name, removed.uid, removed.gid, listing.group_of(removed.gid) or "", removed.home,
                      account=account)
