"""`hpctool.jobs` without Slurm: sizes, arrays, requeue defaults, the sbatch script submitit writes,
and the checkpoint behaviour of the two spot-safe callables."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from hpctool import jobs
from hpctool.cli import main as cli
from hpctool.errors import SlurmError, UsageError
from hpctool.jobs import submission
from hpctool.jobs.runner import is_timeout
from hpctool.slurm.client import Slurm
from hpctool.slurm.parse import parse_sinfo_nodes

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "slurm" / "22.05"


def pasted_cluster(max_array_size: int | None = 1001) -> jobs.SlurmCluster:
    """The twin's queues as sinfo showed them (fpga with a 90-minute MaxTime), no Slurm needed."""
    nodes = tuple(parse_sinfo_nodes((DATA / "sinfo-queue-nodes.txt").read_text()))
    return jobs.SlurmCluster(slurm=Slurm("/nonexistent/slurm.conf"), nodes=nodes, spot=frozenset({"spot"}),
                             max_array_size=max_array_size)


@pytest.mark.parametrize(("text", "mb"), [("4G", 4096), ("4GB", 4096), ("500M", 500), ("1.5G", 1536),
                                           ("2048", 2048), ("1T", 1048576), ("512k", 0.5)])
def test_memory_sizes(text: str, mb: float) -> None:
    if mb < 1:
        with pytest.raises(UsageError, match="below 1 MB"):
            jobs.parse_mem_mb(text)
    else:
        assert jobs.parse_mem_mb(text) == mb


def test_a_bad_memory_size_says_how_to_write_one() -> None:
    with pytest.raises(UsageError) as error:
        jobs.parse_mem_mb("four gigs")
    assert "four gigs" in error.value.message and "4G" in error.value.hint


def test_array_inputs_skip_blanks_and_comments(tmp_path: Path) -> None:
    samples = tmp_path / "samples.txt"
    samples.write_text("# samples\nA1.fq\n\n  B 2.fq  \n")
    items = jobs.read_array_file(samples)
    assert items == ["A1.fq", "B 2.fq"]
    assert jobs.array_commands("bwa mem ref.fa {} > {}.sam", items) == [
        "bwa mem ref.fa A1.fq > A1.fq.sam", "bwa mem ref.fa 'B 2.fq' > 'B 2.fq'.sam"]
    assert jobs.array_commands("gzip -k", items) == ["gzip -k A1.fq", "gzip -k 'B 2.fq'"]


def test_an_empty_or_missing_array_file_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="no inputs"):
        jobs.read_array_file(empty)
    with pytest.raises(UsageError, match="cannot read"):
        jobs.read_array_file(tmp_path / "missing.txt")


def test_requeue_is_on_for_spot_queues_unless_asked_otherwise() -> None:
    spot = {"spot"}
    assert jobs.wants_requeue(jobs.Resources(queue="spot"), spot)
    assert not jobs.wants_requeue(jobs.Resources(queue="compute"), spot)
    assert not jobs.wants_requeue(jobs.Resources(), spot)
    assert not jobs.wants_requeue(jobs.Resources(queue="spot", requeue=False), spot)
    assert jobs.wants_requeue(jobs.Resources(queue="compute", requeue=True), spot)


def test_spot_queues_come_from_the_cluster_config() -> None:
    assert jobs.spot_queues(REPO / "cluster-configs" / "default.yaml") == {"spot"}


@pytest.mark.parametrize(
    ("resources", "words", "hint"),
    [
        (jobs.Resources(queue="nope"), "unknown queue 'nope'", "compute, fpga, spot, storage"),
        (jobs.Resources(queue="compute", cpus=64), "no node of queue compute has more than 4 CPUs", "at most 4"),
        (jobs.Resources(queue="spot", mem="9G"), "no node of queue spot has more than 1807 MB", "at most 1807M"),
        (jobs.Resources(queue="fpga", time_min=91), "queue fpga allows at most 90 minutes", "at most 90"),
    ],
)
def test_requests_no_node_can_hold_are_refused_before_sbatch(resources, words, hint) -> None:
    with pytest.raises(UsageError) as error:
        jobs.check_resources(pasted_cluster(), resources)
    assert words in error.value.message and hint in error.value.hint


def test_what_fits_goes_to_its_queue_or_the_default_one() -> None:
    cluster = pasted_cluster()
    assert jobs.check_resources(cluster, jobs.Resources(queue="fpga", cpus=4, mem="1807M", time_min=90)) == "fpga"
    assert jobs.check_resources(cluster, jobs.Resources()) == "compute"  # the `*` partition
    assert jobs.check_resources(cluster, jobs.Resources(queue="compute", time_min=100000)) == "compute"  # no limit


@pytest.mark.parametrize(
    ("stderr", "hint"),
    [
        ("sbatch: error: Batch job submission failed: Required partition not available (inactive or drain)",
         "not taking jobs"),
        (("sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: "
         "Invalid partition name specified"), "compute, fpga, spot, storage"),
        (("sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: "
         "Requested node configuration is not available"), "fewer CPUs or less memory"),
        ("sbatch: error: Batch job submission failed: Invalid job array specification", "MaxArraySize"),
        ("sbatch: error: Batch job submission failed: Something new", "sinfo -s"),
    ],
)
def test_sbatch_refusals_become_its_message_with_a_hint(stderr, hint, tmp_path) -> None:
    # The stderr lines are sbatch's own, pasted from the twin; submitit raises them as FailedJobError.
    from submitit.core.utils import FailedJobError

    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "abc.pkl").write_text("a pickle submitit wrote before sbatch answered")
    with pytest.raises(SlurmError) as error, submission._sbatch_errors(batch, pasted_cluster(), "compute"):
        raise FailedJobError(stderr)
    assert error.value.message.startswith("sbatch refused the job: ")
    assert "sbatch: error" not in error.value.message and hint in error.value.hint
    assert not batch.exists()  # nothing left behind


def test_job_files_never_go_to_the_current_directory(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HPCTOOL_JOBS_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert jobs.default_folder() == tmp_path / "state" / "hpctool" / "jobs"
    monkeypatch.setenv("HPCTOOL_JOBS_DIR", str(tmp_path / "mine"))
    assert jobs.default_folder() == tmp_path / "mine"
    batch = submission._batch_folder(None, "align a|b")
    assert batch.parent == tmp_path / "mine" and "align_a_b" in batch.name


def test_jobs_run_through_hpctool_jobs_runner(tmp_path, slurm_clients, monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{slurm_clients}:{os.environ['PATH']}")  # submitit looks for srun
    script = jobs.executor(jobs.Resources(), tmp_path, spot=set())._make_submission_file_text(
        jobs.executor(jobs.Resources(), tmp_path, spot=set())._submitit_command_str, "uid")
    assert "-u -m hpctool.jobs.runner" in script and "submitit.core._submit" not in script


def test_the_runner_installs_its_handler_on_the_environment_process_job_uses(monkeypatch) -> None:
    from submitit.core.job_environment import JobEnvironment

    from hpctool.jobs import runner as job_runner

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    env = job_runner.install()
    assert JobEnvironment() is env  # submitit caches one instance; process_job gets this one
    assert env._handle_signals.__func__ is job_runner._handle_signals
    del env._handle_signals  # back to submitit's own for the rest of the session


def test_the_sbatch_script_asks_for_requeue_resources_and_the_signal(tmp_path: Path, slurm_clients,
                                                                    monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{slurm_clients}:{os.environ['PATH']}")
    resources = jobs.Resources(queue="spot", cpus=2, mem="3G", time_min=90, name="align")
    executor = jobs.executor(resources, tmp_path, spot={"spot"})
    script = executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=spot", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=3072M",
                 "#SBATCH --time=90", "#SBATCH --requeue", "#SBATCH --signal=USR2@90", "#SBATCH --job-name=align"):
        assert line in script
    on_demand = jobs.executor(jobs.Resources(queue="compute"), tmp_path, spot={"spot"})
    assert "#SBATCH --no-requeue" in on_demand._make_submission_file_text("python -m x", "uid")


@pytest.mark.parametrize("bad", [jobs.Resources(cpus=0), jobs.Resources(time_min=0)])
def test_impossible_resources_are_refused(bad: jobs.Resources, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        jobs.executor(bad, tmp_path, spot=set())


def test_checkpointed_sum_resumes_from_its_state_and_the_plain_variant_restarts() -> None:
    full = jobs.CheckpointedSum(6, 0)()
    partial = jobs.CheckpointedSum(6, 0)
    partial.state = (4, sum(jobs.CheckpointedSum.value(i) for i in range(4)))
    resumed = pickle.loads(pickle.dumps(partial.checkpoint().function))
    assert resumed.state[0] == 4 and resumed() == full
    plain = jobs.CheckpointedSum(6, 0, checkpointing=False)
    plain.state = partial.state
    assert plain.checkpoint().function.state == (0, 0)


def test_shell_command_runs_bash_and_pickles_without_its_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = jobs.ShellCommand(f"echo hello > {out}")
    assert command() == 0 and out.read_text() == "hello\n"
    command._process = object()  # what a running job holds
    assert pickle.loads(pickle.dumps(command))._process is None
    with pytest.raises(Exception, match="exit status 3"):
        jobs.ShellCommand("exit 3")()


def test_submit_needs_a_command_or_a_callable(capsys, monkeypatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")  # usage errors come before Slurm is asked
    assert cli(["submit", "--queue", "spot"]) == 2
    assert "either a shell command" in capsys.readouterr().err
    assert cli(["submit", "--call", "nomodule", "--", "echo"]) == 2
    assert cli(["submit", "--call", "hpctool.nope:f"]) == 2
    assert "importable" in capsys.readouterr().err


def test_load_callable_finds_a_function_and_names_what_is_wrong():
    import os.path

    from hpctool import jobs
    from hpctool.errors import UsageError

    assert jobs.load_callable("os.path:join") is os.path.join
    for spec, words in [("os.path", "MODULE:FUNCTION"), ("no_such_module_x:f", "no_such_module_x"),
                        ("os.path:sep", "not callable")]:
        with pytest.raises(UsageError, match=words):
            jobs.load_callable(spec)


def test_error_line_picks_the_exception_line_of_a_submitit_report():
    from hpctool import jobs

    report = RuntimeError("Job failed\nTraceback (most recent call last):\n  File 'x'\nsubprocess.CalledProcessError: "
                          "Command 'exit 3' returned non-zero exit status 3.\n")
    assert jobs.error_line(report).startswith("subprocess.CalledProcessError: Command 'exit 3'")


@pytest.mark.parametrize(
    ("walltime_s", "limit_min", "reason", "timeout"),
    [
        (20, 5, "spot-interruption 2026-11-22T05:00:00Z", False),  # a notice early in a short job
        (200, 5, "spot-interruption 2026-11-22T05:00:00Z", False),  # a notice near its end: still a notice
        (200, 5, "", True),  # Slurm's USR2@90 before a 5-minute limit
        (20, 5, "", False),  # an early USR2 with no notice: someone preempted it
        (20, 5, None, False),  # slurmctld did not answer: judged by the time
        (3480, 60, None, True),  # 2 minutes before a 60-minute limit
        (2880, 60, "", False),  # submitit would call this a timeout (past 80 % of the limit)
    ],
)
def test_timeout_or_preemption(walltime_s, limit_min, reason, timeout):
    assert is_timeout(walltime_s, limit_min, reason) is timeout


@pytest.mark.parametrize(("count", "most", "sizes"), [(1002, 1001, [501, 501]), (1001, 1001, [1001]),
                                                     (5, 2, [2, 2, 1]), (1, 1001, [1])])
def test_arrays_beyond_the_limit_split_evenly(count, most, sizes):
    chunks = jobs.split_evenly(list(range(count)), most)
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == list(range(count))


def test_sbatch_output_without_a_job_id_is_a_slurm_error_too(tmp_path) -> None:
    from submitit.core.utils import FailedSubmissionError

    batch = tmp_path / "batch"
    batch.mkdir()
    with pytest.raises(SlurmError, match="sbatch refused the job: Could not make sense"), \
            submission._sbatch_errors(batch, pasted_cluster(), None):
        raise FailedSubmissionError('Could not make sense of sbatch output "queued"')
    assert not batch.exists()


@pytest.mark.parametrize(
    ("program", "detail", "names"),
    [
        ("sacct", "sacct: error: Problem talking to the database: Connection refused", "slurmdbd"),
        ("sacct", "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection", "slurmdbd"),
        ("sinfo", "slurm_load_partitions: Unable to contact slurm controller (connect failure)", "slurmctld"),
        ("sbatch", "sbatch: error: Batch job submission failed: Unable to contact slurm controller", "slurmctld"),
    ],
)
def test_a_failed_slurm_command_names_the_daemon_it_could_not_reach(program, detail, names):
    from hpctool.slurm.runner import failure_hint

    hint = failure_hint(program, detail)
    assert hint.startswith(f"{names} ") and "hpctool local up" in hint
