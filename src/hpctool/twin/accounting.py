"""The twin's accounting: MariaDB on the head node (the stand-in for the cluster's managed
database) on a private socket, the slurmdbd database and user, and the Slurm cluster, account
and user associations (``sacctmgr``)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

from hpctool.atomic import write_atomic
from hpctool.errors import TwinError
from hpctool.slurm.client import Slurm
from hpctool.twin import daemons
from hpctool.twin.conf import CLUSTER_NAME, TwinPaths
from hpctool.twin.layout import TwinLayout

ACCOUNT = "hpctool"


class Accounting:
    def __init__(self, paths: TwinPaths, slurm: Slurm,
                 on_head: Callable[[list[str]], list[str]] = lambda argv: argv) -> None:
        self.paths = paths
        self.slurm = slurm
        self.on_head = on_head  # argv -> argv run on the head node
        self.datadir = paths.home / "mysql"
        self.socket = paths.run / "mysqld.sock"
        self.log = paths.log / "mariadbd.log"
        self.password_file = paths.etc / "db-password"

    # -- MariaDB -------------------------------------------------------------------------------
    def query(self, sql: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run SQL as MariaDB's root over the twin's private socket (no password: socket auth)."""
        try:
            argv = self.on_head(["mariadb", f"--socket={self.socket}", "-u", "root", "-N", "-B", "-e", sql])
        except TwinError as error:  # no head node: no database
            return subprocess.CompletedProcess([], 1, "", error.message)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    # B107: the default is no secret at all, not a password
    def _execute(self, sql: str, secret: str = "") -> None:  # nosec B107
        result = self.query(sql)
        if result.returncode != 0:
            # MariaDB's errors quote the statement: never let them carry the password out.
            detail = result.stderr.strip().replace(secret, "***") if secret else result.stderr.strip()
            raise daemons.daemon_failed("mariadbd", self.log, f"refused the accounting setup: {detail}")

    def database_ready(self) -> bool:
        return self.query("SELECT 1", timeout=10).returncode == 0

    def start_mariadb(self, layout: TwinLayout, progress) -> None:
        if not (self.datadir / "mysql").is_dir():
            progress("initialising MariaDB for accounting")
            daemons.run_quiet(self.on_head(["mariadb-install-db", "--user=root", f"--datadir={self.datadir}",
                                            "--auth-root-authentication-method=socket", "--skip-test-db"]),
                              timeout=120)
        progress("starting mariadbd")
        process = daemons.spawn(self.on_head(
            ["mariadbd", "--no-defaults", "--user=root",
             f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={layout.ports['MariaDB port']}", "--bind-address=127.0.0.1",
             f"--pid-file={self.paths.run / 'mariadbd.pid'}", f"--log-error={self.log}",
             "--innodb-buffer-pool-size=64M", "--skip-name-resolve"]),
            self.log,
        )
        daemons.wait_until(self.database_ready, name="mariadbd", log_file=self.log, timeout=60,
                           alive=lambda: process.poll() is None)

    def last_job_id(self) -> int:
        """The highest job id slurmdbd has recorded (0 on a new database)."""
        # B608: CLUSTER_NAME is a constant of hpctool, not input
        result = self.query(f"SELECT COALESCE(MAX(id_job), 0) FROM slurm_acct_db.{CLUSTER_NAME}_job_table")  # nosec B608
        text = result.stdout.strip()
        return int(text) if result.returncode == 0 and text.isdigit() else 0

    # -- slurmdbd ------------------------------------------------------------------------------
    def password(self) -> str:
        if not self.password_file.exists():
            write_atomic(self.password_file, secrets.token_urlsafe(24) + "\n", mode=0o600)
        return self.password_file.read_text().strip()

    def grant_slurmdbd(self) -> str:
        """The slurmdbd database and its MariaDB user; returns the user's password."""
        password = self.password()
        self._execute(
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            f"ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
            secret=password,
        )
        return password

    def slurmdbd_ready(self) -> bool:
        if not daemons.pid_alive(daemons.read_pid(self.paths.run / "slurmdbd.pid")):
            return False
        result = self.slurm.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"], check=False, timeout=10)
        return result.returncode == 0

    def ensure_associations(self, users: list[str] | None = None) -> None:
        """The twin's cluster, the ``hpctool`` account, and an association for each user."""
        clusters = self.slurm.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]).stdout.split()
        if CLUSTER_NAME not in clusters:
            self.slurm.run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME])
            self.slurm.run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"Cluster={CLUSTER_NAME}",
                            "Description=hpctool twin", "Organization=hpctool"])
        have = self.slurm.run(["sacctmgr", "-n", "-P", "show", "assoc", f"cluster={CLUSTER_NAME}",
                               "format=user"]).stdout.split()
        wanted = users if users is not None else sorted({"root", os.environ.get("USER") or "root"})
        for name in wanted:
            if name not in have:
                self.slurm.run(["sacctmgr", "-i", "add", "user", name, f"Account={ACCOUNT}",
                                f"Cluster={CLUSTER_NAME}", f"DefaultAccount={ACCOUNT}"])


def pid_file(paths: TwinPaths, daemon: str) -> Path:
    return paths.run / f"{daemon}.pid"
