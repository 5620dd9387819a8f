"""Slurm's accounting tree, read: associations (``sacctmgr show assoc``) and fair share
(``sshare``). Pure functions over the commands' parsable output; :class:`hpctool.slurm.client.Slurm`
runs them."""

from __future__ import annotations

from dataclasses import dataclass

from hpctool.errors import SlurmError
from hpctool.slurm.parse import parse_delimited

ASSOC_FIELDS = ["Account", "User", "ParentName", "Share"]
SSHARE_FIELDS = ["Account", "User", "RawShares", "NormShares", "RawUsage", "EffectvUsage", "FairShare"]


@dataclass(frozen=True)
class Association:
    """One row of the tree: an account (``user`` empty) under ``parent``, or a user in ``account``."""

    account: str
    user: str
    parent: str
    shares: int


@dataclass(frozen=True)
class FairShare:
    """A user's standing in ``sshare``: ``fair_share`` is 1.0 for one who used nothing lately,
    falling towards 0 the more the user used against its shares."""

    account: str
    user: str
    raw_shares: int
    raw_usage: int
    fair_share: float


def _int(value: str, what: str) -> int:
    if value == "parent":  # fairshare=parent: the association counts as its parent's, no shares of its own
        return 0
    try:
        return int(value) if value else 0
    except ValueError as exc:
        raise SlurmError(f"{what} {value!r} is not a number", "is this Slurm's sacctmgr/sshare output?") from exc


def parse_associations(text: str) -> list[Association]:
    """``sacctmgr -n -P show assoc format=Account,User,ParentName,Share``. An account's own row
    has an empty user; ``parent`` is only set on account rows."""
    return [Association(row["Account"], row["User"], row["ParentName"], _int(row["Share"], "Share"))
            for row in parse_delimited(text, ASSOC_FIELDS)]


def parse_sshare(text: str) -> list[FairShare]:
    """The user rows of ``sshare -a -n -P -o <SSHARE_FIELDS>`` (accounts' rows are left out; the
    tree's indentation is in the account name)."""
    shares = []
    for row in parse_delimited(text, SSHARE_FIELDS):
        if not row["User"]:
            continue
        try:
            fair = float(row["FairShare"] or 0)
        except ValueError as exc:
            raise SlurmError(f"FairShare {row['FairShare']!r} is not a number", "is this sshare's output?") from exc
        shares.append(FairShare(row["Account"].strip(), row["User"], _int(row["RawShares"], "RawShares"),
                                _int(row["RawUsage"], "RawUsage"), fair))
    return shares


def users_by_account(associations: list[Association]) -> dict[str, list[str]]:
    """Each account's users (accounts without users included), sorted."""
    tree: dict[str, list[str]] = {}
    for row in associations:
        users = tree.setdefault(row.account, [])
        if row.user:
            users.append(row.user)
    return {account: sorted(users) for account, users in sorted(tree.items())}
