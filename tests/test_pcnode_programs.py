"""slurm.conf's Resume/Suspend/ResumeFail programs as wrappers of ParallelCluster's slurm_resume and
slurm_suspend (hpctool.twin.pcnode_programs): golden files, the entry points against the installed
package, and each wrapper run as slurmctld runs it (stdio closed) with stand-ins for `sudo` and
`scontrol` in the twin's bin/: ParallelCluster's main reads the twin's config and acts on it. No
Slurm, no EC2 call (without clustermgtd's heartbeat resume launches nothing)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hpctool.twin.conf import TwinPaths
from hpctool.twin.pcnode_conf import HeadInstance, PcnodePaths, render_all
from hpctool.twin.pcnode_programs import (
    ENTRY_POINTS,
    PROGRAMS,
    program_path,
    render_program,
    render_programs,
    slurm_conf_programs,
    stdio_log,
)
from support.golden import assert_golden
from support.pcnode import CLUSTER, LAYOUT, NETWORK, PCNODE_PYTHON

GOLDEN = Path(__file__).parent / "golden" / "pcnode"
PATHS = PcnodePaths(TwinPaths(Path("/root/.local/share/hpctool")))
VENV = Path("/opt/hpctool/.tools/pcnode")
ENDPOINT = "http://10.210.7.1:16900"


@pytest.mark.parametrize("program", ["slurm_resume", "slurm_suspend", "slurm_fleet_status_manager", "clustermgtd"])
def test_the_wrappers_match_their_golden_files(program):
    assert_golden(render_program(program, PATHS, VENV, ENDPOINT), GOLDEN / f"{program}.sh")


def test_resume_fail_runs_the_suspend_program_as_on_a_cluster():
    programs = slurm_conf_programs(PATHS)
    assert programs["ResumeFailProgram"] == programs["SuspendProgram"] == program_path(PATHS, "slurm_suspend")
    assert programs["ResumeProgram"] == program_path(PATHS, "slurm_resume")
    assert set(render_programs(PATHS, VENV, ENDPOINT)) == {*programs.values(),
                                                           program_path(PATHS, "slurm_fleet_status_manager"),
                                                           program_path(PATHS, "clustermgtd")}


def test_the_entry_points_are_the_installed_console_scripts():
    """The wrappers start what the venv's slurm_resume / slurm_suspend start."""
    found = {}
    for entry_points in PCNODE_PYTHON.parent.parent.glob("lib/python*/site-packages/aws_parallelcluster_node-*"
                                                         ".dist-info/entry_points.txt"):
        for line in entry_points.read_text().splitlines():
            if " = " in line:
                name, target = line.split(" = ", 1)
                found[name] = target
    assert found, "aws-parallelcluster-node is not installed in .tools/pcnode (scripts/setup.sh)"
    assert {name: found[name] for name in ENTRY_POINTS} == ENTRY_POINTS
    assert set(PROGRAMS.values()) < set(ENTRY_POINTS)


def install(home: Path) -> tuple[PcnodePaths, Path]:
    """The daemons' files, the wrappers (on the real venv) and stand-ins for `sudo` and `scontrol`
    in the twin's bin/ (SLURM_BINARIES_DIR): scontrol records its arguments and environment."""
    paths = PcnodePaths(TwinPaths(home))
    head = HeadInstance(NETWORK.address(0), "head")
    files = render_all(LAYOUT, CLUSTER.queues, paths, head, "subnet-0123456789abcdef0")
    files.update(render_programs(paths, PCNODE_PYTHON.parent.parent, ENDPOINT))
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    record = home / "scontrol.calls"
    for name, body in (("sudo", 'exec "$@"'), ("scontrol", f'echo "$*" >>{record}; env | sort >{home}/scontrol.env')):
        (paths.path_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (paths.path_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (paths.path_dir / name).chmod(0o755)
    (paths.path_dir.parent / "etc").symlink_to(paths.twin.etc)
    return paths, record


def run_as_slurmctld(wrapper: Path, *args: str, env: dict[str, str] | None = None) -> int:
    """Run ``wrapper`` with stdin, stdout and stderr closed, as slurmctld starts its programs."""
    return subprocess.run(["sh", "-c", 'exec 0<&- 1>&- 2>&-; exec "$@"', "slurmctld", str(wrapper), *args],
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=120, check=False).returncode


def test_resume_reads_the_twins_config_and_sets_the_nodes_down_without_a_heartbeat(tmp_path):
    """No clustermgtd heartbeat: ParallelCluster's resume launches nothing and sets the nodes DOWN
    through the twin's scontrol, as on a cluster whose clustermgtd is down."""
    paths, record = install(tmp_path / "home")
    code = run_as_slurmctld(program_path(paths, "slurm_resume"), "compute-dy-c7i4xl-[1-2]",
                            env={"AWS_PROFILE": "someones-real-account", "SLURM_RESUME_FILE": "/nonexistent"})
    assert code == 0
    log = paths.log("slurm_resume").read_text()
    assert "ResumeProgram startup." in log  # before its config: our root handler, not /var/log/parallelcluster
    assert f"Reading {paths.conf('slurm_resume')}" in log
    assert "cluster_name='twin'" in log and "No valid clustermgtd heartbeat detected" in log
    calls = record.read_text().splitlines()
    assert len(calls) == 1 and calls[0].startswith("update state=down reason=")
    assert calls[0].endswith("nodename=compute-dy-c7i4xl-[1-2]")
    env = dict(line.split("=", 1) for line in (tmp_path / "home" / "scontrol.env").read_text().splitlines()
               if "=" in line)
    assert env["AWS_ENDPOINT_URL"] == ENDPOINT and env["CONFIG_FILE"] == str(paths.conf("slurm_resume"))
    assert env["SLURM_BINARIES_DIR"] == str(paths.path_dir) and env["PATH"].startswith(f"{paths.path_dir}:")
    assert env["SLURM_RESUME_FILE"] == "/nonexistent" and "AWS_PROFILE" not in env
    assert stdio_log(paths, "slurm_resume").exists()  # opened by the wrapper: fds 0-2 were closed


@pytest.mark.parametrize(("age", "expected"), [
    (timedelta(seconds=1), "SuspendProgram finished. Nodes will be available after SuspendTimeout"),
    (None, "No valid clustermgtd heartbeat detected, clustermgtd is down!"),
    (timedelta(hours=1), "No valid clustermgtd heartbeat detected, clustermgtd is down!")])
def test_suspend_checks_clustermgtds_heartbeat_where_the_twin_keeps_it(tmp_path, age, expected):
    paths, record = install(tmp_path / "home")
    if age is not None:  # clustermgtd's heartbeat, in its TIMESTAMP_FORMAT
        paths.heartbeat.parent.mkdir(parents=True, exist_ok=True)
        paths.heartbeat.write_text((datetime.now(UTC) - age).strftime("%Y-%m-%d %H:%M:%S.%f%z") + "\n")
    assert run_as_slurmctld(program_path(paths, "slurm_suspend"), "spot-dy-mixed16-1") == 0
    log = paths.log("slurm_suspend").read_text()
    assert "SuspendProgram startup." in log and "spot-dy-mixed16-1" in log and expected in log
    assert not record.exists()  # suspend never calls Slurm: clustermgtd ends the instances
