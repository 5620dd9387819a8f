"""The head node's daemons: munged, MariaDB (through :mod:`hpctool.twin.accounting`), slurmdbd,
slurmctld and sshd, each the node image's, started inside the head node's host; and the files
every host reads (slurm.conf, cgroup.conf, its hosts file)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hpctool.atomic import write_atomic
from hpctool.errors import TwinError
from hpctool.slurm.client import Slurm
from hpctool.twin import access, daemons
from hpctool.twin.accounting import Accounting
from hpctool.twin.conf import (
    HeadNode,
    TwinPaths,
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
)
from hpctool.twin.hosts import Hosts, Network
from hpctool.twin.image import NodeImage, image_user
from hpctool.twin.layout import TwinLayout


class Twin(Protocol):
    """What the head node's daemons need of the twin (:class:`hpctool.twin.core.Twin`)."""

    paths: TwinPaths
    etc: Path
    run_dir: Path
    log_dir: Path
    slurm_conf: Path
    shared_run: Path
    image: NodeImage
    network: Network
    hosts: Hosts
    accounting: Accounting
    progress: Callable[[str], None]

    @property
    def slurm(self) -> Slurm: ...

    @property
    def head(self) -> HeadNode: ...

    def addresses(self, layout: TwinLayout) -> dict[str, str]: ...

    def env(self) -> dict[str, str]: ...

HEAD = "head"  # the head node's hostname


def write_name_service(twin: Twin, layout: TwinLayout) -> None:
    """Every host knows every other by name, as a cluster's DNS answers (and nothing else:
    no name server, so a lookup of any other name fails at once)."""
    rows = ["127.0.0.1 localhost", f"{twin.network.address(0)} {HEAD}"]
    rows += [f"{address} {name}" for name, address in twin.addresses(layout).items()]
    for name, text in (("hosts", "\n".join(rows) + "\n"), ("resolv.conf", "# the twin: no name server\n")):
        path = twin.etc / name
        if not path.exists():
            write_atomic(path, text)
        elif path.read_text() != text:
            # In place, not by rename: running hosts see this file through a bind mount of its
            # inode (a node added by `local update` must be known to the others at once).
            with open(path, "r+") as handle:
                handle.write(text)
                handle.truncate()


def write_slurm_conf(twin: Twin, layout: TwinLayout) -> None:
    text = render_slurm_conf(layout, twin.paths, twin.head, twin.addresses(layout),
                             first_job_id=twin.accounting.last_job_id() + 1 if layout.accounting else 1)
    write_atomic(twin.slurm_conf, text)
    write_atomic(twin.etc / "cgroup.conf", render_cgroup_conf())


def start_munge(twin: Twin) -> None:
    twin.progress("starting munged")
    folder = twin.shared_run / "munge"
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = image_user(twin.image.root, "munge")
    os.chown(folder, uid, gid)
    # B103: a folder every host's daemons traverse; nothing secret in it
    os.chmod(folder, 0o755)  # nosec B103
    socket_path = folder / "munge.socket.2"
    # The image's daemon as its munge user, with the image's key; every host reaches its socket.
    argv = twin.hosts.exec_argv(HEAD, ["runuser", "-u", "munge", "--", "munged", "-F", f"--socket={socket_path}",
                                       f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
                                       f"--seed-file={folder / 'munged.seed'}"])
    daemons.spawn(argv, twin.log_dir / "munged.log")
    daemons.wait_until(lambda: munge_works(twin), name="munged", log_file=folder / "munged.log", timeout=10)
    pid = daemons.read_pid(folder / "munged.pid")
    if pid:
        write_atomic(twin.run_dir / "munged.pid", f"{pid}\n")


def munge_works(twin: Twin) -> bool:
    socket_path = twin.shared_run / "munge" / "munge.socket.2"
    if not twin.hosts.alive(HEAD) or not socket_path.exists():
        return False
    try:
        check = f"munge -n -S {socket_path} | unmunge -S {socket_path}"
        result = subprocess.run(twin.hosts.exec_argv(HEAD, ["sh", "-c", check]),
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired, TwinError):
        return False
    return result.returncode == 0


def start_slurmdbd(twin: Twin, layout: TwinLayout) -> None:
    password = twin.accounting.grant_slurmdbd()
    # Holds the database password: readable by root only.
    write_atomic(twin.paths.dbd_conf, render_slurmdbd_conf(layout, twin.paths, password, twin.head), mode=0o600)
    twin.progress("starting slurmdbd")
    log = twin.log_dir / "slurmdbd.log"
    process = daemons.spawn(twin.hosts.exec_argv(HEAD, ["slurmdbd", "-D"]), log, env=twin.env())
    daemons.wait_until(twin.accounting.slurmdbd_ready, name="slurmdbd", log_file=log, timeout=30,
                       alive=lambda: process.poll() is None)
    twin.accounting.ensure_associations()


def start_slurmctld(twin: Twin) -> None:
    log = twin.log_dir / "slurmctld.log"
    twin.progress("starting slurmctld")
    # Warm start: job ids and jobs go on from the saved state (a healed controller keeps them).
    process = daemons.spawn(twin.hosts.exec_argv(HEAD, ["slurmctld", "-D", "-i"]), log, env=twin.env())
    daemons.wait_until(twin.slurm.ping, name="slurmctld", log_file=log, timeout=30,
                       alive=lambda: process.poll() is None)


def sshd_alive(twin: Twin) -> bool:
    # OpenSSH 10's listener renames itself ("sshd: /usr/sbin/sshd ... [listener]"): ask it instead.
    pid = daemons.read_pid(twin.run_dir / "sshd.pid")
    return daemons.pid_alive(pid) and access.sshd_answers(twin.network.address(0))


def start_sshd(twin: Twin) -> None:
    """The head node's sshd (the image's OpenSSH), keys only, on the head node's address."""
    def on_head(argv: list[str]) -> None:
        twin.hosts.run(HEAD, argv)

    access.ensure_keys(twin.etc, on_head)
    config = access.ssh_dir(twin.etc) / "sshd_config"
    write_atomic(config, access.render_sshd_config(twin.etc, twin.network.address(0)), mode=0o600)
    twin.hosts.run(HEAD, ["mkdir", "-p", "/run/sshd"])
    log = twin.log_dir / "sshd.log"
    process = daemons.spawn(twin.hosts.exec_argv(HEAD, ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]), log)
    daemons.wait_until(lambda: access.sshd_answers(twin.network.address(0)), name="sshd", log_file=log,
                       timeout=15, alive=lambda: process.poll() is None)
    write_atomic(twin.run_dir / "sshd.pid", f"{process.pid}\n")
