"""`hpctool local users add|remove|join|leave|list`: the directory users of a twin whose config has a
DirectoryService (hpctool.twin.identity)."""

from __future__ import annotations

import argparse

from hpctool.cli.output import print_json, print_table


def register_local_users(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="directory users of the twin (its config's DirectoryService): "
                                "one uid and home on every node, a Slurm account per group",
                                description="Users of the twin's LDAP directory (slapd on the head node, SSSD on "
                                "every node). A user gets a home on /home (0700) with an SSH key, a password for the "
                                "notebook hub (in a file, never printed) and, when the cluster has accounting, an "
                                "association under the Slurm account of its group.")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user (and its group when new)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--group", metavar="G", help="its primary group, made when missing (default: a group of its own)")
    add.add_argument("--json", action="store_true", help="machine-readable output")
    add.set_defaults(handler=cmd_users_add)
    remove = actions.add_parser("remove", help="remove a user from the directory and from Slurm's accounting "
                                "(its home stays)")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--json", action="store_true", help="machine-readable output")
    remove.set_defaults(handler=cmd_users_remove)
    join = actions.add_parser("join", help="add a user to a further group (made when missing), e.g. the "
                              "notebook hub's allow group hpctool-notebook")
    join.add_argument("name", metavar="NAME")
    join.add_argument("group", metavar="GROUP")
    join.set_defaults(handler=cmd_users_join)
    leave = actions.add_parser("leave", help="take a user out of a further group (not its primary group)")
    leave.add_argument("name", metavar="NAME")
    leave.add_argument("group", metavar="GROUP")
    leave.set_defaults(handler=cmd_users_leave)
    listing = actions.add_parser("list", help="the directory's users, their groups and Slurm accounts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_users_list)


def _twin():
    from hpctool.cli.output import progress
    from hpctool.twin import Twin

    return Twin(progress=progress)


def cmd_users_add(args: argparse.Namespace) -> int:
    from hpctool.twin import identity

    change = identity.add_user(_twin(), args.name, args.group)
    if args.json:
        print_json(change.to_json())
        return 0
    print(f"added {change.name} (uid {change.uid}, group {change.group} {change.gid}), home {change.home}")
    print(f"hub password: in {change.password_file} (readable by root only)")
    if change.account:
        print(f"slurm account: {change.account}")
    print(f"log in: hpctool local ssh --user {change.name}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    from hpctool.twin import identity

    change = identity.remove_user(_twin(), args.name)
    if args.json:
        print_json(change.to_json())
        return 0
    left = f", left Slurm account {change.account}" if change.account else ""
    print(f"removed {change.name} (uid {change.uid}){left}; home {change.home} kept")
    return 0


def cmd_users_join(args: argparse.Namespace) -> int:
    from hpctool.twin import identity

    joined = identity.join_group(_twin(), args.name, args.group)
    print(f"{args.name} {'joined' if joined else 'is already in'} group {args.group}")
    return 0


def cmd_users_leave(args: argparse.Namespace) -> int:
    from hpctool.twin import identity

    identity.leave_group(_twin(), args.name, args.group)
    print(f"{args.name} left group {args.group}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from hpctool.twin import identity

    users = identity.list_users(_twin())
    if args.json:
        print_json(users)
        return 0
    print_table([[u["name"], str(u["uid"]), u["group"], ",".join(u["groups"]) or "-", u["home"],
                  ",".join(u["accounts"]) or "-"] for u in users],
                ["USER", "UID", "GROUP", "OTHER GROUPS", "HOME", "ACCOUNTS"])
    return 0
