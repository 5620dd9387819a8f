"""ParallelCluster's own node daemons scale the twin (``hpctool local up --scaling parallelcluster``).

What a cluster's head node has, and the twin starts as a service of its own:

- EC2 and DynamoDB: moto behind the fault front (:mod:`hpctool.twin.ec2`) on the machine's
  loopback, seeded as ParallelCluster's stacks leave an account, with the static nodes' instances
  at their hosts' addresses (a cluster's static nodes are instances clustermgtd launched);
- the daemons' files (:mod:`hpctool.twin.pcnode_conf`), their wrappers
  (:mod:`hpctool.twin.pcnode_programs`; slurm.conf's Resume/Suspend programs enter them), the fleet
  status scripts clustermgtd runs (:mod:`hpctool.twin.fleet_status`), and a ``sudo`` for them;
- ``clustermgtd`` itself, ParallelCluster's loop: it ends instances of nodes that power down,
  replaces unhealthy static nodes, and handles failed launches and capacity;
- the instance watcher (:mod:`hpctool.twin.instance_hosts`), the twin's only part of EC2 moto lacks:
  it boots a node host for each instance ParallelCluster launched and ends it with its instance.

The daemons run on the machine (through the machine anchor for slurmctld's programs), not in the
head node's root: their venv is the machine's (docs/twin.md).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from hpctool import aws, shipped
from hpctool.atomic import write_atomic
from hpctool.cluster.queues import load_cluster
from hpctool.errors import SetupError
from hpctool.twin import daemons
from hpctool.twin.core import Twin
from hpctool.twin.ec2 import Ec2Server, Seeded, clear_faults, mark_fault, seed, twin_server
from hpctool.twin.fleet_status import SCRIPTS, render_fleet_status_script
from hpctool.twin.head import HEAD
from hpctool.twin.instance_hosts import hosts_file, record_hosts
from hpctool.twin.instances import node_assignments
from hpctool.twin.layout import TwinLayout, TwinNode
from hpctool.twin.pcnode_conf import (
    CLUSTER_NAME,
    REGION,
    HeadInstance,
    PcnodePaths,
    launch_template_name,
    render_all,
    slurm_table,
)
from hpctool.twin.pcnode_programs import (
    program_path,
    render_programs,
    render_sudo_shim,
    slurm_links,
)

EC2_PORT_OFFSET = 80  # the twin's EC2 endpoint: port base + 80 (the hub uses +90..92)
WATCHER = "hpctool.twin.instance_hosts"
CLUSTERMGTD = "python"  # the venv's python -c "... slurm_plugin.clustermgtd ..." (daemons.runs_program)
PCNODE_VENV_ENV = "HPCTOOL_PCNODE_VENV"


def pcnode_venv() -> Path:
    """aws-parallelcluster-node's venv: ``$HPCTOOL_PCNODE_VENV``, else the checkout's ``.tools/pcnode``
    (scripts/setup.sh installs it there)."""
    venv = Path(os.environ.get(PCNODE_VENV_ENV) or shipped.checkout_root() / ".tools" / "pcnode")
    if not (venv / "bin" / "python").exists():
        raise SetupError(f"ParallelCluster's node daemons are not installed in {venv}",
                         f"run `make setup` (scripts/setup.sh installs aws-parallelcluster-node), or set "
                         f"{PCNODE_VENV_ENV} to a venv with aws-parallelcluster-node==3.16.1")
    return venv


def ec2_server(twin: Twin, layout: TwinLayout) -> Ec2Server:
    return twin_server(twin.run_dir, layout.ports["Ec2Port"])


def watcher_pid_file(twin: Twin) -> Path:
    return twin.run_dir / "instance-hosts.pid"


def clustermgtd_pid_file(twin: Twin) -> Path:
    return twin.run_dir / "pcnode-clustermgtd.pid"


def compute_tags(node: TwinNode) -> dict[str, str]:
    """The tags ParallelCluster's launch templates put on a compute instance (what clustermgtd
    filters by)."""
    return {"parallelcluster:cluster-name": CLUSTER_NAME, "parallelcluster:node-type": "Compute",
            "Name": "Compute", "parallelcluster:queue-name": node.queue,
            "parallelcluster:compute-resource-name": node.compute_resource}


def seed_static_instances(twin: Twin, endpoint: str, layout: TwinLayout, addresses: dict[str, str],
                          seeded: Seeded, head: HeadInstance) -> dict[str, str]:
    """An instance per static node at its host's address, its node table item and the node's
    InstanceId in Slurm (clustermgtd pairs nodes and instances by it), as clustermgtd leaves a new
    cluster's static nodes (idempotent): node -> instance id."""
    ec2 = aws.local_client("ec2", endpoint, REGION)
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    assigned = node_assignments(endpoint)
    found = {}
    for node in layout.static_nodes():
        if node.name in assigned:  # a heal: clustermgtd may have replaced it since; it is in charge
            continue
        instance_id = aws.ensure_instance(ec2, image_id=seeded.image_id, instance_type=node.instance_type,
                                          subnet_id=seeded.subnet_id, address=addresses[node.name],
                                          tags=compute_tags(node))
        aws.put_dynamodb_item(dynamodb, slurm_table(), {
            "Id": {"S": node.name}, "InstanceId": {"S": instance_id},
            "HeadNodePrivateIp": {"S": head.address}, "HeadNodeHostname": {"S": head.hostname}})
        twin.slurm.set_node_instance(node.name, instance_id, node.instance_type)
        found[node.name] = instance_id
    return found


def apply_capacity(twin: Twin, layout: TwinLayout, changed: dict) -> None:
    """``hpctool local capacity`` under ParallelCluster's daemons: a resource without capacity is
    a launch template EC2 refuses (the fault front; ParallelCluster's resume and clustermgtd then
    do what they do on EC2, capacity timeout included); slow and hung boots are the instance
    watcher's (it reads the twin's capacity file)."""
    faults_file = ec2_server(twin, layout).faults_file
    now = time.time()
    for key, fault in changed.items():
        queue, resource = key.split("/", 1)
        template = launch_template_name(queue, resource)
        if fault.insufficient_until > now:
            mark_fault(faults_file, template, seconds=fault.insufficient_until - now)
        else:
            clear_faults(faults_file, template)


class PcnodeService:
    """The daemons as a :class:`~hpctool.twin.core.TwinService` (only for ``--scaling parallelcluster``)."""

    def ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]:
        return {"Ec2Port": base + EC2_PORT_OFFSET}

    def pid_files(self, twin: Twin, layout: TwinLayout) -> dict[str, Path]:
        if not layout.pcnode:
            return {}
        return {"moto": ec2_server(twin, layout).pid_file, "instance-hosts": watcher_pid_file(twin),
                "clustermgtd": clustermgtd_pid_file(twin)}

    def start(self, twin: Twin, layout: TwinLayout) -> list[str]:
        if not layout.pcnode:
            return []
        started = []
        server = ec2_server(twin, layout)
        if not server.running():
            twin.progress("starting the twin's EC2 (moto) for ParallelCluster's daemons")
            server.start()
            started.append("moto")
        addresses = twin.addresses(layout)
        head = HeadInstance(address=addresses.get(HEAD, twin.network.address(0)), hostname=HEAD)
        seeded = seed(server.endpoint, layout, load_cluster(layout.config).queues, twin.network,
                      head_address=head.address)
        static = seed_static_instances(twin, server.endpoint, layout, addresses, seeded, head)
        self._write_files(twin, layout, seeded, head, server.endpoint)
        if not daemons.pid_alive(daemons.read_pid(watcher_pid_file(twin))):
            record_hosts(hosts_file(twin.run_dir), static)  # the static hosts up already run for these
            process = daemons.spawn([sys.executable, "-m", WATCHER, "--home", str(twin.home)],
                                    twin.log_dir / "instance-hosts.log", env=twin.env())
            write_atomic(watcher_pid_file(twin), f"{process.pid}\n")
            started.append("instance-hosts")
        if not daemons.pid_alive(daemons.read_pid(clustermgtd_pid_file(twin))):
            paths = PcnodePaths(twin.paths)
            process = daemons.spawn([str(program_path(paths, "clustermgtd"))], twin.log_dir / "clustermgtd.log")
            write_atomic(clustermgtd_pid_file(twin), f"{process.pid}\n")
            started.append("clustermgtd")
        return started

    def _write_files(self, twin: Twin, layout: TwinLayout, seeded: Seeded, head: HeadInstance,
                     endpoint: str) -> None:
        paths = PcnodePaths(twin.paths)
        queues = load_cluster(layout.config).queues
        for path, text in render_all(layout, queues, paths, head, seeded.subnet_id).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
        paths.heartbeat.parent.mkdir(parents=True, exist_ok=True)
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        executables = dict(render_programs(paths, pcnode_venv(), endpoint))
        executables[paths.path_dir / "sudo"] = render_sudo_shim()
        for action, name in SCRIPTS.items():
            executables[paths.path_dir / name] = render_fleet_status_script(action, sys.executable, endpoint)
        for link, target in slurm_links(paths).items():
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink() or link.readlink() != target:
                link.unlink(missing_ok=True)
                link.symlink_to(target)
        for path, text in executables.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                write_atomic(path, text, mode=0o755)  # atomically: slurmctld may be running the old one

    def stop(self, twin: Twin) -> list[str]:
        stopped = []
        if daemons.stop_pid(daemons.read_pid(clustermgtd_pid_file(twin)), name="clustermgtd",
                            program=CLUSTERMGTD, timeout=5):
            stopped.append("clustermgtd")
        clustermgtd_pid_file(twin).unlink(missing_ok=True)
        if daemons.stop_pid(daemons.read_pid(watcher_pid_file(twin)), name="instance-hosts", program=WATCHER,
                            timeout=5):
            stopped.append("instance-hosts")
        watcher_pid_file(twin).unlink(missing_ok=True)
        layout = twin.layout()
        if layout is not None and "Ec2Port" in layout.ports and ec2_server(twin, layout).stop():
            stopped.append("moto")
        return stopped
