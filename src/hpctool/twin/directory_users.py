"""The directory's users and groups (``hpctool local users add|remove|list``), through the LDAP
tools of the node image on the head node, as root over ldapi:// (:class:`DirectoryServer.tool`).

A user is what a directory user of a ParallelCluster cluster is after their first login: an
entry with one uid and one primary group for every node, a home folder on the shared ``/home``
(mode 0700), an SSH key in ``~/.ssh`` that takes them from node to node (ParallelCluster's
``GenerateSshKeysForUsers`` makes the same at the first login, ``id_ed25519`` and
``authorized_keys``), and a password for the notebook hub, kept on the machine (mode 0600,
never printed) and stored in the directory only as slapd's argon2 hash.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hpctool.errors import UsageError
from hpctool.twin import daemons
from hpctool.twin.directory import (
    FIRST_ID,
    DirectoryUser,
    render_group,
    render_member_change,
    render_user,
)
from hpctool.twin.directory_run import DirectoryServer
from hpctool.twin.usernames import validate_group_name, validate_user_name

# Makes the home and its key on the head node, as the user's own; arguments, not interpolation:
# $1 name, $2 uid, $3 gid, $4 home. An existing home is kept (a user removed and added again).
HOME_SCRIPT = r"""
set -eu
home=$4
[ -d "$home" ] || mkdir -m 0700 "$home"
chown "$2:$3" "$home"
if [ ! -e "$home/.ssh/id_ed25519" ]; then
  mkdir -p -m 0700 "$home/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C "$1@twin" -f "$home/.ssh/id_ed25519"
  cat "$home/.ssh/id_ed25519.pub" >> "$home/.ssh/authorized_keys"
  chmod 0600 "$home/.ssh/authorized_keys"
  chown -R "$2:$3" "$home/.ssh"
fi
"""


def parse_ldif(text: str) -> list[dict[str, list[str]]]:
    """Entries of ``ldapsearch -LLL`` output: attribute (lower case) -> values, ``dn`` included.
    Folded lines and base64 values (``attr::``) are read; comments are skipped."""
    entries: list[dict[str, list[str]]] = []
    lines: list[str] = []
    for raw in text.splitlines():
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    entry: dict[str, list[str]] = {}
    for line in lines + [""]:
        if not line.strip():
            if entry:
                entries.append(entry)
            entry = {}
            continue
        if line.startswith("#") or ":" not in line:
            continue
        attr, _, value = line.partition(":")
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode(errors="replace")
        else:
            value = value.strip()
        entry.setdefault(attr.strip().lower(), []).append(value)
    return entries


@dataclass(frozen=True)
class DirectoryGroup:
    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listing:
    users: list[DirectoryUser] = field(default_factory=list)
    groups: list[DirectoryGroup] = field(default_factory=list)

    def group_of(self, gid: int) -> str | None:
        return next((g.name for g in self.groups if g.gid == gid), None)


def _first_int(entry: dict[str, list[str]], attr: str) -> int:
    values = entry.get(attr.lower(), [])
    return int(values[0]) if values and values[0].isdigit() else -1


@dataclass(frozen=True)
class AddedUser:
    user: DirectoryUser
    group: str
    password_file: Path  # the hub's password (mode 0600); never printed
    created_group: bool


class DirectoryUsers:
    """Users and groups of one running directory."""

    def __init__(self, server: DirectoryServer, reserved: Iterable[str] = (),
                 taken_ids: Iterable[int] = ()) -> None:
        self.server = server
        self.settings = server.settings
        self.reserved = set(reserved)  # local names on the nodes (image, machine users)
        self.taken_ids = set(taken_ids)  # local uids and gids on the nodes

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One change at a time: two `users add` at once would pick the same free uid."""
        with open(self.server.folder.root / "users.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def listing(self) -> Listing:
        s = self.settings
        people = self.server.tool("ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-b", s.people_dn,
                                                 "(objectClass=posixAccount)", "uid", "uidNumber", "gidNumber",
                                                 "homeDirectory", "loginShell"]).stdout
        groups = self.server.tool("ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-b", s.groups_dn,
                                                 "(objectClass=posixGroup)", "cn", "gidNumber", "memberUid"]).stdout
        users = [DirectoryUser(name=e["uid"][0], uid=_first_int(e, "uidNumber"), gid=_first_int(e, "gidNumber"),
                               home=e.get("homedirectory", [""])[0], login_shell=e.get("loginshell", [""])[0])
                 for e in parse_ldif(people) if e.get("uid")]
        found = [DirectoryGroup(name=e["cn"][0], gid=_first_int(e, "gidNumber"),
                                members=tuple(sorted(e.get("memberuid", []))))
                 for e in parse_ldif(groups) if e.get("cn")]
        return Listing(users=sorted(users, key=lambda u: u.name), groups=sorted(found, key=lambda g: g.name))

    def list(self) -> list[DirectoryUser]:
        return self.listing().users

    def _free_id(self, listing: Listing, prefer: int | None = None, also: Iterable[int] = ()) -> int:
        used = self.taken_ids | {u.uid for u in listing.users} | {g.gid for g in listing.groups} | set(also)
        if prefer is not None and prefer not in used:
            return prefer
        candidate = FIRST_ID
        while candidate in used:
            candidate += 1
        return candidate

    def add(self, name: str, group: str | None = None) -> AddedUser:
        """A new user, its primary group (``group``, made when missing; else a group of its own,
        of the same name and number, as Debian's adduser makes), home, key and hub password."""
        with self._exclusive():
            return self._add(name, group)

    def _add(self, name: str, group: str | None) -> AddedUser:
        listing = self.listing()
        validate_user_name(name, self.reserved, [u.name for u in listing.users])
        existing = {g.name: g for g in listing.groups}
        if group is not None:
            validate_group_name(group, self.reserved)
        elif name in existing:
            raise UsageError(f"a group {name!r} already exists in the directory",
                             f"give it as the user's group (--group {name}), or choose another name")
        uid = self._free_id(listing)
        group_name = group or name
        created = group_name not in existing
        if not created:
            gid = existing[group_name].gid
        elif group is None:
            gid = self._free_id(listing, prefer=uid)  # a group of its own: the same number
        else:
            gid = self._free_id(listing, also=[uid])  # a shared group: a number of its own
        user = DirectoryUser(name=name, uid=uid, gid=gid)
        if created:
            self.server.tool("ldapadd", [], input_text=render_group(self.settings, group_name, gid, [name]))
        else:
            self.server.tool("ldapmodify", [], input_text=render_member_change(self.settings, group_name, name, True))
        self.server.tool("ldapadd", [], input_text=render_user(self.settings, user))
        self.server.folder.passwords.mkdir(mode=0o700, exist_ok=True)
        password_file = self.server.folder.passwords / name
        self.server.set_password(self.settings.user_dn(name), password_file)
        # The home is made on the head node, whose /home every node shares.
        daemons.run_quiet(self.server.on_head(["sh", "-c", HOME_SCRIPT, "user-home", name, str(uid), str(gid),
                                               user.home_dir]), timeout=60)
        return AddedUser(user=user, group=group_name, password_file=password_file, created_group=created)

    def join(self, name: str, group: str) -> bool:
        """Make ``name`` a member of ``group`` (made when missing), as an admin adds a user to a
        group in AD: the notebook hub's allow group, a project's. False: already a member."""
        with self._exclusive():
            listing = self.listing()
            user = self._known(listing, name)
            validate_group_name(group, self.reserved)
            existing = {g.name: g for g in listing.groups}
            if group in existing:
                if name in existing[group].members or existing[group].gid == user.gid:
                    return False
                self.server.tool("ldapmodify", [], input_text=render_member_change(self.settings, group, name, True))
            else:
                gid = self._free_id(listing)
                self.server.tool("ldapadd", [], input_text=render_group(self.settings, group, gid, [name]))
            return True

    def leave(self, name: str, group: str) -> None:
        """Take ``name`` out of ``group``; its primary group cannot be left (it owns its files)."""
        with self._exclusive():
            listing = self.listing()
            user = self._known(listing, name)
            found = next((g for g in listing.groups if g.name == group), None)
            if found is not None and found.gid == user.gid:
                raise UsageError(f"{group} is {name}'s primary group", "a user leaves only its other groups; "
                                 "`hpctool local users remove` removes the user")
            if found is None or name not in found.members:
                raise UsageError(f"{name} is not a member of {group!r}", "`hpctool local users list` shows groups")
            self.server.tool("ldapmodify", [], input_text=render_member_change(self.settings, group, name, False))

    @staticmethod
    def _known(listing: Listing, name: str) -> DirectoryUser:
        user = next((u for u in listing.users if u.name == name), None)
        if user is None:
            raise UsageError(f"no directory user {name!r}", "`hpctool local users list` shows them")
        return user

    def remove(self, name: str) -> DirectoryUser:
        """The user's entry, its memberships and its own group (when nobody else is in it) leave
        the directory; its home stays (as a user removed from AD keeps theirs), its hub password
        file goes."""
        with self._exclusive():
            return self._remove(name)

    def _remove(self, name: str) -> DirectoryUser:
        listing = self.listing()
        user = self._known(listing, name)
        self.server.tool("ldapdelete", [self.settings.user_dn(name)])
        for group in listing.groups:
            others = [m for m in group.members if m != name]
            if group.name == name and group.gid == user.gid and not others:
                self.server.tool("ldapdelete", [self.settings.group_dn(group.name)])
            elif name in group.members:
                self.server.tool("ldapmodify", [],
                                 input_text=render_member_change(self.settings, group.name, name, False))
        (self.server.folder.passwords / name).unlink(missing_ok=True)
        return user
