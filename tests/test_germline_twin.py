"""The germline workflow on the real local twin, through Snakemake's Slurm executor.

Two runs share one seeded data set. The clean run is the baseline: 4 samples through the Slurm
executor, partitions from sacct, recall against the truth set. The second run's Snakemake is
killed mid-way and started again; the resumed run then gets a spot notice on the node of a
running calling job (the node's interruption handler requeues it). It must redo nothing that was
finished and end with VCFs concordant with the clean run's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from hpctool.slurm.client import Slurm
from hpctool.twin import Twin, spot
from hpctool.vcf import concordance, reading, recall
from hpctool.workflow import launch, rules
from support.twin import reset_twin, wait_for

# Snakemake's line for a job it saw finish (and recorded as done).
_FINISHED = re.compile(r"^Finished jobid: (?P<job>\S+) \(Rule: (?P<rule>\w+)\)", re.MULTILINE)


def _partitions_by_rule(records: list[rules.RuleJobRecord]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for record in records:
        for rule in record.rules:
            result.setdefault(rule, set()).add(record.acct.partition)
    return result

pytestmark = pytest.mark.twin

SAMPLES = ["S1", "S2", "S3", "S4"]
# Where each rule must run: the routing (short steps on spot, sorting on storage nodes).
INTENDED_PARTITION = {"index_reference": "spot", "align": "compute", "sort_markdup": "storage",
                      "call_sample": "spot", "qc_sample": "spot", "joint_call": "spot"}
COMPARED_FIELDS = ["QUAL", "FILTER", "INFO/DP", "FORMAT/AD"]
RUN_TIMEOUT = 300


@dataclass
class Run:
    folder: Path
    process: subprocess.Popen
    output: Path
    started: float

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)  # Snakemake cancels its Slurm jobs on SIGINT
            self.process.wait(timeout=60)
            raise AssertionError(f"snakemake did not finish in {timeout} s; see {self.output}") from None

    def log_text(self) -> str:
        """Snakemake's own logs of this run folder (every invocation)."""
        return "".join(p.read_text(errors="replace") for p in rules.run_logs(self.folder))

    def vcfs(self) -> list[Path]:
        return [self.folder / "vcf" / f"{s}.vcf.gz" for s in SAMPLES] + [self.folder / "cohort" / "cohort.vcf.gz"]


def start_run(folder: Path, data: Path) -> Run:
    """`snakemake --profile snakemake/profiles/twin --configfile config/test.yaml --directory FOLDER`."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / launch.TEST_DATA_DIR).exists():
        (folder / launch.TEST_DATA_DIR).symlink_to(data)
    argv = launch.snakemake_argv("germline", folder, profile="twin", test=True)
    output = folder.parent / f"{folder.name}.out"
    with open(output, "ab") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ))
    return Run(folder, process, output, time.monotonic())


def jobs_of(slurm: Slurm, folder: Path, state: str = "RUNNING", partition: str | None = None) -> list[dict]:
    """Jobs slurmctld knows for this run folder (WorkDir), optionally in one partition."""
    return [j for j in slurm.jobs() if j.get("WorkDir") == str(folder) and j.get("JobState") == state
            and (partition is None or j.get("Partition") == partition)]


def assert_concordant(run: Run, baseline: Run) -> None:
    for mine, theirs in zip(run.vcfs(), baseline.vcfs(), strict=True):
        result = concordance.compare_files(theirs, mine, fields=COMPARED_FIELDS)
        assert result.concordant, f"{mine} differs from {theirs}: " + "; ".join(map(str, result.differences))
        assert result.identical > 0


@pytest.fixture(scope="module")
def test_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("germline") / "data"
    script = Path(launch.TEST_DATA_SCRIPT)
    subprocess.run([sys.executable, str(script), str(folder), "--seed", "7"], check=True)
    return folder


@pytest.fixture(scope="module")
def clean_run(twin: Twin, test_data: Path) -> Run:
    run = start_run(test_data.parent / "clean", test_data)
    assert run.wait() == 0, f"the clean run failed; see {run.output}"
    return run


def test_four_samples_complete_through_the_slurm_executor(clean_run: Run) -> None:
    for vcf in clean_run.vcfs():
        assert vcf.is_file() and reading.load_vcf(vcf).records, vcf
    table = (clean_run.folder / "qc" / "summary.tsv").read_text().splitlines()
    assert table[0].split("\t")[:3] == ["sample", "reads", "mapped_pct"]
    rows = {line.split("\t")[0]: line.split("\t") for line in table[1:]}
    assert sorted(rows) == SAMPLES
    assert all(row[1] == "12000" and float(row[2]) > 99 for row in rows.values()), rows
    assert "Executor: slurm" in clean_run.output.read_text() or "slurm" in clean_run.log_text()


def test_every_rule_ran_in_its_intended_partition(clean_run: Run, slurm: Slurm) -> None:
    records = rules.rule_jobs(slurm, clean_run.folder)
    # 1 reference index, 4 x (align, sort_markdup, call_sample+qc_sample as one group job), 1 joint call
    assert len(records) == 14, [(r.rules, r.wildcards) for r in records]
    assert all(r.acct.state == "COMPLETED" for r in records), [(r.rules, r.acct.state) for r in records]
    ran_in = _partitions_by_rule(records)
    assert ran_in == {rule: {partition} for rule, partition in INTENDED_PARTITION.items()}


def test_recall_of_planted_variants(clean_run: Run, test_data: Path) -> None:
    truth = reading.load_vcf(test_data / "truth.vcf")
    cohort = reading.load_vcf(clean_run.folder / "cohort" / "cohort.vcf.gz")
    per_sample = [recall.recall(truth, reading.load_vcf(clean_run.folder / "vcf" / f"{s}.vcf.gz"), s)
                  for s in SAMPLES]
    joint = [recall.recall(truth, cohort, s) for s in SAMPLES]
    for results in (per_sample, joint):
        planted = sum(r.planted for r in results)
        found = sum(r.found for r in results)
        assert planted >= 60
        assert found / planted >= 0.95, [r.missed for r in results]


@dataclass
class KilledThenInterrupted:
    """One run folder, two Snakemake invocations: the first killed after the align jobs, the
    second (the resume) hit by a spot notice on the node of a running calling job."""

    first: Run
    first_exit: int
    first_logs: list[Path]
    reference_mtime: int
    resumed: Run
    resumed_exit: int
    victim_job: str
    victim_node: str
    handled: dict


@pytest.fixture(scope="module")
def killed_then_interrupted(twin: Twin, clean_run: Run, test_data: Path) -> KilledThenInterrupted:
    slurm = twin.slurm
    # One run for both scenarios: the resume is itself a run that must survive a spot notice,
    # and sharing it keeps the suite within its time budget (a run takes about two minutes).
    first = start_run(test_data.parent / "interrupted", test_data)
    wait_for(lambda: first.log_text().count("(Rule: align)") == len(SAMPLES), timeout=RUN_TIMEOUT,
             what="the four align jobs to finish")
    first.process.send_signal(signal.SIGTERM)
    first_exit = first.wait(timeout=60)
    wait_for(lambda: not jobs_of(slurm, first.folder) and not jobs_of(slurm, first.folder, "PENDING"),
             timeout=60, what="the killed run's Slurm jobs to be cancelled")
    first_logs = rules.run_logs(first.folder)
    reference_mtime = (first.folder / "reference" / "genome.fa.bwt").stat().st_mtime_ns

    resumed = start_run(first.folder, test_data)
    try:
        # The reference and the alignments are done: the first spot job now is a calling job.
        victim = wait_for(lambda: next(iter(jobs_of(slurm, resumed.folder, partition="spot")), None),
                          timeout=RUN_TIMEOUT, interval=0.3, what="a running spot job of the resumed run")
        node = victim["NodeList"]
        notice = spot.send_spot_notice(twin, node, deadline_s=30)
        try:
            handled = spot.wait_notice_handled(twin, node, notice)
            resumed_exit = resumed.wait()
        finally:
            spot.restore_node(twin, node)
    finally:
        if resumed.process.poll() is None:
            resumed.process.send_signal(signal.SIGINT)
            resumed.process.wait(timeout=60)
    return KilledThenInterrupted(first, first_exit, first_logs, reference_mtime, resumed, resumed_exit,
                                 victim["JobId"], node, handled)


def _sacct_runs(slurm: Slurm, job_id: str) -> list[tuple[str, ...]]:
    """(state, node) of every run of a job, first to last (sacct -D keeps the requeued ones)."""
    result = slurm.run(["sacct", "-X", "-D", "-n", "-P", "-o", "State,NodeList", "-j", job_id])
    return [tuple(line.split("|")) for line in result.stdout.splitlines() if line.strip()]


def test_killed_snakemake_resumes_without_redoing_finished_outputs(
        killed_then_interrupted: KilledThenInterrupted) -> None:
    run = killed_then_interrupted
    assert run.first_exit != 0
    done_before = {job for log in run.first_logs for job in rules.finished_rule_jobs(log.read_text(errors="replace"))}
    assert ("index_reference", "") in done_before, done_before
    assert {("align", s) for s in SAMPLES} <= done_before, done_before
    assert run.resumed_exit == 0, f"the resumed run failed; see {run.resumed.output}"
    new_logs = [log for log in rules.run_logs(run.resumed.folder) if log not in run.first_logs]
    assert len(new_logs) == 1
    redone = set(rules.planned_rule_jobs(new_logs[0].read_text(errors="replace")).values())
    # It went on with Slurm work (sorting or calling, depending on how far the first run got).
    assert redone - {("all", ""), ("summary", "")}, "the resumed run submitted nothing"
    assert not redone & done_before, f"redone after resume: {redone & done_before}"
    assert (run.resumed.folder / "reference" / "genome.fa.bwt").stat().st_mtime_ns == run.reference_mtime


def test_spot_notice_mid_run_finishes_concordant(killed_then_interrupted: KilledThenInterrupted,
                                                 slurm: Slurm, clean_run: Run) -> None:
    """The node's interruption handler drains it and requeues the calling job, which restarts on
    the other spot node; the run finishes with the same variants as the clean run."""
    run = killed_then_interrupted
    handled = run.handled
    assert run.victim_job in handled["requeued"] + handled["requeued_by_job"], handled
    assert run.resumed_exit == 0, f"the interrupted run failed; see {run.resumed.output}"
    runs = _sacct_runs(slurm, run.victim_job)
    assert runs[0] == ("REQUEUED", run.victim_node), runs
    assert runs[-1][0] == "COMPLETED" and runs[-1][1] != run.victim_node, runs
    assert_concordant(run.resumed, clean_run)


# -- faults: the control plane crashes mid-run, the twin heals, capacity runs out --------------


@dataclass
class Faulted:
    run: Run
    exit_code: int
    healed: list[list[str]]
    failed_resume_seen: bool
    spot_nodes_used: set[str]


@pytest.fixture(scope="module")
def faulted_run(twin: Twin, clean_run: Run, test_data: Path) -> Faulted:
    """A run whose spot queue has only dynamic nodes, one compute resource of it without EC2
    capacity and the other slow to boot, and whose slurmdbd, a busy slurmd and slurmctld (while
    the spot nodes boot for the run's jobs) are SIGKILLed mid-run, each followed by `hpctool local
    up` (the heal). No manual step after that."""
    from hpctool.twin import capacity

    slurm = twin.slurm
    layout = twin.layout()
    spot_static = [n.name for n in layout.static_nodes() if n.queue == "spot"]
    for name in spot_static:
        slurm.update_node(name, "drain", reason="test: spot on dynamic nodes only")
    capacity.set_faults(twin.paths, layout, "spot/mixed16", insufficient_for=900)
    # A boot longer than slurmctld's save window: its jobs wait allocated, configuring, while it dies.
    capacity.set_faults(twin.paths, layout, "spot/mixed16m", boot_delay_s=SLOW_BOOT_S)
    # Every spot job must boot a node: one still up from an earlier test would dodge the fault.
    spot_dynamic = [n.name for n in layout.dynamic_nodes() if n.queue == "spot"]
    for name in spot_dynamic:
        if twin.node_state(name) != "idle~":
            slurm.update_node(name, "power_down_force")
    wait_for(lambda: all(twin.node_state(n) == "idle~" for n in spot_dynamic), timeout=60,
             what="the spot queue's dynamic nodes powered down")
    healed: list[list[str]] = []

    def kill(name: str) -> None:
        pid = twin.status()["daemons"][name]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _pid_alive(pid), what=f"{name} to die")
        time.sleep(2)  # the run meets the dead daemon for a moment
        healed.append(twin.up()["started"])

    run = start_run(test_data.parent / "faulted", test_data)
    try:
        wait_for(lambda: jobs_of(slurm, run.folder, partition="compute"), timeout=RUN_TIMEOUT,
                 interval=0.3, what="an align job running")
        kill("slurmdbd")
        # Then a job whose rule runs (its batch step is up): its node's slurmd dies under it.
        static = {n.name for n in layout.static_nodes()}  # status() names the static nodes' slurmd
        node = wait_for(lambda: _node_of_a_running_rule(slurm, run.folder, static), timeout=RUN_TIMEOUT,
                        interval=0.3, what="a rule running in a job on a static node")
        kill(f"slurmd {node}")
        # Then slurmctld, while spot jobs wait for their nodes to boot, once it has saved them.
        wait_for(lambda: jobs_of(slurm, run.folder, state="CONFIGURING") and _allocations_saved(slurm),
                 timeout=RUN_TIMEOUT, interval=0.3, what="jobs configuring whose allocations slurmctld has saved")
        kill("slurmctld")
        exit_code = run.wait()
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            run.process.wait(timeout=60)
        for name in spot_static:
            slurm.update_node(name, "resume")
        capacity.set_faults(twin.paths, layout, "spot", restore=True)
        capacity.reenable(twin, layout, ["spot/mixed16", "spot/mixed16m"])
        reset_twin(twin)  # whatever the faults left drained or down, for the tests after this one
    power_log = (twin.log_dir / "power.log").read_text()
    records = rules.rule_jobs(slurm, run.folder)
    used = {r.acct.node_list for r in records if r.acct.partition == "spot"}
    return Faulted(run, exit_code, healed, "Failure when resuming" in power_log or
                   "InsufficientInstanceCapacity" in power_log, used)


# slurmctld writes its state a few seconds after it allocates a job; killed inside that window it
# forgets the allocation, and when the node then reports the job Slurm drains it ("Duplicate
# jobid") and holds the requeued job ("launch failed requeued held"): a real cluster needs an admin
# there too (docs/twin.md, "Faults"). The test kills it outside that window.
STATE_SAVED_AFTER_S = 7  # it saves at most every 5 s (SAVE_MAX_WAIT), plus a margin
SLOW_BOOT_S = STATE_SAVED_AFTER_S + 5


def _allocations_saved(slurm: Slurm) -> bool:
    """No job of the twin was allocated in the last STATE_SAVED_AFTER_S seconds."""
    starts = [datetime.fromisoformat(j["StartTime"]).timestamp() for j in slurm.jobs()
              if j.get("JobState") in {"RUNNING", "CONFIGURING"} and j.get("StartTime", "")[:1].isdigit()]
    return all(time.time() - start >= STATE_SAVED_AFTER_S for start in starts)


def _node_of_a_running_rule(slurm: Slurm, folder: Path, nodes: set[str]) -> str | None:
    """A node (of ``nodes``) where a job of the run runs its rule: its batch step is up (hpctool
    runs the rule there) or, for a job that keeps the plugin's job step, its first srun step."""
    running = {j["JobId"]: j["NodeList"] for j in jobs_of(slurm, folder) if j["NodeList"] in nodes}
    steps = slurm.run(["squeue", "-h", "-s", "-o", "%i"]).stdout.split()
    return next((running[job] for job, _, step in (s.partition(".") for s in steps)
                 if step in {"batch", "0"} and job in running), None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_run_through_control_plane_crashes_and_no_capacity_finishes_concordant(faulted_run: Faulted,
                                                                                 clean_run: Run) -> None:
    assert faulted_run.exit_code == 0, f"see {faulted_run.run.output}"
    # Each heal started exactly the daemon that was killed.
    assert len(faulted_run.healed) == 3, faulted_run.healed
    # Besides the killed daemon, a heal may start the emulator and handler of a dynamic spot node
    # whose host was booting at that moment (its own boot hook would have started them a moment later).
    def killed(started: list[str]) -> list[str]:
        return [name for name in started if not name.startswith(("imds spot-dy-", "spot-handler spot-dy-"))]

    assert killed(faulted_run.healed[0]) == ["slurmdbd"] and killed(faulted_run.healed[2]) == ["slurmctld"]
    assert faulted_run.healed[1][0].startswith("slurmd ")
    assert all(len(killed(started)) == 1 for started in faulted_run.healed), faulted_run.healed
    # The spot rules ran on the compute resource that had capacity, after a failed resume.
    assert faulted_run.failed_resume_seen
    assert faulted_run.spot_nodes_used and all("mixed16m" in n for n in faulted_run.spot_nodes_used), \
        faulted_run.spot_nodes_used
    assert_concordant(faulted_run.run, clean_run)


# -- faults of hosts: a node cut off, the database killed, the head node restarted -------------
HPCTOOL = str(Path(sys.executable).with_name("hpctool"))


@dataclass
class HostFaults:
    run: Run
    exit_code: int
    cut_node: str
    cut_job: str
    heals: list[list[str]]
    cut_job_runs: list[tuple[str, str]]  # (state, node) of each run of the cut node's job, from sacct
    head_restarted: bool
    cut_node_after_heal: str  # its state once `local up` returned


def _heal() -> list[str]:
    """`hpctool local up --json`, as the admin runs it: what it started."""
    result = subprocess.run([HPCTOOL, "local", "up", "--json"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["started"]


def _cut_off(twin: Twin, node: str) -> None:
    """The node's host loses its network (its end of the link on the twin's bridge goes down);
    everything in it goes on running."""
    subprocess.run(["ip", "link", "set", twin.hosts.link(twin.layout().node(node).index), "down"], check=True)


@pytest.fixture(scope="module")
def host_faults(twin: Twin, clean_run: Run, test_data: Path) -> HostFaults:
    """A run whose align job's node is cut off from the network (Slurm marks the node down after
    SlurmdTimeout and requeues the job, NODE_FAIL), then whose accounting database (mariadbd) is
    killed, then whose head node host reboots (slurmctld, slurmdbd, MariaDB, munged and sshd stop
    with it, as at a shutdown: a head node that crashes is the slurmctld SIGKILL of the run above);
    each fault followed by `hpctool local up`, no other step."""
    slurm = twin.slurm
    static_compute = {n.name for n in twin.layout().static_nodes() if n.queue == "compute"}
    heals: list[list[str]] = []
    run = start_run(test_data.parent / "host-faults", test_data)
    try:
        job = wait_for(lambda: next((j for j in jobs_of(slurm, run.folder, partition="compute")
                                     if j["NodeList"] in static_compute), None),
                       timeout=RUN_TIMEOUT, interval=0.3, what="an align job running on a static node")
        cut_node, cut_job = job["NodeList"], job["JobId"]
        _cut_off(twin, cut_node)
        # Slurm's own doing: the node stops answering, is set DOWN, its job requeued.
        wait_for(lambda: slurm.job(cut_job).get("Restarts", "0") != "0", timeout=120, interval=1,
                 what=f"job {cut_job} requeued off the cut-off node {cut_node}")
        # The database goes while the run goes on; slurmdbd keeps what slurmctld sends it.
        os.kill(twin.status()["daemons"]["mariadbd"]["pid"], signal.SIGKILL)
        time.sleep(2)
        heals.append(_heal())  # the database back, the cut-off node replaced
        cut_node_after_heal = twin.node_state(cut_node)
        # The head node host reboots (all its daemons stop, as at a shutdown) while jobs run.
        wait_for(lambda: jobs_of(slurm, run.folder), timeout=RUN_TIMEOUT, interval=0.3, what="jobs running")
        head_restarted = twin.hosts.shutdown("head")
        time.sleep(2)
        heals.append(_heal())
        exit_code = run.wait()
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            run.process.wait(timeout=60)
        twin.up()  # whatever a failed step left down
        reset_twin(twin)
    # slurmdbd catches up on what slurmctld kept for it while the database was away.
    def runs_of_cut_job() -> list[tuple[str, str]]:
        text = slurm.sacct_text(["State", "NodeList"], job_ids=[cut_job])  # one row per run (-D)
        return [(state.split()[0], node) for state, node in (line.split("|") for line in text.splitlines() if line)]

    runs = wait_for(lambda: (records := runs_of_cut_job()) and len(records) > 1 and records[-1][0] == "COMPLETED"
                    and records, timeout=60, what=f"both runs of job {cut_job} in accounting")
    return HostFaults(run, exit_code, cut_node, cut_job, heals, runs, head_restarted, cut_node_after_heal)


def test_a_run_through_a_cut_off_node_a_lost_database_and_a_head_restart_finishes_concordant(
        host_faults: HostFaults, clean_run: Run, slurm: Slurm) -> None:
    assert host_faults.exit_code == 0, f"see {host_faults.run.output}"
    # Slurm failed the job on the cut-off node and ran it again, to completion.
    assert host_faults.cut_job_runs[0] == ("NODE_FAIL", host_faults.cut_node), host_faults.cut_job_runs
    assert host_faults.cut_job_runs[-1][0] == "COMPLETED", host_faults.cut_job_runs
    # The first heal started the database and replaced the cut-off node; the second the head node's daemons.
    assert "mariadbd" in host_faults.heals[0] and f"host {host_faults.cut_node}" in host_faults.heals[0]
    assert host_faults.head_restarted
    assert {"host head", "munged", "slurmdbd", "slurmctld", "mariadbd"} <= set(host_faults.heals[1]), \
        host_faults.heals
    # Accounting lost nothing: every job of the run that slurmctld ran is in sacct, finished.
    records = rules.rule_jobs(slurm, host_faults.run.folder)
    assert {rule for r in records for rule in r.rules} >= set(INTENDED_PARTITION), records
    assert all(r.acct.finished for r in records)
    # The replaced node took jobs again as soon as the heal returned.
    assert host_faults.cut_node_after_heal in {"idle", "mixed", "allocated"}, host_faults.cut_node_after_heal
    assert_concordant(host_faults.run, clean_run)
