"""The compute fleet's stop and start as clusterstatusmgtd carries them out
(hpctool.twin.fleet_status.manage_fleet_status), against a moto server started here on 127.0.0.1:
first with a recording runner, then with ParallelCluster's own slurm_fleet_status_manager
(.tools/pcnode, through its wrapper from hpctool.twin.pcnode_programs) reading the status file and
ending moto's instances, with a stand-in Slurm (a few lines of sh) for its scontrol and sinfo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool import aws
from hpctool.errors import AwsError, TwinError
from hpctool.twin.conf import TwinPaths
from hpctool.twin.ec2 import Ec2Server, Seeded, seed
from hpctool.twin.fleet_status import (
    FleetStep,
    command_runner,
    fleet_status,
    fleet_status_item,
    manage_fleet_status,
    status_file_data,
    write,
)
from hpctool.twin.pcnode_conf import (
    FLEET_STATUS_KEY,
    REGION,
    HeadInstance,
    PcnodePaths,
    render_all,
    status_table,
)
from hpctool.twin.pcnode_programs import program_path, render_programs
from support.pcnode import CLUSTER, LAYOUT, NETWORK, PCNODE_PYTHON, run_driver
from support.sshd_lab import free_port


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ec2Server, Seeded]]:
    server = Ec2Server(tmp_path_factory.mktemp("fleet") / "ec2", "127.0.0.1", free_port())
    server.start()
    try:
        yield server, seed(server.endpoint, LAYOUT, CLUSTER.queues, NETWORK)
    finally:
        server.stop()


@pytest.fixture
def endpoint(moto) -> Iterator[str]:
    server, _ = moto
    write(server.endpoint, "RUNNING")
    yield server.endpoint
    write(server.endpoint, "RUNNING")


class Recorder:
    """A runner that records the status file and the table's status at each run."""

    def __init__(self, endpoint: str, fail: bool = False, meanwhile: str | None = None) -> None:
        self.endpoint, self.fail, self.meanwhile = endpoint, fail, meanwhile
        self.runs: list[tuple[dict, str | None]] = []

    def __call__(self, status_file: Path) -> None:
        self.runs.append((json.loads(status_file.read_text()), fleet_status(self.endpoint)))
        if self.meanwhile:  # another `pcluster update-compute-fleet` while the manager runs
            write(self.endpoint, self.meanwhile)
        if self.fail:
            raise TwinError("slurm_fleet_status_manager exited 1", "see its log")


def test_the_status_file_shows_the_request_while_it_is_in_progress():
    data = {"status": "STOPPING", "lastStatusUpdatedTime": "2026-12-07 16:00:00+00:00", "queues": {"q": "x"}}
    assert status_file_data(data) == {**data, "status": "STOP_REQUESTED"}
    assert status_file_data({"status": "STARTING"}) == {"status": "START_REQUESTED"}
    assert status_file_data({"status": "RUNNING"}) == {"status": "UNKNOWN"}


@pytest.mark.parametrize(("request_", "progress", "done"), [
    ("STOP_REQUESTED", "STOPPING", "STOPPED"), ("START_REQUESTED", "STARTING", "RUNNING")])
def test_a_request_runs_the_manager_in_progress_and_ends_done(endpoint, tmp_path, request_, progress, done):
    write(endpoint, request_)
    runner = Recorder(endpoint)
    status_file = tmp_path / "computefleet-status.json"
    assert manage_fleet_status(endpoint, status_file, runner) == FleetStep(request_, done, ran=True)
    [(shown, in_table)] = runner.runs
    assert shown["status"] == request_ and in_table == progress and "lastStatusUpdatedTime" in shown
    assert fleet_status(endpoint) == done
    assert manage_fleet_status(endpoint, status_file, runner) == FleetStep(done, done)  # nothing more
    assert len(runner.runs) == 1


@pytest.mark.parametrize("status", ["RUNNING", "STOPPED", "PROTECTED"])
def test_a_settled_fleet_runs_nothing(endpoint, tmp_path, status):
    write(endpoint, status)
    runner = Recorder(endpoint)
    assert manage_fleet_status(endpoint, tmp_path / "status.json", runner) == FleetStep(status, status)
    assert runner.runs == [] and not (tmp_path / "status.json").exists() and fleet_status(endpoint) == status


def test_a_failed_run_stays_in_progress_and_the_next_round_runs_it_again(endpoint, tmp_path):
    write(endpoint, "STOP_REQUESTED")
    status_file = tmp_path / "status.json"
    with pytest.raises(TwinError, match="exited 1"):
        manage_fleet_status(endpoint, status_file, Recorder(endpoint, fail=True))
    assert fleet_status(endpoint) == "STOPPING"
    runner = Recorder(endpoint)
    assert manage_fleet_status(endpoint, status_file, runner) == FleetStep("STOPPING", "STOPPED", ran=True)
    assert [(shown["status"], in_table) for shown, in_table in runner.runs] == [("STOP_REQUESTED", "STOPPING")]


def test_a_request_written_meanwhile_wins_over_the_final_move(endpoint, tmp_path):
    """A start requested while the stop runs: the conditional move to STOPPED loses, the start is
    carried out by the next round."""
    write(endpoint, "STOP_REQUESTED")
    step = manage_fleet_status(endpoint, tmp_path / "s.json", Recorder(endpoint, meanwhile="START_REQUESTED"))
    assert step == FleetStep("STOP_REQUESTED", "START_REQUESTED", ran=True, lost=True)
    assert fleet_status(endpoint) == "START_REQUESTED"
    assert manage_fleet_status(endpoint, tmp_path / "s.json", Recorder(endpoint)) == \
        FleetStep("START_REQUESTED", "RUNNING", ran=True)


def test_the_items_other_data_is_kept_and_shown_to_the_manager(endpoint, tmp_path):
    """UpdateItem of Data.status and its time only, as clusterstatusmgtd: pcluster's per-queue
    statuses stay."""
    item = fleet_status_item("STOP_REQUESTED")
    item["Data"]["M"]["queues"] = {"M": {"compute": {"M": {"status": {"S": "RUNNING"}}}}}
    dynamodb = aws.local_client("dynamodb", endpoint, REGION)
    aws.put_dynamodb_item(dynamodb, status_table(), item)
    runner = Recorder(endpoint)
    manage_fleet_status(endpoint, tmp_path / "s.json", runner)
    assert runner.runs[0][0]["queues"] == {"compute": {"status": "RUNNING"}}
    data = aws.get_dynamodb_item(dynamodb, status_table(), {"Id": {"S": FLEET_STATUS_KEY}})["Data"]["M"]
    assert data["status"] == {"S": "STOPPED"} and data["queues"]["M"]["compute"]["M"]["status"] == {"S": "RUNNING"}


def test_a_missing_item_or_table_is_an_error(endpoint, tmp_path):
    with pytest.raises(AwsError, match="parallelcluster-absent"):
        manage_fleet_status(endpoint, tmp_path / "s.json", Recorder(endpoint), cluster="absent")
    aws.ensure_dynamodb_table(aws.local_client("dynamodb", endpoint, REGION), status_table("empty"), "Id")
    with pytest.raises(TwinError, match="no COMPUTE_FLEET item"):
        manage_fleet_status(endpoint, tmp_path / "s.json", Recorder(endpoint), cluster="empty")


# -- with ParallelCluster's slurm_fleet_status_manager --------------------------------------------------
STAND_IN_SCONTROL = """#!/bin/sh
# A stand-in for Slurm's scontrol: partitions compute and spot, their state kept in files.
echo "$*" >>{calls}
case "$1 $2" in
  "show partitions")
    for p in compute spot; do
      printf 'PartitionName=%s\\n   State=%s\\n\\n' "$p" "$(cat {state}/$p 2>/dev/null || echo UP)"
    done ;;
  "update partitionname="*) p=${{2#partitionname=}}; echo "${{3#state=}}" >{state}/$p ;;
esac
"""
STAND_IN_SINFO = """#!/bin/sh
case "$*" in
  *" -t "*) ;;
  *"-p compute"*) echo "compute-dy-c7i4xl-[1-2]" ;;
  *"-p spot"*) echo "spot-dy-mixed16-[1-2],spot-dy-mixed16m-[1-2]" ;;
esac
"""


def install(home: Path, seeded: Seeded, endpoint: str) -> tuple[PcnodePaths, Path]:
    paths = PcnodePaths(TwinPaths(home))
    files = render_all(LAYOUT, CLUSTER.queues, paths, HeadInstance(NETWORK.address(0), "head", seeded.head_instance_id),
                       seeded.subnet_id)
    files.update(render_programs(paths, PCNODE_PYTHON.parent.parent, endpoint))
    calls, state = home / "scontrol.calls", home / "partitions"
    state.mkdir(parents=True)
    files[paths.path_dir / "scontrol"] = STAND_IN_SCONTROL.format(calls=calls, state=state)
    files[paths.path_dir / "sinfo"] = STAND_IN_SINFO
    files[paths.path_dir / "sudo"] = '#!/bin/sh\nexec "$@"\n'
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    (paths.path_dir.parent / "etc").symlink_to(paths.twin.etc)  # as the twin's up links it
    return paths, calls


def test_parallelclusters_fleet_manager_stops_and_starts_the_fleet(moto, endpoint, tmp_path):
    """STOP_REQUESTED: the real manager reads the status file, sets the partitions INACTIVE and
    their nodes powered down (through the stand-in), and terminates the compute instances in moto;
    START_REQUESTED brings the partitions back UP. The table ends STOPPED, then RUNNING."""
    _, seeded = moto
    paths, calls = install(tmp_path / "home", seeded, endpoint)
    assert run_driver("launch", str(paths.conf("slurm_resume")), "compute-dy-c7i4xl-1", "spot-dy-mixed16-1",
                      endpoint=endpoint)["failed"] == {}
    runner = command_runner([str(program_path(paths, "slurm_fleet_status_manager"))])
    status_file = paths.twin.run / "computefleet-status.json"
    ec2 = aws.local_client("ec2", endpoint, REGION)

    write(endpoint, "STOP_REQUESTED")
    assert manage_fleet_status(endpoint, status_file, runner) == FleetStep("STOP_REQUESTED", "STOPPED", ran=True)
    log = paths.log("slurm_fleet_status_manager").read_text()
    assert "ComputeFleet status is: STOP_REQUESTED" in log and "FleetManager finished." in log
    stopped = calls.read_text()
    assert "update partitionname=compute state=INACTIVE" in stopped and "update partitionname=spot state=INACTIVE" in stopped
    assert "state=power_down_force" in stopped and "nodename=compute-dy-c7i4xl-[1-2]" in stopped
    assert aws.cluster_compute_instances(ec2, "twin", ("pending", "running")) == []
    head = aws.describe_instances(ec2, [{"Name": "instance-id", "Values": [seeded.head_instance_id]}])
    assert head[0]["State"]["Name"] == "running"

    write(endpoint, "START_REQUESTED")
    assert manage_fleet_status(endpoint, status_file, runner) == FleetStep("START_REQUESTED", "RUNNING", ran=True)
    started = calls.read_text()[len(stopped):]
    assert "update partitionname=compute state=UP" in started and "update partitionname=spot state=UP" in started
    assert "ComputeFleet status is: START_REQUESTED" in paths.log("slurm_fleet_status_manager").read_text()


def test_a_failing_manager_leaves_the_fleet_stopping(moto, endpoint, tmp_path):
    """The manager's own failure (its status file unreadable): the runner says so, the status
    stays STOPPING for the next round."""
    _, seeded = moto
    paths, _ = install(tmp_path / "home", seeded, endpoint)
    runner = command_runner([str(program_path(paths, "slurm_fleet_status_manager"))])
    write(endpoint, "STOP_REQUESTED")
    with pytest.raises(TwinError, match="exited 1"):
        manage_fleet_status(endpoint, paths.twin.run / "status.json", lambda f: runner(f.with_name("absent.json")))
    assert fleet_status(endpoint) == "STOPPING"
