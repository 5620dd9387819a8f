"""The compute fleet status in the twin's DynamoDB (the ``COMPUTE_FLEET`` item of
``parallelcluster-<cluster>``), and the two commands clustermgtd runs to read and set it.

On a cluster, clustermgtd reads the status with ``get-compute-fleet-status.sh`` and sets it with
``update-compute-fleet-status.sh --status PROTECTED`` (the cookbook's scripts, found on PATH); the
twin puts stubs of those names on the daemons' PATH (:func:`render_fleet_status_script`) that run
``python -m hpctool.twin.fleet_status``: our own reading of the same contract (JSON with ``status``
and ``lastStatusUpdatedTime`` out; only PROTECTED in, only from RUNNING, refused otherwise).

A stop or start (``pcluster update-compute-fleet --status STOP_REQUESTED|START_REQUESTED`` writes the
request into the item) is carried out on a cluster by the cookbook's ``clusterstatusmgtd``: it moves
the item to STOPPING (STARTING), writes the status file ``slurm_fleet_status_manager -cf FILE``
reads, runs that (between ``supervisorctl stop clustermgtd`` and ``start``), and moves the item on
to STOPPED (RUNNING), each write conditional on the status it expects. :func:`manage_fleet_status`
is one round of that, with the run injected (:data:`Runner`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpctool import aws
from hpctool.atomic import write_atomic
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


# -- clusterstatusmgtd's side: a stop or start request carried out ------------------------------------
# The request -> (in progress, done), as clusterstatusmgtd's manage_cluster_status moves them.
TRANSITIONS = {"STOP_REQUESTED": ("STOPPING", "STOPPED"), "START_REQUESTED": ("STARTING", "RUNNING")}
# The status the file shows while a transition is in progress (the cookbook's
# EVENT_HANDLER_STATUS_MAPPING): slurm_fleet_status_manager acts on the requests only.
_FILE_STATUS = {progress: request for request, (progress, _) in TRANSITIONS.items()}
Runner = Callable[[Path], None]  # runs `slurm_fleet_status_manager -cf FILE`; raises when it failed


@dataclass(frozen=True)
class FleetStep:
    """One round: the status read, the status left in the table, whether the runner ran, and
    whether a conditional write lost to another writer (the next round starts from what it wrote)."""

    before: str
    after: str
    ran: bool = False
    lost: bool = False


def status_file_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The status file from the item's ``Data`` (STOPPING -> STOP_REQUESTED, STARTING ->
    START_REQUESTED, any other status UNKNOWN), the rest of ``Data`` as it is."""
    return {**data, "status": _FILE_STATUS.get(str(data.get("status")), "UNKNOWN")}


def _move(dynamodb: Any, cluster: str, current: str, following: str) -> dict[str, Any] | None:
    """``Data.status`` from ``current`` to ``following`` (and its time), only if it still is
    ``current``: the item's ``Data`` afterwards, or None when another writer changed it first."""
    updated = aws.update_dynamodb_item(dynamodb, status_table(cluster), _KEY, {
        "UpdateExpression": "SET #d.#s = :next, #d.#t = :time",
        "ConditionExpression": "#d.#s = :current",
        "ExpressionAttributeNames": {"#d": "Data", "#s": "status", "#t": "lastStatusUpdatedTime"},
        "ExpressionAttributeValues": {":next": {"S": following}, ":current": {"S": current},
                                      ":time": {"S": str(datetime.now(UTC))}}})
    return None if updated is None else dict(aws.plain_dynamodb_value(updated["Data"]))


def manage_fleet_status(endpoint: str, status_file: Path, runner: Runner, cluster: str = CLUSTER_NAME) -> FleetStep:
    """One round of clusterstatusmgtd: a STOP_REQUESTED (START_REQUESTED) becomes STOPPING
    (STARTING), the status file is written and ``runner(status_file)`` run, then STOPPED (RUNNING).
    A round that finds STOPPING or STARTING (the last one's runner failed) runs it again. When the
    runner raises, the status stays in progress and the error goes to the caller; call again."""
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    item = aws.get_dynamodb_item(dynamodb, status_table(cluster), _KEY)
    if item is None or "Data" not in item:
        raise TwinError(f"no COMPUTE_FLEET item in {status_table(cluster)}", "seed the twin's tables")
    data = dict(aws.plain_dynamodb_value(item["Data"]))
    before = status = str(data.get("status"))
    request = next((r for r, (progress, _) in TRANSITIONS.items() if status in (r, progress)), None)
    if request is None:  # RUNNING, STOPPED, PROTECTED: nothing to carry out
        return FleetStep(before, status)
    progress, done = TRANSITIONS[request]
    if status == request:
        moved = _move(dynamodb, cluster, request, progress)
        if moved is None:
            return FleetStep(before, fleet_status(endpoint, cluster) or "", lost=True)
        data, status = moved, progress
    Path(status_file).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(status_file), json.dumps(status_file_data(data), default=str))
    runner(Path(status_file))
    moved = _move(dynamodb, cluster, progress, done)
    if moved is None:
        return FleetStep(before, fleet_status(endpoint, cluster) or "", ran=True, lost=True)
    return FleetStep(before, done, ran=True)


def command_runner(argv: Sequence[str], timeout: float = 300, env: Mapping[str, str] | None = None) -> Runner:
    """A runner that runs ``argv -cf <status file>`` (the fleet status manager's wrapper,
    :mod:`hpctool.twin.pcnode_programs`); its exit code decides."""
    def run(status_file: Path) -> None:
        try:
            result = subprocess.run([*argv, "-cf", str(status_file)], capture_output=True, text=True,
                                    timeout=timeout, env=None if env is None else dict(env), check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TwinError(f"cannot run {argv[0]}: {exc}", "check the daemons' venv (.tools/pcnode)") from exc
        if result.returncode != 0:
            raise TwinError(f"{argv[0]} -cf {status_file} exited {result.returncode}: "
                            f"{(result.stderr or result.stdout).strip()[-500:]}",
                            "see slurm_fleet_status_manager's log in the twin's log/parallelcluster/")

    return run


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
