"""Slurm's client commands against one cluster: every Slurm command line hpctool builds is built here.

A :class:`Slurm` runs its commands through a runner (:mod:`hpctool.slurm.runner`): on this
machine by default, on a head node over SSH for ``hpctool remote``. Output is handed to the pure
parsers in :mod:`hpctool.slurm.parse`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence

from hpctool.errors import SlurmError
from hpctool.slurm.associations import (
    ASSOC_FIELDS,
    SSHARE_FIELDS,
    Association,
    FairShare,
    parse_associations,
    parse_sshare,
)
from hpctool.slurm.parse import (
    SACCT_FIELDS,
    SINFO_NODE_FORMAT,
    AcctJob,
    QueueNode,
    has_accounting,
    parse_delimited,
    parse_sacct_jobs,
    parse_sbatch_parsable,
    parse_scontrol_config,
    parse_scontrol_records,
    parse_sinfo_nodes,
)
from hpctool.slurm.runner import LocalRunner, Runner, slurm_env

BUSY_RETRIES, BUSY_RETRY_S = 10, 1.0  # run_on_node on a node that is still completing

# squeue/sinfo formats and the fields they fill, side by side so they cannot drift apart.
NODE_QUEUE_STATE = ("%N|%R|%T", ["node", "queue", "state"])
NODE_STATE_ADDR = ("%N|%T|%o", ["node", "state", "addr"])
MY_JOBS = ("%i|%P|%j|%T|%M|%N", ["id", "queue", "name", "state", "time", "nodes"])
JOB_QUEUE_STATE = ("%i|%P|%T", ["id", "queue", "state"])
# Every job of the user slurmctld still knows, finished ones too (until MinJobAge), one line per
# array task: what stands in for sacct on a cluster without accounting.
KNOWN_JOBS = ("%i|%P|%j|%T|%M|%N|%r", ["id", "queue", "name", "state", "time", "nodes", "reason"])


class Slurm:
    """Slurm's commands against one cluster: given by its slurm.conf (or the default one) on this
    machine, or by a ``runner`` (e.g. :class:`hpctool.remote.slurm.SshRunner` on a head node)."""

    def __init__(self, slurm_conf: str | os.PathLike[str] | None = None, *, runner: Runner | None = None,
                 path: str | None = None) -> None:
        self.slurm_conf = str(slurm_conf) if slurm_conf is not None else None
        self.env = slurm_env(self.slurm_conf)
        if path is not None:  # where this cluster's clients are (the twin's image clients)
            self.env["PATH"] = path
        self.runner: Runner = runner if runner is not None else LocalRunner(self.env)

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
        """One command as given (for the twin's own administration); prefer the methods below."""
        return self.runner.run(argv, **kwargs)

    # -- jobs ---------------------------------------------------------------------------------
    def sbatch(self, options: Sequence[str], *, wrap: str | None = None, script: str | None = None,
               script_path: str | None = None, umask: int | None = None) -> str:
        """Submit a batch job; return its id. Give a ``--wrap`` command, a script text (on stdin)
        or the path of a script there. ``umask`` 0o077 keeps the job's output private."""
        argv = ["sbatch", "--parsable", *options]
        if wrap is not None:
            argv += ["--wrap", wrap]
        if script_path is not None:
            argv.append(script_path)
        result = self.run(argv, input_text=script, umask=umask)
        return parse_sbatch_parsable(result.stdout)

    def requeue(self, job_id: str) -> None:
        self.run(["scontrol", "requeue", job_id])

    def cancel(self, job_ids: Sequence[str], signal: str | None = None, batch: bool = False,
               check: bool = True) -> None:
        argv = ["scancel"]
        if signal:
            argv.append(f"--signal={signal}")
        if batch:
            argv.append("--batch")
        self.run([*argv, *job_ids], check=check)

    def jobs(self) -> list[dict[str, str]]:
        """Jobs slurmctld knows now (``scontrol show job``), as records."""
        result = self.run(["scontrol", "-o", "show", "job"])
        return parse_scontrol_records(result.stdout)

    def job(self, job_id: str) -> dict[str, str]:
        record = self.find_job(job_id, check=True)
        if record is None:
            raise SlurmError(f"job {job_id} is not known to slurmctld", "it may have aged out; use sacct")
        return record

    def find_job(self, job_id: str, *, check: bool = False) -> dict[str, str] | None:
        """One job's record, or None when slurmctld does not know it (any more)."""
        records = parse_scontrol_records(self.run(["scontrol", "-o", "show", "job", job_id], check=check).stdout)
        return records[0] if records else None

    def my_jobs(self) -> list[dict[str, str]]:
        """The user's jobs in the queue: id, queue, name, state, time, nodes."""
        form, fields = MY_JOBS
        return parse_delimited(self.run(["squeue", "-h", "--me", "-o", form]).stdout, fields)

    def known_jobs(self, *, all_users: bool = False) -> list[dict[str, str]]:
        """The user's (or everyone's) jobs slurmctld knows, finished ones included until it forgets
        them (MinJobAge): id, queue, name, state, time, nodes, reason. Array tasks one per line."""
        form, fields = KNOWN_JOBS
        who = [] if all_users else ["--me"]
        return parse_delimited(self.run(["squeue", "-h", *who, "--states=all", "--array", "-o", form]).stdout, fields)

    def queued(self, job_ids: Sequence[str]) -> list[dict[str, str]]:
        """These jobs while slurmctld still has them (id, queue, state); [] once they are gone
        (squeue then refuses the ids)."""
        form, fields = JOB_QUEUE_STATE
        result = self.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", form], check=False)
        return parse_delimited(result.stdout, fields) if result.returncode == 0 else []

    def sacct(
        self, job_ids: Sequence[str] | None = None, *, since: str = "now-7days", extra: Sequence[str] = ()
    ) -> list[AcctJob]:
        """Allocations from accounting (one row per job, steps left out)."""
        argv = ["sacct", "-X", "-D", "--parsable2", "--noheader", "-o", ",".join(SACCT_FIELDS), *extra]
        if job_ids:
            argv += ["-j", ",".join(job_ids)]
        else:
            argv += ["-S", since]
        return parse_sacct_jobs(self.run(argv).stdout)

    def sacct_text(self, fields: Sequence[str], *, job_ids: Sequence[str] | None = None,
                   since: str | None = None, until: str | None = None, timeout: float = 300) -> str:
        """Raw ``sacct`` rows of allocations, every run of a requeued job (``-D``), all users (``-a``),
        for the parsers of the feature that asked (accounting over a week can be large)."""
        argv = ["sacct", "-a", "-X", "-D", "--parsable2", "--noheader", "-o", ",".join(fields)]
        if job_ids:
            argv += ["-j", ",".join(job_ids)]
        if since:
            argv += ["-S", since]
        if until:
            argv += ["-E", until]
        return self.run(argv, timeout=timeout).stdout

    # -- nodes --------------------------------------------------------------------------------
    def nodes(self) -> list[dict[str, str]]:
        result = self.run(["scontrol", "-o", "show", "node"])
        return parse_scontrol_records(result.stdout)

    def node(self, name: str) -> dict[str, str]:
        """One node's record (``scontrol show node NAME``)."""
        records = parse_scontrol_records(self.run(["scontrol", "-o", "show", "node", name]).stdout)
        if not records:
            raise SlurmError(f"node {name} is not known to slurmctld", "`sinfo -N` lists the nodes")
        return records[0]

    def queue_nodes(self) -> list[QueueNode]:
        """Every node of every partition with its CPUs, memory and the partition's time limit (one sinfo)."""
        return parse_sinfo_nodes(self.run(["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT]).stdout)

    def node_queues(self) -> list[dict[str, str]]:
        """Every node of every partition with its state (node, queue, state)."""
        form, fields = NODE_QUEUE_STATE
        return parse_delimited(self.run(["sinfo", "-h", "-N", "-o", form]).stdout, fields)

    def partition_nodes(self, queue: str) -> list[dict[str, str]]:
        """The nodes of one partition with their state and address (node, state, addr)."""
        form, fields = NODE_STATE_ADDR
        return parse_delimited(self.run(["sinfo", "-h", "-N", "-p", queue, "-o", form]).stdout, fields)

    def config(self) -> dict[str, str]:
        """slurmctld's running configuration (``scontrol show config``)."""
        return parse_scontrol_config(self.run(["scontrol", "show", "config"]).stdout)

    def accounting_enabled(self, config: dict[str, str] | None = None) -> bool:
        """Whether this cluster keeps accounting (slurmdbd): without it sacct has no answer."""
        return has_accounting(config if config is not None else self.config())

    def node_states(self) -> dict[str, str]:
        """Node name -> long state (``idle``, ``mixed``, ``drained``, ``down*``...) from sinfo."""
        result = self.run(["sinfo", "-h", "-N", "-o", "%N|%T"])
        return {row["node"]: row["state"] for row in parse_delimited(result.stdout, ["node", "state"])}

    def update_node(self, node: str, state: str, reason: str | None = None) -> None:
        argv = ["scontrol", "update", f"nodename={node}", f"state={state}"]
        if reason is not None:
            argv.append(f"reason={reason}")
        self.run(argv)

    def set_node_instance(self, node: str, instance_id: str, instance_type: str) -> None:
        """The node's EC2 instance in Slurm (23.11+), as ParallelCluster's resume sets it."""
        self.run(["scontrol", "update", f"nodename={node}", f"instanceid={instance_id}",
                  f"instancetype={instance_type}"])

    def run_on_node(self, node: str, queue: str, command: str, *, timeout: float = 300,
                    job_name: str = "hpctool-exec") -> subprocess.CompletedProcess[str]:
        """``bash -c COMMAND`` as one step on one idle node (``srun -w``), waiting at most 30 s for
        it; the exit code and output are the command's (not checked)."""
        argv = ["srun", f"--nodelist={node}", "--nodes=1", "--ntasks=1", f"--partition={queue}",
                "--immediate=30", f"--job-name={job_name}", "--quiet", "bash", "-c", command]
        result = self.run(argv, timeout=timeout, check=False)
        # Slurm 24.11 refuses at once ("Requested nodes are busy") while the node still completes
        # the previous step's allocation, instead of waiting out --immediate: try a few more times.
        for _ in range(BUSY_RETRIES):
            if result.returncode == 0 or "Requested nodes are busy" not in result.stderr:
                break
            time.sleep(BUSY_RETRY_S)
            result = self.run(argv, timeout=timeout, check=False)
        return result

    def ping(self) -> bool:
        """True when slurmctld answers."""
        try:
            result = self.run(["scontrol", "ping"], timeout=10, check=False)
        except SlurmError:
            return False
        return result.returncode == 0 and "UP" in result.stdout

    # -- accounting users ---------------------------------------------------------------------
    def user_accounts(self, user: str) -> list[str]:
        """The accounts ``user`` has an association with."""
        return self.run(["sacctmgr", "-n", "-P", "show", "assoc", f"user={user}", "format=account"]).stdout.split()

    def add_user(self, user: str, account: str, *, default: bool = False, shares: int | None = None) -> None:
        """An association of ``user`` under ``account`` (``default``: the account its jobs go to)."""
        argv = ["sacctmgr", "-i", "add", "user", user, f"account={account}"]
        argv += [f"DefaultAccount={account}"] if default else []
        argv += [f"Fairshare={shares}"] if shares is not None else []
        self.run(argv)

    def associations(self) -> list[Association]:
        return parse_associations(self.run(["sacctmgr", "-n", "-P", "show", "assoc",
                                            f"format={','.join(ASSOC_FIELDS)}"]).stdout)

    def add_account(self, account: str, *, parent: str = "root", description: str = "") -> None:
        self.run(["sacctmgr", "-i", "add", "account", account, f"parent={parent}",
                  f"Description={description or account}", f"Organization={account}"])

    def remove_user(self, user: str) -> None:
        """Every association of ``user`` (Slurm refuses while the user has jobs running)."""
        self.run(["sacctmgr", "-i", "delete", "user", f"name={user}"])

    def fair_share(self) -> list[FairShare]:
        return parse_sshare(self.run(["sshare", "-a", "-n", "-P", "-o", ",".join(SSHARE_FIELDS)]).stdout)
