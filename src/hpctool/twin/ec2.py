"""The twin's EC2 and DynamoDB for ParallelCluster's own node daemons: moto in server mode, seeded as
ParallelCluster's cluster stack leaves an account, behind a *fault front*.

moto answers RunInstances, CreateFleet, DescribeInstances and DynamoDB as the daemons call them, but
it has no fault injection: EC2 never runs out of capacity in moto. The fault front is a small WSGI
application of our own around moto's server application: for a launch template marked in the
faults file (``{"<cluster>-<queue>-<cr>": {"code": ..., "capacity": N, "until": ...}}``, written
atomically, read on every launch so marking needs no restart) it answers RunInstances with EC2's
error body and CreateFleet with an ``errorSet`` entry, the two shapes in which EC2 reports missing
capacity, or lets through only the N instances EC2 still has; everything else goes to moto
untouched (but for RunInstances' MinCount, see :func:`_run_instances`, and DescribeInstanceStatus,
answered as EC2 does with health faults: :mod:`hpctool.twin.ec2_health`). ParallelCluster then
handles the failure with its own code (``(Code:InsufficientInstanceCapacity)Failure when resuming
nodes``).

The server runs detached (``python -m hpctool.twin.ec2``, PID file and log in a folder of its own,
stopped by PID only, as the twin's other daemons); seeding goes through :mod:`hpctool.aws` (the one
boto3 user). moto is a test dependency (``uv sync`` installs it with the dev group); without it the
server refuses to start with a hint.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape  # &, <, > and quotes: enough for the text of our XML elements
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hpctool import aws
from hpctool.atomic import write_atomic
from hpctool.cluster.queues import Queue
from hpctool.errors import HpctoolError, SetupError, TwinError
from hpctool.twin import daemons, ec2_health
from hpctool.twin.fleet_status import fleet_status_item
from hpctool.twin.hosts import Network
from hpctool.twin.layout import TwinLayout
from hpctool.twin.pcnode_conf import (
    CLUSTER_NAME,
    FLEET_STATUS_KEY,
    REGION,
    launch_templates,
    slurm_table,
    status_table,
)

# The EC2 error codes ParallelCluster treats as insufficient capacity (SlurmNode.EC2_ICE_ERROR_CODES
# in aws-parallelcluster-node 3.16.1): clustermgtd disables the compute resource for any of them.
CAPACITY_CODES = ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
                  "MaxSpotInstanceCountExceeded", "Unsupported", "SpotMaxPriceTooLow", "UnfulfillableCapacity",
                  "InsufficientCapacity")
# EC2 lists the Insufficient*Capacity codes among its server errors (HTTP 500); botocore retries
# those before the caller sees them, as it does against EC2.
_SERVER_ERRORS = {"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
                  "InsufficientCapacity"}
_EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
PROGRAM = "hpctool.twin.ec2"


# -- the faults file ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """A launch template EC2 is short of: ``capacity`` instances left per launch (0: none)."""

    code: str
    capacity: int = 0


def read_faults(path: Path, now: float | None = None) -> dict[str, Fault]:
    """Launch template name -> its fault, for the faults in force at ``now`` (a missing or
    unreadable file: none, so a half-configured twin launches rather than fails)."""
    moment = time.time() if now is None else now
    return {name: Fault(str(fault.get("code", CAPACITY_CODES[0])), int(fault.get("capacity") or 0))
            for name, fault in _raw_faults(path).items()
            if isinstance(fault, dict) and (fault.get("until") is None or float(fault["until"]) > moment)}


def mark_fault(path: Path, template: str, code: str = CAPACITY_CODES[0], seconds: float | None = None,
               capacity: int = 0) -> None:
    """Make launches of ``template`` fail with ``code`` (for ``seconds``, or until cleared); with
    ``capacity`` N, each launch still gets up to N instances, as EC2 running low."""
    if code not in CAPACITY_CODES:
        raise SetupError(f"{code} is not a capacity error ParallelCluster knows",
                         f"use one of {', '.join(CAPACITY_CODES)}")
    if capacity < 0:
        raise SetupError(f"capacity {capacity} is below 0", "give the instances EC2 still has, 0 for none")
    faults = _raw_faults(path)
    faults[template] = {"code": code, "capacity": capacity,
                        "until": None if seconds is None else time.time() + seconds}
    write_atomic(path, json.dumps(faults, indent=2, sort_keys=True) + "\n")


def clear_faults(path: Path, template: str | None = None) -> None:
    """Launches of ``template`` (of every template when None) succeed again."""
    faults = {} if template is None else {k: v for k, v in _raw_faults(path).items() if k != template}
    write_atomic(path, json.dumps(faults, indent=2, sort_keys=True) + "\n")


def _raw_faults(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


# -- the fault front ---------------------------------------------------------------------------------
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FaultFront:
    """WSGI middleware: capacity errors for marked launch templates, moto for everything else."""

    def __init__(self, app: WsgiApp, faults_path: Path, health_path: Path | None = None) -> None:
        self.app = app
        self.faults_path = Path(faults_path)
        self.health_path = Path(health_path) if health_path is not None else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
            return self.app(environ, start_response)  # not EC2's query protocol (DynamoDB is JSON)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = dict(pairs)
        action = form.get("Action")
        changes: dict[str, str] = {}
        if action == "DescribeInstanceStatus" and self.health_path is not None:
            return self._instance_status(environ, start_response, pairs, form)
        if action in ("RunInstances", "CreateFleet"):
            template = next((value for key, value in form.items() if key.endswith("LaunchTemplateName")), "")
            fault = read_faults(self.faults_path).get(template)
            if action == "RunInstances":
                answer, changes = _run_instances(form, fault, template)
            else:
                answer, changes = _create_fleet(form, fault, template)
            if answer is not None:
                status, text = answer
                start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(text)))])
                return [text]
        if changes:
            body = urlencode([(key, changes.get(key, value)) for key, value in pairs]).encode()
            environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        return self.app(environ, start_response)

    def _instance_status(self, environ: dict[str, Any], start_response: Callable[..., Any],
                         pairs: list[tuple[str, str]], form: dict[str, str]) -> Iterable[bytes]:
        """moto's answer without filters (it ignores the status ones), then EC2's (ec2_health)."""
        assert self.health_path is not None
        body = urlencode(ec2_health.without_filters(pairs)).encode()
        inner = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        seen: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            seen.update(status=status, headers=headers)

        result = self.app(inner, keep)
        try:
            moto_answer = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        if not str(seen.get("status", "")).startswith("200"):  # moto's own error: as it is
            start_response(seen["status"], seen["headers"])
            return [moto_answer]
        text = ec2_health.answer(moto_answer, form, self.health_path)
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(text)))])
        return [text]


Answer = tuple[str, bytes]


def _run_instances(form: dict[str, str], fault: Fault | None, template: str) -> tuple[Answer | None, dict[str, str]]:
    """EC2 launches as many as it can up to MaxCount, and nothing when that is below MinCount.
    moto launches MinCount, so the front asks it for exactly what EC2 would launch."""
    wanted, minimum = int(form.get("MaxCount") or 1), int(form.get("MinCount") or 1)
    launch = wanted if fault is None else min(wanted, fault.capacity)
    if fault is not None and launch < minimum:
        return _run_instances_error(fault.code, template), {}
    return None, {"MinCount": str(launch), "MaxCount": str(launch)}


def _create_fleet(form: dict[str, str], fault: Fault | None, template: str) -> tuple[Answer | None, dict[str, str]]:
    """An instant fleet launches what capacity allows, nothing below MinTargetCapacity (which moto
    ignores): then no instances and the reason in errorSet."""
    if fault is None:
        return None, {}
    total_key = "TargetCapacitySpecification.TotalTargetCapacity"
    minimum = max(int(form.get(f"{options}.MinTargetCapacity") or 0) for options in ("SpotOptions", "OnDemandOptions"))
    launch = min(int(form.get(total_key) or 1), fault.capacity)
    if launch == 0 or launch < minimum:
        return _create_fleet_error(fault.code, template, form), {}
    return None, {total_key: str(launch)}


def _message(code: str, template: str) -> str:
    return f"Insufficient capacity for launch template {template} (a fault injected by the twin, hpctool.twin.ec2)"


def _run_instances_error(code: str, template: str) -> tuple[str, bytes]:
    status = "500 Internal Server Error" if code in _SERVER_ERRORS else "400 Bad Request"
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(_message(code, template))}"
            f"</Message></Error></Errors><RequestID>{secrets.token_hex(16)}</RequestID></Response>")
    return status, body.encode()


def _create_fleet_error(code: str, template: str, form: dict[str, str]) -> tuple[str, bytes]:
    # An instant fleet that launched nothing: HTTP 200, no instances, the reason in errorSet.
    lifecycle = form.get("TargetCapacitySpecification.DefaultTargetCapacityType", "on-demand")
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<CreateFleetResponse xmlns="{_EC2_NS}"><requestId>{secrets.token_hex(16)}</requestId>'
            f"<fleetId>fleet-{secrets.token_hex(8)}</fleetId><errorSet><item>"
            "<launchTemplateAndOverrides><launchTemplateSpecification>"
            f"<launchTemplateName>{escape(template)}</launchTemplateName><version>$Latest</version>"
            "</launchTemplateSpecification></launchTemplateAndOverrides>"
            f"<lifecycle>{escape(lifecycle)}</lifecycle><errorCode>{escape(code)}</errorCode>"
            f"<errorMessage>{escape(_message(code, template))}</errorMessage></item></errorSet>"
            "<fleetInstanceSet/></CreateFleetResponse>")
    return "200 OK", body.encode()


# -- the server process ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ec2Server:
    """moto behind the fault front on ``host:port``; its PID file, log and faults file in ``folder``."""

    folder: Path
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "ec2.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "ec2.log"

    @property
    def faults_file(self) -> Path:
        return self.folder / "ec2-faults.json"

    @property
    def health_file(self) -> Path:
        return self.folder / "ec2-health.json"

    def running(self) -> bool:
        pid = daemons.read_pid(self.pid_file)
        return daemons.pid_alive(pid) and pid is not None and daemons.runs_program(pid, PROGRAM)

    def start(self, python: str = sys.executable, timeout: float = 30) -> None:
        """Start the server unless it runs; return once it accepts connections."""
        if self.running():
            return
        if daemons.port_in_use(self.port, self.host):
            raise SetupError(f"port {self.port} on {self.host} (the twin's EC2 endpoint) is already in use",
                             "stop what listens there (`ss -ltnp`) or give the endpoint another port")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.faults_file.exists():
            clear_faults(self.faults_file)
        process = daemons.spawn([python, "-m", PROGRAM, "--host", self.host, "--port", str(self.port),
                                 "--faults", str(self.faults_file), "--health", str(self.health_file)],
                                self.log_file)
        write_atomic(self.pid_file, f"{process.pid}\n")
        try:
            daemons.wait_until(lambda: _accepts(self.host, self.port), name="the twin's EC2 endpoint (moto)",
                               log_file=self.log_file, timeout=timeout, alive=lambda: process.poll() is None)
        except TwinError:
            self.stop()  # never leave a server behind that did not come up
            raise

    def stop(self) -> bool:
        stopped = daemons.stop_pid(daemons.read_pid(self.pid_file), name="moto", program=PROGRAM)
        self.pid_file.unlink(missing_ok=True)
        return stopped


def twin_server(run_dir: Path, port: int) -> Ec2Server:
    """A twin's endpoint: on the machine's loopback, its files in the twin's ``run/ec2``."""
    return Ec2Server(run_dir / "ec2", "127.0.0.1", port)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def serve(host: str, port: int, faults: Path, health: Path | None = None) -> None:
    """Run moto's server application behind the fault front (the process ``Ec2Server`` starts)."""
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import run_simple
    except ImportError as exc:
        raise SetupError("moto (with its server extra) is not installed",
                         "run `make setup` (uv sync installs the dev group with moto[server])") from exc
    os.environ.setdefault("MOTO_PORT", str(port))  # moto builds some URLs from it
    app = FaultFront(DomainDispatcherApplication(create_backend_app), faults, health)
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


# -- seeding, as ParallelCluster's stacks leave the account -----------------------------------------
@dataclass(frozen=True)
class Seeded:
    vpc_id: str
    subnet_id: str
    image_id: str
    head_instance_id: str
    launch_templates: dict[str, str]  # name -> id


def seed(endpoint: str, layout: TwinLayout, queues: list[Queue], network: Network, *,
         cluster: str = CLUSTER_NAME, head_address: str | None = None) -> Seeded:
    """Create (when missing) the VPC and subnet of the twin's bridge, the head node's instance at its
    address (moto then never hands that address to a compute instance), one launch template per
    compute resource, the node table with its InstanceId index, and the fleet status RUNNING."""
    ec2 = aws.local_client("ec2", endpoint, REGION)
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    subnet = ipaddress.ip_network(network.subnet)
    vpc_cidr = str(subnet.supernet(new_prefix=16)) if subnet.prefixlen > 16 else str(subnet)
    tags = {"parallelcluster:cluster-name": cluster}
    vpc_id, subnet_id = aws.ensure_vpc_subnet(ec2, vpc_cidr, network.subnet, tags)
    image_id = aws.first_image_id(ec2)
    head_id = aws.ensure_instance(
        ec2, image_id=image_id, instance_type="t3.medium", subnet_id=subnet_id,
        address=head_address or network.address(0),
        tags={**tags, "Name": "HeadNode", "parallelcluster:node-type": "HeadNode"})
    templates = {spec["name"]: aws.ensure_launch_template(ec2, spec["name"], spec["data"])
                 for spec in launch_templates(layout, queues, subnet_id, image_id, cluster)}
    aws.ensure_dynamodb_table(dynamodb, slurm_table(cluster), "Id", ("InstanceId",))
    aws.ensure_dynamodb_table(dynamodb, status_table(cluster), "Id")
    if aws.get_dynamodb_item(dynamodb, status_table(cluster), {"Id": {"S": FLEET_STATUS_KEY}}) is None:
        # As the cookbook's fleet_status recipe initialises it on the head node.
        aws.put_dynamodb_item(dynamodb, status_table(cluster), fleet_status_item("RUNNING"))
    return Seeded(vpc_id=vpc_id, subnet_id=subnet_id, image_id=image_id, head_instance_id=head_id,
                  launch_templates=templates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROGRAM}", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--faults", type=Path, required=True)
    parser.add_argument("--health", type=Path)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.faults, args.health)
    except HpctoolError as error:  # in the log, which Ec2Server.start shows when the server dies
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
