"""`hpctool.jobs` without Slurm: sizes, arrays, requeue defaults, the sbatch script submitit writes,
and the checkpoint behaviour of the two spot-safe callables."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from hpctool import jobs
from hpctool.cli import main as cli
from hpctool.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


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


def test_spot_queues_come_from_the_cluster_config(monkeypatch) -> None:
    monkeypatch.delenv("SLURM_CONF", raising=False)
    assert jobs.spot_queues(REPO / "cluster-configs" / "default.yaml") == {"spot"}


def test_the_sbatch_script_asks_for_requeue_resources_and_the_signal(tmp_path: Path) -> None:
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


def test_submit_needs_a_command_or_a_callable(capsys) -> None:
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
