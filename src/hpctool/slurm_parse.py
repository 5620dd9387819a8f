"""Pure parsers of Slurm command output (no subprocess here, so they are tested on pasted output).

We parse text rather than ``--json`` because Debian 12's Slurm 22.05 JSON output depends on
data_parser plugins that vary between builds; the text formats below are stable since 20.x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def parse_delimited(text: str, fields: list[str], delimiter: str = "|") -> list[dict[str, str]]:
    """Rows of ``--parsable2 --noheader`` (sacct) or ``-h -o %a|%b`` (squeue, sinfo) output."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split(delimiter)
        if len(values) != len(fields):
            raise ValueError(
                f"expected {len(fields)} fields separated by {delimiter!r}, got {len(values)}: {line!r}"
            )
        rows.append(dict(zip(fields, values, strict=True)))
    return rows


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
        return self.recorded and self.state not in {"PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "RESIZING"}


SACCT_FIELDS = [
    "JobID",
    "JobName",
    "Partition",
    "State",
    "ExitCode",
    "NodeList",
    "ElapsedRaw",
    "Submit",
    "Start",
    "End",
]


def parse_elapsed(value: str) -> int:
    """Slurm durations: ``[D-]HH:MM:SS``, ``MM:SS`` or a number of seconds (ElapsedRaw)."""
    value = value.strip()
    if not value or value in {"INVALID", "UNLIMITED", "Partition_Limit"}:
        return 0
    if value.isdigit():
        return int(value)
    days = 0
    if "-" in value:
        day_text, value = value.split("-", 1)
        days = int(day_text)
    parts = [int(p) for p in value.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_sacct_jobs(text: str) -> list[AcctJob]:
    """Allocations from ``sacct -X -D --parsable2 --noheader -o <SACCT_FIELDS>``.

    Slurm 22.05's sacct has no restart counter: with ``-D`` (duplicates) a requeued job shows
    one record per run, the earlier ones in state REQUEUED (or NODE_FAIL, PREEMPTED), so the
    number of restarts is the number of earlier records. The last record is the job's current
    run. The State column reads ``CANCELLED by 0`` for cancelled jobs; only its first word is kept.
    """
    runs: dict[str, list[dict[str, str]]] = {}
    for row in parse_delimited(text, SACCT_FIELDS):
        runs.setdefault(row["JobID"], []).append(row)
    jobs = []
    for job_id, records in runs.items():
        row = records[-1]
        jobs.append(
            AcctJob(
                job_id=job_id,
                name=row["JobName"],
                partition=row["Partition"],
                state=row["State"].split()[0] if row["State"] else "",
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
        raise ValueError(f"sbatch printed no job id: {text!r}")
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


_OUT_OF_SERVICE = {"DOWN", "DRAINED", "DRAINING", "DRAIN", "FAIL"}
_IN_SERVICE = {"IDLE", "MIXED", "ALLOCATED", "COMPLETING"}


def node_out_of_service(state: str) -> bool:
    """True for a node an admin (or a reclaim) took out: down, drained or draining, failed."""
    base, flags = node_state_flags(state.upper())
    return base in _OUT_OF_SERVICE or "DRAIN" in flags


def node_in_service(state: str) -> bool:
    """True for a node that answers and takes jobs (idle, mixed, allocated, completing)."""
    base, flags = node_state_flags(state.upper())
    return base in _IN_SERVICE and not flags & {"DRAIN", "NOT_RESPONDING"}


def node_powered_down(state: str) -> bool:
    """True for a cloud node that is powered down or powering down (``idle~``, ``idle%``)."""
    _, flags = node_state_flags(state.upper())
    return bool(flags & {"POWERED_DOWN", "POWERING_DOWN"})


# Job states (``squeue``/``scontrol`` JobState) of a job that still holds or waits for nodes.
ACTIVE_JOB_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                               "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING",
                               "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})


def job_active(state: str) -> bool:
    """True while a job is queued or running (not yet completed, failed, cancelled...)."""
    return state.split()[0].upper() in ACTIVE_JOB_STATES if state.strip() else False
