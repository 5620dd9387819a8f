"""hpctool's Snakemake launcher: the two adjustments it makes to the Slurm executor plugin, checked
against the installed plugin (the germline fault run on the twin is the end-to-end proof)."""

from __future__ import annotations

import inspect
import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest

from hpctool import snakemake_main


class _Resources(dict):
    def __getattr__(self, name: str):
        return self[name]


def _sbatch_argv(failed_nodes: set[str]) -> list[str]:
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command

    job = SimpleNamespace(resources=_Resources(runtime=10, mem_mb=100), threads=1, is_group=lambda: False)
    params = {"run_uuid": "u", "slurm_logfile": "/tmp/x.log", "comment_str": "rule_a", "account": "",
              "partition": "-p spot", "workdir": "/tmp"}
    settings = SimpleNamespace(requeue=True, no_requeue=False, qos=None, reservation=None)
    return shlex.split(get_submit_command(job, params, settings=settings, failed_nodes=failed_nodes))


def test_the_installed_plugin_is_the_one_the_adjustments_were_written_for() -> None:
    """A plugin upgrade must be looked at: drop the exclusion fix once upstream #485 is fixed."""
    assert (snakemake_main.plugin_version() or "").startswith(snakemake_main.PATCHED_PLUGIN_SERIES)
    import snakemake_executor_plugin_slurm as plugin

    assert "self._failed_nodes" in inspect.getsource(plugin.Executor.__post_init__)
    assert isinstance(inspect.getattr_static(plugin.Executor, "next_seconds_between_status_checks"), property)


def test_the_plugins_exclusion_of_a_requeued_jobs_node_breaks_sbatch() -> None:
    """What the fix is for: sacct's "None assigned" for a requeued job makes "assigned" sbatch's
    script argument (upstream #485)."""
    argv = _sbatch_argv({"None assigned"})
    assert "--exclude=None" in argv and "assigned" in argv


def test_learned_exclusions_are_ignored_and_configured_ones_kept() -> None:
    nodes = snakemake_main.ConfiguredNodesOnly({"compute-st-c7i4xl-1"})
    nodes.add("None assigned")
    nodes.update({"spot-dy-mixed16-1"})
    assert nodes == {"compute-st-c7i4xl-1"}
    argv = _sbatch_argv(nodes)
    assert "--exclude=compute-st-c7i4xl-1" in argv and "assigned" not in argv


def test_the_real_executor_class_is_adjusted_in_a_fresh_interpreter() -> None:
    """Adjust the installed plugin's Executor (in a child: the class is process-wide) and check
    that its post-init wraps the node set and the status interval is capped."""
    code = (
        "import snakemake_executor_plugin_slurm as p\n"
        "from hpctool import snakemake_main as m\n"
        "m.adjust_slurm_executor(p.Executor, 2.0)\n"
        "m.adjust_slurm_executor(p.Executor, 2.0)\n"  # idempotent
        "e = object.__new__(p.Executor)\n"
        "e.next_seconds_between_status_checks = 41\n"
        "capped = e.next_seconds_between_status_checks\n"
        "e.next_seconds_between_status_checks = 1\n"
        "print(capped, e.next_seconds_between_status_checks, p.Executor.__post_init__.__qualname__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["2.0", "1"], out
    assert "adjust_slurm_executor" in out[2]


def test_without_a_ceiling_the_plugins_back_off_is_kept() -> None:
    class Base:
        _value = None
        next_seconds_between_status_checks = property(lambda self: self._value,
                                                      lambda self, v: setattr(self, "_value", v))

    class Executor(Base):
        def __post_init__(self) -> None:
            self._failed_nodes = {"n1"}

    snakemake_main.adjust_slurm_executor(Executor, None)
    executor = Executor()
    executor.__post_init__()
    executor.next_seconds_between_status_checks = 180
    assert executor.next_seconds_between_status_checks == 180
    executor._failed_nodes.add("n2")
    assert executor._failed_nodes == {"n1"}


@pytest.mark.parametrize("argv, expected", [
    (["-s", "Snakefile"], (None, ["-s", "Snakefile"])),
    (["--status-check-ceiling", "2", "-n"], (2.0, ["-n"])),
])
def test_launcher_arguments(argv, expected) -> None:
    assert snakemake_main.split_launcher_args(argv) == expected


@pytest.mark.parametrize("argv", [["--status-check-ceiling"], ["--status-check-ceiling", "soon"],
                                  ["--status-check-ceiling", "0"]])
def test_a_bad_ceiling_is_a_clear_message(argv) -> None:
    with pytest.raises(SystemExit, match="status-check-ceiling"):
        snakemake_main.split_launcher_args(argv)


def test_the_launcher_runs_snakemake() -> None:
    result = subprocess.run([sys.executable, "-m", "hpctool.snakemake_main", "--status-check-ceiling", "2",
                             "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip()[0].isdigit(), result
