"""Which user and group names the twin's directory accepts.

A name must work everywhere the user shows up: as a login on every node (NSS through SSSD, so
what Debian's ``useradd`` would accept), as a folder under ``/home``, and in Slurm (``sacctmgr``
folds user names to lower case, and commas and ``=`` split its lists and its ``key=value``
arguments). The rule is Debian's default ``NAME_REGEX`` for ``adduser`` without the trailing ``$``
of machine accounts: a lower-case letter, then lower-case letters, digits, ``_`` and ``-``, at
most 32 characters (``useradd``'s limit, the size of a name in utmp, what ``w`` and ``last``
show).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hpctool.errors import UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_LENGTH = 32
# Names the cluster itself needs (its daemons' users, the admin and default logins of
# ParallelCluster's images), whether or not the image has them as users: a directory user of that
# name would be shadowed by the local one (``files`` comes first in nsswitch.conf) or would take
# over a daemon's identity on a node where it is missing.
RESERVED = frozenset({
    "root", "daemon", "bin", "sys", "nobody", "nogroup", "slurm", "munge", "mysql", "openldap",
    "sssd", "sshd", "messagebus", "_apt", "admin", "administrator", "ubuntu", "ec2-user", "rocky",
    "centos", "pcluster-admin", "dcv", "users", "sudo", "wheel", "adm", "staff", "shadow", "utmp",
})


def _check(kind: str, name: str, reserved: Iterable[str], taken: Iterable[str]) -> str:
    if not isinstance(name, str) or not name:
        raise UsageError(f"a {kind} name is missing", f"give a {kind} name such as alice")
    shown = name if len(name) <= 48 and name.isprintable() else repr(name[:48]) + "..."
    if len(name) > MAX_LENGTH:
        raise UsageError(f"{kind} name {shown!r} is {len(name)} characters long; at most {MAX_LENGTH} work",
                         "useradd, utmp (w, last) and Slurm's accounting take at most 32: choose a shorter name")
    if not NAME_RE.match(name):
        if name.lower() != name and NAME_RE.match(name.lower()):
            hint = f"use lower case ({name.lower()}): Slurm's accounting folds user names to lower case"
        elif name[0].isdigit() or name[0] in "-_":
            hint = "start with a lower-case letter (a name of digits reads as a uid to chown and ps)"
        else:
            bad = sorted({c for c in name if not re.match(r"[a-z0-9_-]", c)})
            hint = (f"{' '.join(repr(c) for c in bad)} not allowed: use lower-case letters, digits, '_' and '-' "
                    "(Debian's NAME_REGEX; Slurm splits lists on ',' and settings on '=')")
        raise UsageError(f"{kind} name {shown!r} is not a valid name", hint)
    if name in RESERVED or name in set(reserved):
        raise UsageError(f"{kind} name {name!r} is reserved: the nodes' own system {kind}s or the cluster's "
                         "daemons use it", f"choose another name; a directory {kind} must not shadow a local one")
    if name in set(taken):
        raise UsageError(f"{kind} {name!r} already exists",
                         f"`hpctool local users list` shows the directory's {kind}s; choose another name")
    return name


def validate_user_name(name: str, reserved: Iterable[str] = (), taken: Iterable[str] = ()) -> str:
    """``name`` when it can be a user of the directory; else a UsageError saying why, with a hint.
    ``reserved``: the nodes' local users (the image's ``/etc/passwd``, the machine's users given
    to the hosts); ``taken``: the directory's users."""
    return _check("user", name, reserved, taken)


def validate_group_name(name: str, reserved: Iterable[str] = (), taken: Iterable[str] = ()) -> str:
    """The same rules for a group (Debian's ``groupadd`` and ``adduser`` use one pattern for both)."""
    return _check("group", name, reserved, taken)


def local_names(text: str) -> set[str]:
    """The names of a ``passwd`` or ``group`` file (the first field of each line)."""
    return {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def local_ids(text: str) -> set[int]:
    """The numbers of a ``passwd`` or ``group`` file (the third field): the directory's uids and
    gids skip them (``DirectoryUsers(taken_ids=...)``), so no file on a node changes owner."""
    ids = set()
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            ids.add(int(fields[2]))
    return ids
