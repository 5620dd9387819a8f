"""The compute fleet status in the twin's DynamoDB (the ``COMPUTE_FLEET`` item of
``parallelcluster-<cluster>``), and the two commands clustermgtd runs to read and set it.

On a cluster, clustermgtd reads the status with ``get-compute-fleet-status.sh`` and sets it with
``update-compute-fleet-status.sh --status PROTECTED`` (the cookbook's scripts, found on PATH); the
twin puts stubs of those names on the daemons' PATH (:func:`render_fleet_status_script`) that run
``python -m hpctool.twin.fleet_status``: our own reading of the same contract (JSON with ``status``
and ``lastStatusUpdatedTime`` out; only PROTECTED in, only from RUNNING, refused otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from hpctool import aws
from hpctool.errors import HpctoolError, TwinError
from hpctool.twin.pcnode_conf import CLUSTER_NAME, FLEET_STATUS_KEY, REGION, status_table

PROGRAM = "hpctool.twin.fleet_status"
SCRIPTS = {"get": "get-compute-fleet-status.sh", "update": "update-compute-fleet-status.sh"}
_KEY = {"Id": {"S": FLEET_STATUS_KEY}}


def fleet_status_item(status: str, when: datetime | None = None) -> dict[str, Any]:
    """The COMPUTE_FLEET item in DynamoDB's typed form: ``Data.status`` and when it was set."""
    moment = when or datetime.now(UTC)
    return {"Id": {"S": FLEET_STATUS_KEY},
            "Data": {"M": {"status": {"S": status}, "lastStatusUpdatedTime": {"S": str(moment)}}}}


def read(endpoint: str, cluster: str = CLUSTER_NAME) -> tuple[str, str] | None:
    """(status, last updated time) from the twin's table; None when the item is not there."""
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    item = aws.get_dynamodb_item(dynamodb, status_table(cluster), _KEY)
    if item is None:
        return None
    try:
        data = item["Data"]["M"]
        return str(data["status"]["S"]), str(data["lastStatusUpdatedTime"]["S"])
    except KeyError as exc:
        raise TwinError(f"the COMPUTE_FLEET item of {status_table(cluster)} has no Data.status: {item}",
                        "seed the twin's tables again (hpctool.twin.ec2.seed)") from exc


def fleet_status(endpoint: str, cluster: str = CLUSTER_NAME) -> str | None:
    """The compute fleet status (None when not seeded)."""
    found = read(endpoint, cluster)
    return found[0] if found else None


def write(endpoint: str, status: str, *, expected: str | None = None, cluster: str = CLUSTER_NAME) -> None:
    """Set the status; with ``expected``, only if the status still is that (a conditional write,
    so two writers never both win)."""
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    condition = None if expected is None else {
        "ConditionExpression": "#d.#s = :expected", "ExpressionAttributeNames": {"#d": "Data", "#s": "status"},
        "ExpressionAttributeValues": {":expected": {"S": expected}}}
    aws.put_dynamodb_item(dynamodb, status_table(cluster), fleet_status_item(status), condition=condition)


def iso_time(text: str) -> str:
    """``2026-12-07 16:00:00.123456+00:00`` as ISO 8601 UTC with milliseconds (``...T16:00:00.123Z``),
    the form the cookbook's get script prints."""
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_fleet_status_script(action: str, python: str, endpoint: str, cluster: str = CLUSTER_NAME) -> str:
    """``get-compute-fleet-status.sh`` or ``update-compute-fleet-status.sh`` for the daemons' PATH."""
    return (
        "#!/bin/sh\n"
        f"# Written by hpctool local up: clustermgtd's {SCRIPTS[action]} against the twin's DynamoDB.\n"
        f'exec {python} -m {PROGRAM} --endpoint {endpoint} --cluster {cluster} {action} "$@"\n'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROGRAM}", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--cluster", default=CLUSTER_NAME)
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("get", help="print the status as JSON")
    update = actions.add_parser("update", help="set the status (PROTECTED only, from RUNNING)")
    update.add_argument("--status", required=True, choices=["PROTECTED"])
    args = parser.parse_args(argv)
    try:
        found = read(args.endpoint, args.cluster)
        if found is None:
            raise TwinError(f"no COMPUTE_FLEET item in {status_table(args.cluster)}", "seed the twin's tables")
        status, updated = found
        if args.action == "get":
            print(json.dumps({"lastStatusUpdatedTime": iso_time(updated), "status": status}, indent=4))
        elif status != args.status:
            if status != "RUNNING":
                raise TwinError(f"cannot set the compute fleet from {status} to {args.status}",
                                "only a RUNNING fleet becomes PROTECTED")
            write(args.endpoint, args.status, expected=status, cluster=args.cluster)
    except HpctoolError as error:
        print(f"ERROR: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
