"""The one module that runs Slurm's binaries.

Everything goes through :func:`run`: argv lists, a timeout, never a shell. Output is handed to
the pure parsers in :mod:`hpctool.slurm_parse`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from hpctool.errors import SlurmError
from hpctool.slurm_parse import (
    SACCT_FIELDS,
    SINFO_NODE_FORMAT,
    AcctJob,
    QueueNode,
    parse_delimited,
    parse_sacct_jobs,
    parse_sbatch_parsable,
    parse_scontrol_config,
    parse_scontrol_records,
    parse_sinfo_nodes,
)

DEFAULT_TIMEOUT = 30.0


def slurm_env(slurm_conf: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The environment for a Slurm command, pointed at ``slurm_conf`` when given."""
    env = dict(os.environ)
    if slurm_conf is not None:
        env["SLURM_CONF"] = str(slurm_conf)
    return env


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    input_text: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one Slurm command; raise :class:`SlurmError` naming the command when it fails."""
    argv = [str(a) for a in argv]
    if shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
        raise SlurmError(
            f"{argv[0]}: command not found",
            "install Slurm's client tools (`make setup` installs slurm-client)",
        )
    try:
        result = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(
            f"{' '.join(argv)} did not answer within {timeout:.0f} s",
            "is slurmctld running? (`hpctool local status` for the twin, `scontrol ping` on a cluster)",
        ) from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise SlurmError(f"{' '.join(argv)} failed (exit {result.returncode}): {detail}", failure_hint(argv[0], detail))
    return result


def failure_hint(program: str, detail: str) -> str:
    """What to do when a Slurm command failed: name the daemon it could not reach. sacct and
    sacctmgr talk to slurmdbd (accounting), the other commands to slurmctld."""
    down = ("Connection refused", "Unable to contact", "Problem talking to the database",
            "persistent connection", "Socket timed out", "Zero Bytes were transmitted")
    if program in {"sacct", "sacctmgr", "sreport"}:
        if any(text in detail for text in down):
            return ("slurmdbd (accounting) is not reachable: on the twin `hpctool local status` names what "
                    "is down and `hpctool local up` starts it; on a cluster `systemctl status slurmdbd` on the "
                    "head node (`squeue` still lists jobs that slurmctld knows)")
        return "check the accounting database (`sacctmgr show cluster`)"
    if any(text in detail for text in down):
        return ("slurmctld is not reachable: on the twin `hpctool local status` names what is down and "
                "`hpctool local up` starts it; on a cluster `scontrol ping`, and check SLURM_CONF")
    return "check that slurmctld is up (`scontrol ping`)"


class Slurm:
    """Slurm's commands against one cluster (given by its slurm.conf, or the default one)."""

    def __init__(self, slurm_conf: str | os.PathLike[str] | None = None) -> None:
        self.slurm_conf = str(slurm_conf) if slurm_conf is not None else None
        self.env = slurm_env(self.slurm_conf)

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("env", self.env)
        return run(argv, **kwargs)

    # -- jobs ---------------------------------------------------------------------------------
    def sbatch(self, options: Sequence[str], *, wrap: str | None = None, script: str | None = None) -> str:
        """Submit a batch job; return its id. Give either a ``--wrap`` command or a script text."""
        argv = ["sbatch", "--parsable", *options]
        if wrap is not None:
            argv += ["--wrap", wrap]
        result = self.run(argv, input_text=script)
        return parse_sbatch_parsable(result.stdout)

    def requeue(self, job_id: str) -> None:
        self.run(["scontrol", "requeue", job_id])

    def cancel(self, job_ids: Sequence[str], signal: str | None = None, batch: bool = False) -> None:
        argv = ["scancel"]
        if signal:
            argv.append(f"--signal={signal}")
        if batch:
            argv.append("--batch")
        self.run([*argv, *job_ids])

    def jobs(self) -> list[dict[str, str]]:
        """Jobs slurmctld knows now (``scontrol show job``), as records."""
        result = self.run(["scontrol", "-o", "show", "job"])
        return parse_scontrol_records(result.stdout)

    def job(self, job_id: str) -> dict[str, str]:
        result = self.run(["scontrol", "-o", "show", "job", job_id])
        records = parse_scontrol_records(result.stdout)
        if not records:
            raise SlurmError(f"job {job_id} is not known to slurmctld", "it may have aged out; use sacct")
        return records[0]

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

    def config(self) -> dict[str, str]:
        """slurmctld's running configuration (``scontrol show config``)."""
        return parse_scontrol_config(self.run(["scontrol", "show", "config"]).stdout)

    def node_states(self) -> dict[str, str]:
        """Node name -> long state (``idle``, ``mixed``, ``drained``, ``down*``...) from sinfo."""
        result = self.run(["sinfo", "-h", "-N", "-o", "%N|%T"])
        return {row["node"]: row["state"] for row in parse_delimited(result.stdout, ["node", "state"])}

    def update_node(self, node: str, state: str, reason: str | None = None) -> None:
        argv = ["scontrol", "update", f"nodename={node}", f"state={state}"]
        if reason is not None:
            argv.append(f"reason={reason}")
        self.run(argv)

    def ping(self) -> bool:
        """True when slurmctld answers."""
        try:
            result = self.run(["scontrol", "ping"], timeout=10, check=False)
        except SlurmError:
            return False
        return result.returncode == 0 and "UP" in result.stdout
