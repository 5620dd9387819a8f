"""The check of Slurm accounting: a Slurm cluster without it, and its ``SlurmSettings.Database``.

Without ``Database`` or ``ExternalSlurmdbd`` ParallelCluster sets up no slurmdbd, and every
``sacct`` answers "Slurm accounting storage is disabled": what hpctool reads job states and
history from stops working. The Database fields are checked as ParallelCluster's schema and
validators take them (``DatabaseSchema``, ``DatabaseUriValidator``, ``PasswordSecretArnValidator``),
offline: the ARN's region against the cluster's, nothing looked up.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from hpctool.configs.checks.registry import Config, Issue, as_dict, check
from hpctool.configs.checks.secret_arn import example_arn, secret_arn_issues
from hpctool.configs.findings import ERROR, INFO, WARNING, NotChecked

DATABASE = "Scheduling.SlurmSettings.Database"
DEFAULT_PORT = 3306  # ParallelCluster's (and MySQL's) default when Uri has no port
# ParallelCluster's DatabaseSchema: DatabaseName ^[0-9a-z_]+$, 1 to 64 characters.
DATABASE_NAME_RE = re.compile(r"^[0-9a-z_]{1,64}$")
MYSQL_USER_MAX = 32  # MySQL 5.7.8+ user names
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

WHAT_BREAKS = ("`hpctool cost jobs`, `hpctool report --since` and any job history will not work, and "
               "`hpctool submit --wait`, `hpctool jobs` and the Snakemake profile's job status checks fall back to "
               "squeue, which forgets a job MinJobAge (300 s) after it ends")
FIX = ("deploy the accounting database (`hpctool config database-template`, docs/accounting.md) and set "
       "accounting.database_uri, accounting.password_secret_arn and accounting.head_node_security_group_id in "
       "the values, or set Scheduling.SlurmSettings.Database (Uri, UserName, PasswordSecretArn) in the config")


@check("accounting")
def accounting(config: Config) -> Iterator[Issue | NotChecked]:
    scheduling = as_dict(config.get("Scheduling"))
    if scheduling.get("Scheduler", "slurm") != "slurm":
        return  # AWS Batch keeps its own job history
    database = config.slurm_settings.get("Database")
    external = config.slurm_settings.get("ExternalSlurmdbd")
    if database is None and external is None:
        yield Issue(WARNING, DATABASE, "no Slurm accounting (SlurmSettings.Database): ParallelCluster sets up no "
                    "slurmdbd and sacct answers 'Slurm accounting storage is disabled', so " + WHAT_BREAKS, FIX)
        return
    if database is not None and external is not None:
        yield Issue(ERROR, DATABASE, "Database and ExternalSlurmdbd are both set; ParallelCluster takes one",
                    "keep Database (slurmdbd on the head node) or ExternalSlurmdbd (a slurmdbd of your own)")
    if database is None:
        return
    if not isinstance(database, dict):
        yield Issue(ERROR, DATABASE, "Database is not a mapping", "give Uri, UserName and PasswordSecretArn")
        return
    yield from _uri(database.get("Uri"))
    yield from _user(database.get("UserName"))
    yield from _secret(database.get("PasswordSecretArn"), config.region)
    yield from _name(database)
    yield NotChecked("hpctool:accounting", "that the database at Database.Uri answers from the head node and the "
                     "secret is readable: needs your account (the database's security group must admit the head "
                     "node's)")


def _uri(uri: object) -> Iterator[Issue]:
    path = f"{DATABASE}.Uri"
    if not isinstance(uri, str) or not uri.strip():
        yield Issue(ERROR, path, "Database.Uri is missing", "give the database as host:port (the stack's Uri output)")
        return
    if uri.startswith("/"):
        yield Issue(ERROR, path, f"Uri {uri!r} starts with '/'", "give host:port, without a leading '/'")
        return
    if "://" in uri:
        yield Issue(ERROR, path, f"Uri {uri!r} has a scheme ({uri.split('://')[0]}://)",
                    "give host:port only, e.g. db.example.internal:3306")
        return
    if any(c in uri for c in "/?#@ "):
        yield Issue(ERROR, path, f"Uri {uri!r} is not host:port (it has a path, user or query part)",
                    "give host:port only; the database's name goes in Database.DatabaseName")
        return
    if uri.startswith("["):  # [IPv6]:port
        host, _, rest = uri[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest and "?"  # text after ']' that is no ':port'
    else:
        host, _, port = uri.partition(":")
    if not _is_host(host):
        yield Issue(ERROR, path, f"Uri {uri!r}: {host!r} is not a host name or IP address",
                    "give host:port, e.g. the RDS endpoint and 3306")
        return
    if not port:
        yield Issue(INFO, path, f"Uri {uri!r} has no port: ParallelCluster assumes {DEFAULT_PORT}",
                    f"write it as {host}:{DEFAULT_PORT} to say so")
    elif not port.isdigit() or not 0 < int(port) < 65536:
        yield Issue(ERROR, path, f"Uri {uri!r}: port {port!r} is not a number from 1 to 65535",
                    f"give host:port, e.g. {host}:{DEFAULT_PORT}")


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return 0 < len(host) <= 253 and all(HOST_LABEL_RE.match(label) for label in labels) \
        and not labels[-1].isdigit()  # 10.0.0.300 is no address, nor a name


def _user(user: object) -> Iterator[Issue]:
    path = f"{DATABASE}.UserName"
    if not isinstance(user, str) or not user:
        yield Issue(ERROR, path, "Database.UserName is missing", "give the database user slurmdbd connects as "
                    "(the stack's UserName output)")
    elif len(user) > MYSQL_USER_MAX:
        yield Issue(ERROR, path, f"UserName {user!r} is {len(user)} characters; MySQL allows {MYSQL_USER_MAX}",
                    "use a shorter database user")


def _secret(arn: object, region: str | None) -> Iterator[Issue]:
    yield from secret_arn_issues(
        f"{DATABASE}.PasswordSecretArn", "Database.PasswordSecretArn", arn, region,
        missing_hint=f"give the ARN of the secret holding the password ({example_arn(region)}; the stack's "
                     "PasswordSecretArn output)",
        region_hint="the head node reads the secret in the cluster's region: deploy the database stack there, or "
                    "replicate the secret and give the replica's ARN")


def _name(database: dict) -> Iterator[Issue]:
    path = f"{DATABASE}.DatabaseName"
    if "DatabaseName" not in database:
        yield Issue(INFO, path, "no DatabaseName: ParallelCluster names the database after the cluster, so a "
                    "replacement cluster of another name starts with an empty job history",
                    "set DatabaseName (e.g. slurm_acct_db) to keep the history across cluster replacements")
        return
    name = database["DatabaseName"]
    if not isinstance(name, str) or not DATABASE_NAME_RE.match(name):
        yield Issue(ERROR, path, f"DatabaseName {name!r} must be 1 to 64 lowercase letters, digits or underscores "
                    "(ParallelCluster's rule)", "e.g. slurm_acct_db")
