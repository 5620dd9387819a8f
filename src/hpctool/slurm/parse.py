"""Pure parsers of Slurm command output (no subprocess here, so they are tested on pasted output).

We parse text rather than ``--json`` because Debian 12's Slurm 22.05 JSON output depends on
data_parser plugins that vary between builds; the text formats below are stable since 20.x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpctool.errors import SlurmError

_FORMAT_HINT = "is this Slurm 20.02 or newer? (`sinfo --version`); report the line above if so"

# `scontrol show -o` prints `Key=Value` pairs separated by spaces; a value may itself contain
# spaces (Reason=..., Comment=...), so a value runs until the next ` Key=` token.
_SCONTROL_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")


def parse_scontrol_record(line: str) -> dict[str, str]:
    """One line of ``scontrol -o show node|job|partition`` as a dict of its fields."""
    line = line.strip()
    matches = list(_SCONTROL_KEY.finditer(line))
    record: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[match.group(1)] = line[match.end() : end].strip()
    return record


def parse_scontrol_records(text: str) -> list[dict[str, str]]:
    """All records of ``scontrol -o show ...`` output (one per non-empty line)."""
    records = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("No "):
            records.append(parse_scontrol_record(line))
    return records


def parse_delimited(text: str, fields: list[str], delimiter: str = "|",
                    free_last: bool = False) -> list[dict[str, str]]:
    """Rows of ``--parsable2 --noheader`` (sacct) or ``-h -o %a|%b`` (squeue, sinfo) output.

    ``free_last``: the last field is free text that may itself hold the delimiter (a job name
    such as ``a|b``; Slurm does not escape it), so a line is split at most ``len(fields) - 1`` times.
    """
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split(delimiter, len(fields) - 1) if free_last else line.split(delimiter)
        if len(values) != len(fields):
            raise SlurmError(
                f"expected {len(fields)} fields separated by {delimiter!r}, got {len(values)}: {line!r}",
                _FORMAT_HINT,
            )
        rows.append(dict(zip(fields, values, strict=True)))
    return rows


# -- job states -------------------------------------------------------------------------------
# Slurm's job states (squeue/scontrol/sacct spell them the same; sacct adds "by UID" to
# CANCELLED). Active: the job may still run or run again; finished: it never will by itself.
# EXPEDITING (25.11, `--requeue=expedite`) stands where REQUEUED did after a node failure.
ACTIVE_JOB_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
    "EXPEDITING",
})
FINISHED_JOB_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "PREEMPTED", "REVOKED",
})


def job_state_base(state: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``running`` -> ``RUNNING``; ``RUNNING+...`` -> ``RUNNING``."""
    words = state.strip().split()
    return words[0].split("+")[0].upper() if words else ""


def job_active(state: str) -> bool:
    """True while the job may still run (or run again): pending, running, requeued, completing..."""
    return job_state_base(state) in ACTIVE_JOB_STATES


def job_finished(state: str) -> bool:
    """True once the job is over for good: completed, failed, cancelled, timed out, node failure..."""
    return job_state_base(state) in FINISHED_JOB_STATES


@dataclass(frozen=True)
class AcctJob:
    """One allocation (not its steps) as ``sacct`` reports it."""

    job_id: str
    name: str
    partition: str
    state: str
    exit_code: str
    node_list: str
    restarts: int
    elapsed_seconds: int
    submit: str
    start: str
    end: str

    @property
    def recorded(self) -> bool:
        """False for the placeholder row slurmdbd shows when a job's steps reached it before the
        job record itself (name ``allocation``, no partition): the job's final row is yet to come."""
        return bool(self.partition)

    @property
    def finished(self) -> bool:
        return self.recorded and not job_active(self.state)


# JobName comes last: it is the one free-text field, and sacct prints a `|` in it unescaped.
SACCT_FIELDS = [
    "JobID",
    "Partition",
    "State",
    "ExitCode",
    "NodeList",
    "ElapsedRaw",
    "Submit",
    "Start",
    "End",
    "JobName",
]


def parse_elapsed(value: str) -> int:
    """Slurm durations: ``[D-]HH:MM:SS``, ``MM:SS`` or a number of seconds (ElapsedRaw)."""
    value = value.strip()
    if not value or value.upper() in {"INVALID", "UNLIMITED", "INFINITE", "PARTITION_LIMIT", "NONE"}:
        return 0
    if value.isdigit():
        return int(value)
    original = value
    try:
        days = 0
        if "-" in value:
            day_text, value = value.split("-", 1)
            days = int(day_text)
        parts = [int(p) for p in value.split(":")]
        if not 1 <= len(parts) <= 3:
            raise ValueError(original)
        while len(parts) < 3:
            parts.insert(0, 0)
        hours, minutes, seconds = parts
    except ValueError as error:
        raise SlurmError(f"{original!r} is not a Slurm duration ([D-]HH:MM:SS)", _FORMAT_HINT) from error
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_sacct_jobs(text: str) -> list[AcctJob]:
    """Allocations from ``sacct -X -D --parsable2 --noheader -o <SACCT_FIELDS>``.

    Slurm 22.05's sacct has no restart counter: with ``-D`` (duplicates) a requeued job shows
    one record per run, the earlier ones in state REQUEUED (or NODE_FAIL, PREEMPTED), so the
    number of restarts is the number of earlier records. The last record is the job's current
    run. The State column reads ``CANCELLED by 0`` for cancelled jobs; only its first word is kept.
    """
    runs: dict[str, list[dict[str, str]]] = {}
    for row in parse_delimited(text, SACCT_FIELDS, free_last=True):
        runs.setdefault(row["JobID"], []).append(row)
    jobs = []
    for job_id, records in runs.items():
        row = records[-1]
        jobs.append(
            AcctJob(
                job_id=job_id,
                name=row["JobName"],
                partition=row["Partition"],
                state=job_state_base(row["State"]),
                exit_code=row["ExitCode"],
                node_list=row["NodeList"],
                restarts=len(records) - 1,
                elapsed_seconds=parse_elapsed(row["ElapsedRaw"]),
                submit=row["Submit"],
                start=row["Start"],
                end=row["End"],
            )
        )
    return jobs


def parse_sbatch_parsable(text: str) -> str:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    job_id = first.split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {text.strip()!r}", "run the same sbatch by hand to see why")
    return job_id


def node_state_flags(state: str) -> tuple[str, set[str]]:
    """Split a node State such as ``IDLE+DRAIN`` or ``DOWN*+NOT_RESPONDING`` into base and flags."""
    parts = state.split("+")
    base = parts[0].rstrip("*~#!%$@^-").upper()
    flags = {p.upper() for p in parts[1:]}
    # sinfo's long states carry power and response as suffixes (``idle~``, ``alloc#``, ``down*``).
    for suffix, flag in _SUFFIX_FLAGS.items():
        if suffix in parts[0]:
            flags.add(flag)
    return base, flags


_SUFFIX_FLAGS = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "%": "POWERING_DOWN"}


# FAILING: sinfo's name for MIXED+FAIL (25.11.1+). BLOCKED (24.05+, a node an exclusive topology
# job holds back) is neither: it answers but takes no new job now, and nobody took it out.
_OUT_OF_SERVICE = {"DOWN", "DRAINED", "DRAINING", "DRAIN", "FAIL", "FAILING"}
_IN_SERVICE = {"IDLE", "MIXED", "ALLOCATED", "COMPLETING"}
_OUT_OF_SERVICE_FLAGS = {"DRAIN", "FAIL"}


def node_out_of_service(state: str) -> bool:
    """True for a node an admin (or a reclaim) took out: down, drained or draining, failed."""
    base, flags = node_state_flags(state.upper())
    return base in _OUT_OF_SERVICE or bool(flags & _OUT_OF_SERVICE_FLAGS)


def node_in_service(state: str) -> bool:
    """True for a node that answers and takes jobs (idle, mixed, allocated, completing)."""
    base, flags = node_state_flags(state.upper())
    return base in _IN_SERVICE and not flags & (_OUT_OF_SERVICE_FLAGS | {"NOT_RESPONDING"})


def node_powered_down(state: str) -> bool:
    """True for a cloud node that is powered down or powering down (``idle~``, ``idle%``)."""
    _, flags = node_state_flags(state.upper())
    return bool(flags & {"POWERED_DOWN", "POWERING_DOWN"})



# -- what a queue's nodes offer ----------------------------------------------------------------
# `sinfo -h -N -o <SINFO_NODE_FORMAT>`: one row per node and partition. %R is the partition name,
# %P the same with a `*` on the default partition.
SINFO_NODE_FORMAT = "%R|%P|%N|%c|%m|%l|%T|%f"
_SINFO_NODE_FIELDS = ["partition", "marked", "node", "cpus", "memory", "time_limit", "state", "features"]


@dataclass(frozen=True)
class QueueNode:
    """One node of one partition, as ``sinfo -N`` reports it."""

    partition: str
    default: bool  # the partition is the cluster's default one
    node: str
    cpus: int
    memory_mb: int
    time_limit_min: int | None  # the partition's MaxTime; None: no limit
    state: str
    features: tuple[str, ...]


def parse_time_limit(value: str) -> int | None:
    """A partition's time limit (``infinite``, ``1-00:00:00``, ``30:00``) in minutes; None: no limit."""
    if value.strip().upper() in {"INFINITE", "UNLIMITED", "NONE", ""}:
        return None
    return parse_elapsed(value) // 60


def _count(value: str, what: str) -> int:
    text = value.strip().rstrip("+")  # sinfo marks aggregated minimums with "+"
    if not text.isdigit():
        raise SlurmError(f"sinfo printed {value!r} as {what}", _FORMAT_HINT)
    return int(text)


def parse_sinfo_nodes(text: str) -> list[QueueNode]:
    """Rows of ``sinfo -h -N -o SINFO_NODE_FORMAT``."""
    return [
        QueueNode(
            partition=row["partition"],
            default=row["marked"].endswith("*"),
            node=row["node"],
            cpus=_count(row["cpus"], "a CPU count"),
            memory_mb=_count(row["memory"], "a memory size"),
            time_limit_min=parse_time_limit(row["time_limit"]),
            state=row["state"],
            features=tuple(f for f in row["features"].split(",") if f and f != "(null)"),
        )
        for row in parse_delimited(text, _SINFO_NODE_FIELDS, free_last=True)
    ]


def parse_scontrol_config(text: str) -> dict[str, str]:
    """``scontrol show config``: ``Key = Value`` lines as a dict (other lines are skipped)."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


# The spot-interruption handler (bootstrap/spot-interruption-handler) drains a node with this
# reason before it signals the node's jobs.
SPOT_NOTICE_REASON = "spot-interruption"


def node_under_spot_notice(reason: str) -> bool:
    """True when a node's Reason says the spot handler drained it for an interruption notice."""
    return reason.strip().startswith(SPOT_NOTICE_REASON)


def has_accounting(config: dict[str, str]) -> bool:
    """From ``scontrol show config``: accounting goes to slurmdbd. Without it Slurm 22.05 shows
    ``accounting_storage/none`` and 24.11 shows nothing (``(null)`` or an empty value)."""
    return "slurmdbd" in config.get("AccountingStorageType", "")


def acct_jobs_from_scontrol(records: list[dict[str, str]]) -> list[AcctJob]:
    """``scontrol -o show job`` records as sacct's rows: what stands in for accounting on a cluster
    without it (only the jobs slurmctld still knows). Ids as sacct writes them (array tasks
    ``ARRAYJOB_TASK``); ``Unknown`` and ``(null)`` become empty."""

    def value(record: dict[str, str], key: str) -> str:
        text = record.get(key, "")
        return "" if text in ("(null)", "Unknown", "None") else text

    jobs = []
    for record in records:
        task, array = value(record, "ArrayTaskId"), value(record, "ArrayJobId")
        jobs.append(AcctJob(
            job_id=f"{array}_{task}" if task and array else record.get("JobId", ""),
            name=record.get("JobName", ""), partition=value(record, "Partition"),
            state=record.get("JobState", ""), exit_code=record.get("ExitCode", ""),
            node_list=value(record, "NodeList"), restarts=int(record.get("Restarts") or 0),
            elapsed_seconds=parse_elapsed(record.get("RunTime") or "0"), submit=value(record, "SubmitTime"),
            start=value(record, "StartTime"), end=value(record, "EndTime")))
    return jobs
