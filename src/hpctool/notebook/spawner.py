"""The hub's spawner: batchspawner's SlurmSpawner, with what a genomics cluster needs on top.

- an options form of the cluster's queues (instance type, vCPUs, memory, spot warning) whose
  limits are checked again on the hub;
- failure detection while the job starts: a job that ends, or pends for a reason that cannot
  clear (``BadConstraints``, ``ReqNodeNotAvail``, ...), fails the spawn at once with Slurm's
  state and reason instead of leaving the hub waiting for ``start_timeout`` (batchspawner
  issues 88, 215, 253);
- the reason a running server's job ended (a node failure, a reclaimed spot instance, the time
  limit) kept in the spawner state and shown on the next visit to the form.

This file runs inside JupyterHub, on the twin and on a head node, where it is installed as a plain
module next to ``jupyterhub_config.py``: it imports only the standard library, traitlets and
batchspawner/JupyterHub, never the rest of hpctool. Slurm is called through batchspawner's own
command strings (its job), with the absolute paths the generated config gives it.
"""

from __future__ import annotations

import asyncio
import html
import re
import shlex
import time
from dataclasses import dataclass

from batchspawner import JobStatus, SlurmSpawner
from batchspawner.batchspawner import format_template
from tornado import web
from traitlets import Dict, Float, Integer, List, Unicode

# Pending reasons that never clear by waiting: the request cannot be met, the queue is closed, or
# every node that could run it is out of service. Admins can extend the list (``fatal_reasons``).
FATAL_PENDING_REASONS = (
    "BadConstraints",
    "PartitionConfig",
    "PartitionDown",
    "PartitionInactive",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "ReqNodeNotAvail",
    "NodeDown",
    "Nodes_required_for_job_are_DOWN",
    "Nodes required for job are DOWN",  # how squeue spells it in 22.05
    "InvalidAccount",
    "InvalidQOS",
    "AccountNotAllowed",
    "QOSMaxWallDurationPerJobLimit",
    "DependencyNeverSatisfied",
    "JobHeldAdmin",
    "launch_failed_requeued_held",
)
# Job states of a job that has ended (squeue --states=all keeps them for MinJobAge seconds).
ENDED_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"}


@dataclass(frozen=True)
class JobState:
    """One line of ``squeue -h -j ID --states=all -o '%T|%B|%r'``."""

    state: str
    host: str
    reason: str


def parse_job_state(text: str) -> JobState | None:
    """Parse the query's output; None for anything else (an error message, nothing)."""
    lines = [line for line in text.strip().splitlines() if line.count("|") >= 2]
    if not lines:
        return None
    state, host, reason = (part.strip() for part in lines[-1].split("|", 2))
    if not re.fullmatch(r"[A-Z_]+", state):
        return None
    return JobState(state=state, host="" if host in ("n/a", "(null)") else host,
                    reason="" if reason in ("None", "(null)") else reason)


def fatal_reason(reason: str, fatal: tuple[str, ...] | list[str] = FATAL_PENDING_REASONS) -> bool:
    """True when a pending job's reason is one that waiting does not clear."""
    return any(reason == f or reason.startswith((f + ",", f + ":", f + "_", f + " ")) for f in fatal)


def describe_end(job_id: str, job: JobState | None, node_reason: str = "") -> str:
    """A sentence for the user about why a job is no longer there."""
    if job is None:
        return f"Slurm job {job_id} is gone (no longer known to Slurm)."
    where = f" on {job.host}" if job.host else ""
    why = f" ({job.reason})" if job.reason else ""
    text = f"Slurm job {job_id} ended: {job.state}{why}{where}."
    if node_reason:
        text += f" Node reason: {node_reason}."
        if node_reason.startswith("spot"):
            text += " The spot instance under it was reclaimed by EC2 after its 2-minute interruption notice."
    if job.state == "TIMEOUT":
        text += " It reached the hours you asked for."
    return text


def check_options(formdata: dict[str, list[str]], queues: list[dict], max_hours: int) -> dict[str, str]:
    """The form's answers as batchspawner's template variables, checked against the queue's limits.

    Raises ValueError with a sentence for the user (JupyterHub shows it above the form)."""
    by_name = {q["name"]: q for q in queues}

    def one(key: str, default: str = "") -> str:
        values = formdata.get(key) or [default]
        return str(values[0]).strip()

    name = one("queue")
    if name not in by_name:
        raise ValueError(f"unknown queue {name!r}: choose one of {', '.join(by_name)}")
    queue = by_name[name]

    def number(key: str, low: int, high: int, label: str) -> int:
        raw = one(key)
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{label} must be a whole number, not {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"{label} must be from {low} to {high} on queue {name} "
                             f"({queue['instance_type']}), not {value}")
        return value

    cpus = number("cpus", 1, int(queue["cpus"]), "CPUs")
    memory = number("memory_gb", 1, int(queue["memory_gb"]), "Memory (GB)")
    hours = number("hours", 1, max_hours, "Hours")
    return {"partition": name, "nprocs": str(cpus), "memory": f"{memory}G", "runtime": f"{hours}:00:00",
            "queue_label": queue["instance_type"]}


def options_form_html(queues: list[dict], max_hours: int, default_hours: int, notice: str = "") -> str:
    """The form: one radio per queue with its instance type and size, CPUs, memory and hours."""
    rows = []
    for index, q in enumerate(queues):
        capacity = "spot" if q["spot"] else "on-demand"
        warning = (' <span class="hpctool-spot">may be reclaimed with 2 minutes\' notice</span>'
                   if q["spot"] else "")
        checked = " checked" if index == 0 else ""
        rows.append(
            f'<div class="radio"><label><input type="radio" name="queue" value="{html.escape(q["name"])}"'
            f' data-cpus="{q["cpus"]}" data-memory="{q["memory_gb"]}"{checked}>'
            f' <strong>{html.escape(q["name"])}</strong> ({capacity}, {html.escape(q["instance_type"])}:'
            f' {q["cpus"]} vCPUs, {q["memory_gb"]} GB per node){warning}</label></div>'
        )
    first = queues[0]
    banner = (f'<div class="alert alert-warning" id="hpctool-last-stop">Your last server stopped. '
              f'{html.escape(notice)}</div>' if notice else "")
    return f"""{banner}
<div class="form-group" id="hpctool-queues"><label>Queue</label>
{chr(10).join(rows)}
</div>
<div class="form-group"><label for="hpctool-cpus">CPUs</label>
<input class="form-control" type="number" id="hpctool-cpus" name="cpus" value="1" min="1" max="{first['cpus']}"></div>
<div class="form-group"><label for="hpctool-memory">Memory (GB)</label>
<input class="form-control" type="number" id="hpctool-memory" name="memory_gb" value="1" min="1"
 max="{first['memory_gb']}"></div>
<div class="form-group"><label for="hpctool-hours">Hours</label>
<input class="form-control" type="number" id="hpctool-hours" name="hours" value="{default_hours}" min="1"
 max="{max_hours}"></div>
<script>
document.querySelectorAll('#hpctool-queues input[name=queue]').forEach(function (radio) {{
  radio.addEventListener('change', function () {{
    document.getElementById('hpctool-cpus').max = radio.dataset.cpus;
    document.getElementById('hpctool-memory').max = radio.dataset.memory;
  }});
}});
</script>
"""


class SpawnFailed(web.HTTPError):
    """A start that failed, with a sentence for the user. An HTTPError so that JupyterHub shows
    the sentence even when the failure comes within the spawn request's first second (it turns
    any other exception there into a bare "Unhandled error starting server")."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "%s", message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def resolve_in_hosts_file(name: str, path: str) -> str:
    """``name``'s address in a hosts-format file, or ``name`` itself when the file does not list it."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return name
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and name in words[1:]:
            return words[0]
    return name


class HpctoolSlurmSpawner(SlurmSpawner):
    """SlurmSpawner with the queue form, fast failure detection and a remembered stop reason."""

    queues = List(Dict(), help="[{name, spot, instance_type, cpus, memory_gb}] from the cluster config").tag(
        config=True)
    max_hours = Integer(24, help="longest session a user can ask for").tag(config=True)
    default_hours = Integer(4).tag(config=True)
    fatal_reasons = List(Unicode(), list(FATAL_PENDING_REASONS),
                         help="pending reasons that fail the spawn (after fatal_reason_grace)").tag(config=True)
    fatal_reason_grace = Float(
        30.0, help="seconds a fatal pending reason must persist; ParallelCluster shows some while "
                   "a dynamic node is replaced").tag(config=True)
    # B104: the node's notebook server must be reached by the hub; nodes sit in private subnets
    bind_ip = Unicode("0.0.0.0", help="where the notebook server listens on its node").tag(config=True)  # nosec B104
    exechost_address = Unicode(
        "", help="connect here instead of the job's node name (the twin's nodes all live on "
                 "127.0.0.1)").tag(config=True)
    exechost_hosts_file = Unicode(
        "", help="a hosts file that resolves the job's node name (the twin's hosts, which the machine's "
                 "own resolver does not know)").tag(config=True)
    sinfo_cmd = Unicode("sinfo", help="absolute path of sinfo (the node's reason after a failure)").tag(
        config=True)
    batch_query_cmd = Unicode("squeue -h -j {job_id} --states=all -o '%T|%B|%r'").tag(config=True)
    state_pending_re = Unicode(r"^(?:PENDING|CONFIGURING|REQUEUED|EXPEDITING|RESV_DEL_HOLD|SUSPENDED)\|").tag(config=True)
    state_running_re = Unicode(r"^(?:RUNNING|COMPLETING)\|").tag(config=True)
    state_exechost_re = Unicode(r"^[A-Z_]+\|([^|]+)\|").tag(config=True)
    req_workdir = Unicode("{homedir}", help="the job's folder, on shared storage ({username}, {homedir})").tag(
        config=True)
    last_stop = Unicode("")

    def get_req_subvars(self) -> dict:
        subvars = super().get_req_subvars()
        subvars["workdir"] = format_template(self.req_workdir, **subvars)
        return subvars

    # -- the form -----------------------------------------------------------------------------
    async def get_options_form(self) -> str:
        return options_form_html(self.queues, self.max_hours, self.default_hours, self.last_stop)

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return check_options(formdata, self.queues, self.max_hours)

    # -- state --------------------------------------------------------------------------------
    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.last_stop = state.get("hpctool_last_stop", "")

    def get_state(self) -> dict:
        state = super().get_state()
        if self.last_stop:
            state["hpctool_last_stop"] = self.last_stop
        return state

    def state_gethost(self) -> str:
        if self.exechost_address:
            return self.exechost_address
        node = super().state_gethost()
        return resolve_in_hosts_file(node, self.exechost_hosts_file) if self.exechost_hosts_file else node

    # -- start, with failure detection -----------------------------------------------------------
    async def _node_reason(self, node: str) -> str:
        if not node:
            return ""
        try:
            out = await self.run_command(f"{self.sinfo_cmd} -h -N -n {shlex.quote(node)} -o %E")
        except (RuntimeError, OSError):  # the reason is a courtesy: never let it hide the failure itself
            return ""
        reason = out.strip().splitlines()[0].strip() if out.strip() else ""
        return "" if reason in ("none", "None") else reason

    async def _ended(self, job: JobState | None) -> str:
        node_reason = ""
        if job is not None and job.state in ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "FAILED", "CANCELLED"):
            node_reason = await self._node_reason(job.host)
        return describe_end(self.job_id, job, node_reason)

    def _check_user_options(self) -> None:
        """Options from the REST API skip the form: hold them to the same rules (only the form's
        keys, a known queue, whole numbers within its limits)."""
        options = dict(self.user_options or {})
        allowed = {"partition", "nprocs", "memory", "runtime", "queue_label"}
        if not options:
            raise SpawnFailed("no queue chosen: start the server from the form")
        if set(options) - allowed:
            raise SpawnFailed(f"options not allowed: {', '.join(sorted(set(options) - allowed))}")
        hours = str(options.get("runtime", "")).split(":")[0]
        try:
            check_options({"queue": [options.get("partition", "")], "cpus": [options.get("nprocs", "")],
                           "memory_gb": [str(options.get("memory", "")).removesuffix("G")], "hours": [hours]},
                          self.queues, self.max_hours)
        except ValueError as error:
            raise SpawnFailed(str(error)) from None

    async def start(self):
        self._check_user_options()
        self.last_stop = ""
        self.ip = self.bind_ip
        self.port = 0
        if self.server:
            self.server.port = self.port
        try:
            await self.submit_batch_script()
        except RuntimeError as error:  # sbatch refused: its message is the reason
            raise SpawnFailed(f"Slurm refused the job: {error}") from None
        if not self.job_id:
            raise SpawnFailed("Slurm refused the job: sbatch printed no job id")
        fatal_since: float | None = None
        while True:
            status = await self.query_job_status()
            job = parse_job_state(self.job_status)
            if status == JobStatus.RUNNING and self.port:
                break
            if status == JobStatus.PENDING and job is not None and fatal_reason(job.reason, self.fatal_reasons):
                fatal_since = fatal_since or time.monotonic()
                if time.monotonic() - fatal_since >= self.fatal_reason_grace:
                    message = (f"Slurm job {self.job_id} cannot start in queue {self.user_options.get('partition')}"
                               f": {job.reason}. It was cancelled; pick another queue or a smaller request.")
                    self.log.warning(message)
                    await self.cancel_batch_job()
                    self.clear_state()
                    raise SpawnFailed(message)
            elif status == JobStatus.PENDING:
                fatal_since = None
            elif status == JobStatus.NOTFOUND:
                job_id = self.job_id
                message = await self._ended(job)
                self.log.warning("spawn failed: %s", message)
                self.clear_state()
                workdir = self.get_req_subvars()["workdir"]
                raise SpawnFailed(f"{message} JupyterLab did not start: see {workdir}/.jupyterhub-slurm-{job_id}.log")
            await asyncio.sleep(self.startup_poll_interval)
        self.ip = self.state_gethost()
        self.db.commit()
        self.log.info("notebook job %s running at %s:%s", self.job_id, self.ip, self.port)
        return self.ip, self.port

    async def poll(self):
        status = await self.query_job_status()
        if status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.UNKNOWN):
            return None
        if self.job_id:
            self.last_stop = await self._ended(parse_job_state(self.job_status))
            self.log.warning("server of %s stopped: %s", self.user.name, self.last_stop)
        self.clear_state()
        return 1

    async def stop(self, now=False):
        if not self.job_id:  # nothing submitted, or already cleared after a failed start
            return
        await super().stop(now=now)

    async def progress(self):
        while True:
            job = parse_job_state(self.job_status or "")
            if job is None:
                yield {"message": "Submitting the Slurm job..."}
            elif job.state in ("PENDING", "CONFIGURING"):
                yield {"message": f"Slurm job {self.job_id} pending ({job.reason or 'waiting'})"
                                  f"{' - nodes boot on demand, this can take minutes' if job.reason else ''}"}
            elif job.state == "RUNNING":
                yield {"message": f"Slurm job {self.job_id} running on {job.host}: starting JupyterLab..."}
                if self.port:
                    return
            else:
                return
            await asyncio.sleep(1)
