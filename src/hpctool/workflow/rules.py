"""Where a Snakemake run's jobs ran: each Slurm job of a run mapped back to its rule(s), from
Snakemake's own log and Slurm's accounting (pure parsers, and one sacct)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hpctool.errors import AccountingDisabledError
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import AcctJob, acct_jobs_from_scontrol

# "Job 7 has been submitted with SLURM jobid 85 (log: .../slurm_logs/rule_align/S1/85.log)."
# A group job's folder is group_<group>_<rules>; its Slurm log names the rules it ran.
_SUBMITTED = re.compile(r"Job (?P<job>\S+) has been submitted with SLURM jobid (?P<slurm>\d+) "
                        r"\(log: (?P<log>\S+?)\)\.?$")
_RULE_HEADER = re.compile(r"^(?:local)?rule (?P<rule>\w+):$", re.MULTILINE)
_WILDCARDS = re.compile(r"^\s*wildcards: (?P<wildcards>.+)$", re.MULTILINE)


@dataclass(frozen=True)
class SlurmRuleJob:
    """One Slurm job of a Snakemake run: its id and the rule(s) it ran."""

    slurm_job_id: str
    rules: tuple[str, ...]
    wildcards: str
    snakemake_job: str = ""  # Snakemake's job id (a number; a uuid for group jobs)


# -- what ran where --------------------------------------------------------------------------
def rules_in_job_log(text: str) -> tuple[tuple[str, ...], str]:
    """The rules (sorted) and first wildcards a Slurm job's log shows Snakemake running."""
    rules = tuple(sorted(set(_RULE_HEADER.findall(text))))
    found = _WILDCARDS.search(text)
    # "sample=S1, lane=2" -> "S1/2": the form the plugin uses for a single rule's log folder
    values = [item.partition("=")[2].strip() for item in found.group("wildcards").split(",")] if found else []
    return rules, "/".join(values)


def parse_submissions(log_text: str, read_job_log: Callable[[Path], str | None] | None = None) -> list[SlurmRuleJob]:
    """Slurm jobs from a Snakemake log. A single rule's job names it in its log folder
    (``rule_<rule>/<wildcards>``); a group job's rules come from its own Slurm log, read with
    ``read_job_log`` (the folder name when that log is gone)."""
    jobs: list[SlurmRuleJob] = []
    for line in log_text.splitlines():
        submitted = _SUBMITTED.search(line.strip())
        if not submitted:
            continue
        log = Path(submitted.group("log"))
        parts = log.parts
        where = parts.index("slurm_logs") if "slurm_logs" in parts else max(len(parts) - 3, 0)
        folder = parts[where + 1] if where + 1 < len(parts) - 1 else ""
        wildcards = "/".join(parts[where + 2 : -1])
        rules: tuple[str, ...] = (folder[len("rule_"):],) if folder.startswith("rule_") else (folder,)
        if not folder.startswith("rule_") and read_job_log is not None:
            text = read_job_log(log)
            if text:
                found, wildcards = rules_in_job_log(text)
                rules = found or rules
        jobs.append(SlurmRuleJob(submitted.group("slurm"), rules, wildcards, submitted.group("job")))
    return jobs


_FINISHED = re.compile(r"^Finished jobid: (?P<job>\S+) \(Rule: (?P<rule>\w+)\)", re.MULTILINE)


_RULE_BLOCK = re.compile(r"^\s*(?:local)?rule (?P<rule>\w+):\n(?P<body>(?:\s+\w[\w ]*: .*\n)+)", re.MULTILINE)
_JOBID = re.compile(r"^\s*jobid: (?P<job>\S+)$", re.MULTILINE)


def planned_rule_jobs(log_text: str) -> dict[str, tuple[str, str]]:
    """Snakemake job id -> (rule, wildcards as ``S1/2``) of every rule job a Snakemake log shows,
    alone or inside a group job (whose members each have their own block and job id)."""
    planned: dict[str, tuple[str, str]] = {}
    for block in _RULE_BLOCK.finditer(log_text):
        job = _JOBID.search(block.group("body"))
        if job is None:
            continue
        _, wildcards = rules_in_job_log(f"rule {block.group('rule')}:\n{block.group('body')}")
        planned[job.group("job")] = (block.group("rule"), wildcards)
    return planned


def finished_rule_jobs(log_text: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every rule job Snakemake saw finish in one log, grouped or not."""
    planned = planned_rule_jobs(log_text)
    return {planned[job] for job, _ in _FINISHED.findall(log_text) if job in planned}


def _read_if_there(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def run_logs(run_dir: Path) -> list[Path]:
    """Snakemake's logs of every invocation in a run folder, oldest first."""
    return sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))


def submitted_jobs(run_dir: Path) -> list[SlurmRuleJob]:
    jobs: list[SlurmRuleJob] = []
    for log in run_logs(run_dir):
        jobs += parse_submissions(log.read_text(errors="replace"), read_job_log=_read_if_there)
    return jobs


@dataclass(frozen=True)
class RuleJobRecord:
    """A rule's Slurm job with what accounting says about it."""

    rules: tuple[str, ...]
    wildcards: str
    acct: AcctJob


def rule_jobs(slurm: Slurm, run_dir: Path) -> list[RuleJobRecord]:
    """Every Slurm job of the run, joined with its sacct record (partition, node, restarts), or
    slurmctld's on a cluster without accounting (for MinJobAge after a job ended)."""
    jobs = submitted_jobs(run_dir)
    if not jobs:
        return []
    try:
        records = slurm.sacct([j.slurm_job_id for j in jobs])
    except AccountingDisabledError:  # a cluster without accounting: what slurmctld still knows
        records = acct_jobs_from_scontrol(slurm.jobs())
    acct = {record.job_id: record for record in records}
    return [RuleJobRecord(j.rules, j.wildcards, acct[j.slurm_job_id]) for j in jobs if j.slurm_job_id in acct]
