"""Admins: a command on every running node of a queue, through the head node, in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hpctool.errors import UsageError
from hpctool.remote.connection import Remote
from hpctool.remote.manifest import NodeResult, redact
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import node_in_service


def running_nodes(slurm: Slurm, host: str, queue: str) -> list[dict[str, str]]:
    """The queue's nodes that run now (node, state, addr)."""
    rows = slurm.partition_nodes(queue)
    if not rows:
        raise UsageError(f"queue {queue} has no nodes on {host}", f"`hpctool remote {host} status` lists the queues")
    # idle~ (powered down), idle# (powering up), idle% (powering down): not running, skip them
    return [r for r in rows if node_in_service(r["state"]) and not r["state"].split("+")[0].endswith(("~", "#", "%"))]


def nodes_exec(remote: Remote, slurm: Slurm, queue: str, command: str, *, via: str = "srun", timeout: float = 300,
               parallel: int = 16) -> list[NodeResult]:
    """Run ``command`` on each running node of ``queue`` through the head node, in parallel.

    ``srun``: one step per node (``srun -w NODE``), Slurm's own path, which works anywhere the
    head node runs Slurm (and on idle nodes only: a busy node answers after ``--immediate``).
    ``ssh``: the head node's ssh to each node's address (ParallelCluster sets up cluster-internal
    keys), for nodes busy with jobs."""
    if via not in {"srun", "ssh"}:
        raise UsageError(f"--via {via}: use srun or ssh", "srun by default")
    if not command.strip():
        raise UsageError("no command to run", "put it after --, e.g. -- systemctl is-active slurmd")
    nodes = running_nodes(slurm, remote.host, queue)
    if not nodes:
        return []

    def one(node: dict[str, str]) -> NodeResult:
        if via == "srun":
            done = slurm.run_on_node(node["node"], queue, command, timeout=timeout)
            code, output = done.returncode, done.stdout + done.stderr
        else:
            result = remote.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", node["addr"], command],
                                timeout=timeout)
            code, output = result.code, result.stdout + result.stderr
        return NodeResult(node["node"], code, redact(output.strip()))

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(nodes)))) as pool:
        return list(pool.map(one, nodes))
