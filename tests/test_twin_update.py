"""`hpctool local update NEW.yaml` on the suite's twin, with jobs running: what ParallelCluster
refuses is refused with `config diff`'s words and changes nothing; QueueUpdateStrategy DRAIN
drains and then replaces a queue's nodes, TERMINATE requeues their jobs; a new queue joins while
the running jobs go on."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpctool.cli import main as cli
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.errors import UpdateRefusedError
from hpctool.slurm.parse import parse_sbatch_parsable
from hpctool.twin.update import UPDATE_REASON, update
from support.twin import SUITE_TWIN_OPTIONS, bring_up, reset_twin, wait_for

pytestmark = pytest.mark.twin

BASE = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())


def queue(config: dict, name: str) -> dict:
    return next(q for q in config["Scheduling"]["SlurmQueues"] if q["Name"] == name)


def write(folder: Path, name: str, config: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def with_root_volume(strategy: str, size: int) -> dict:
    """A QUEUE_UPDATE_STRATEGY change to the compute queue (its nodes' root volume)."""
    config = copy.deepcopy(BASE)
    config["Scheduling"]["SlurmSettings"]["QueueUpdateStrategy"] = strategy
    queue(config, "compute")["ComputeSettings"] = {"LocalStorage": {"RootVolume": {"Size": size}}}
    return config


def with_extra_queue(running: Path) -> dict:
    """The config the twin runs (an earlier test's), plus a queue: the one change."""
    config = yaml.safe_load(running.read_text())
    extra = copy.deepcopy(queue(config, "compute"))
    extra.update(Name="extra", Tags=[{"Key": "hpctool-queue", "Value": "extra"}],
                 ComputeResources=[{"Name": "c7i2xl", "InstanceType": "c7i.2xlarge", "MinCount": 1, "MaxCount": 4}])
    config["Scheduling"]["SlurmQueues"].append(extra)
    return config


@pytest.fixture(scope="module")
def updated_twin(twin) -> Iterator:
    """The suite's twin from the default config, given back as it was after the module."""
    bring_up(twin, DEFAULT_CLUSTER_CONFIG, **SUITE_TWIN_OPTIONS)
    try:
        yield twin
    finally:
        bring_up(twin, DEFAULT_CLUSTER_CONFIG, **SUITE_TWIN_OPTIONS)
        reset_twin(twin)


def sbatch(twin, folder: Path, *options: str) -> str:
    result = twin.slurm.run(["sbatch", "--parsable", f"--chdir={folder}", "--output=/dev/null", *options])
    return parse_sbatch_parsable(result.stdout)


def running_on(twin, job_id: str) -> str:
    wait_for(lambda: twin.slurm.job(job_id).get("JobState") == "RUNNING", what=f"job {job_id} running")
    return twin.slurm.job(job_id)["NodeList"]


def test_an_update_parallelcluster_refuses_changes_nothing(updated_twin, tmp_path, capsys):
    before = updated_twin.slurm_conf.read_bytes(), updated_twin.layout_file.read_bytes()
    head = copy.deepcopy(BASE)
    head["HeadNode"]["InstanceType"] = "m7i.2xlarge"
    with pytest.raises(UpdateRefusedError) as refused:
        update(updated_twin, write(tmp_path, "head", head))
    assert "would REFUSE" in refused.value.message and "HeadNode.InstanceType" in refused.value.message
    removed = copy.deepcopy(BASE)
    removed["Scheduling"]["SlurmQueues"] = [q for q in removed["Scheduling"]["SlurmQueues"] if q["Name"] != "fpga"]
    assert cli(["local", "update", str(write(tmp_path, "removed", removed))]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "ParallelCluster would REFUSE this update" in err and "SlurmQueues[fpga]" in err
    assert "\nhint: " in err and "Traceback" not in err
    assert (updated_twin.slurm_conf.read_bytes(), updated_twin.layout_file.read_bytes()) == before
    same = update(updated_twin, write(tmp_path, "same", BASE))  # no change: nothing restarted
    assert same.changes == 0 and updated_twin.slurm_conf.read_bytes() == before[0]


def test_drain_drains_the_queue_and_replaces_each_node_once_its_jobs_end(updated_twin, tmp_path):
    busy = running_on(updated_twin, sbatch(updated_twin, tmp_path, "-p", "compute", "--wrap", "sleep 8"))
    idle = next(n.name for n in updated_twin.layout().static_nodes() if n.queue == "compute" and n.name != busy)
    slurmd_before = updated_twin.paths.slurmd_pid(idle).read_text()
    result = update(updated_twin, write(tmp_path, "drain", with_root_volume("DRAIN", 80)))
    assert result.strategy == "DRAIN" and set(result.drained) == {busy, idle} and result.requeued == []
    assert updated_twin.slurm.node(busy)["Reason"].startswith(UPDATE_REASON)
    # The idle node is replaced at once (a new host, a new slurmd), the busy one after its job.
    wait_for(lambda: updated_twin.node_state(idle) == "idle"
             and updated_twin.paths.slurmd_pid(idle).read_text() != slurmd_before, timeout=60,
             what=f"{idle} replaced")
    wait_for(lambda: updated_twin.node_state(busy) == "idle", timeout=90, what=f"{busy} replaced after its job")
    assert not any(n.queue != "compute" and updated_twin.node_state(n.name).endswith("drain")
                   for n in updated_twin.layout().static_nodes())  # other queues untouched


def test_terminate_requeues_the_queue_jobs_and_replaces_its_nodes(updated_twin, tmp_path):
    job = sbatch(updated_twin, tmp_path, "-p", "compute", "--requeue", "--wrap", "sleep 6")
    node = running_on(updated_twin, job)
    result = update(updated_twin, write(tmp_path, "terminate", with_root_volume("TERMINATE", 100)))
    assert result.strategy == "TERMINATE" and job in result.requeued and node in result.replaced
    wait_for(lambda: updated_twin.slurm.job(job).get("JobState") == "COMPLETED", timeout=120,
             what=f"job {job} requeued and completed")
    assert updated_twin.slurm.job(job)["Restarts"] == "1"


def test_a_new_queue_joins_while_running_jobs_go_on(updated_twin, tmp_path):
    job = sbatch(updated_twin, tmp_path, "-p", "spot", "--wrap", "sleep 20")
    node = running_on(updated_twin, job)
    result = update(updated_twin, write(tmp_path, "extra", with_extra_queue(Path(updated_twin.layout().config))))
    assert result.changes == 1 and result.drained == result.replaced == []  # an added queue is live
    assert {n for n in result.added if "-st-" in n} == {"extra-st-c7i2xl-1", "extra-st-c7i2xl-2"}
    assert "extra-dy-c7i2xl-1" in result.added and result.removed == [] and result.drained == []
    assert updated_twin.layout().config == str(tmp_path / "extra.yaml")
    record = updated_twin.slurm.job(job)
    assert (record["JobState"], record["NodeList"], record["Restarts"]) == ("RUNNING", node, "0")
    states = updated_twin.slurm.node_states()
    assert states["extra-st-c7i2xl-1"] == "idle" and states["extra-dy-c7i2xl-1"] == "idle~"
    # A job on the new queue runs there, and an old node knows the new one by name.
    ran = updated_twin.slurm.run(["srun", "-p", "extra", "-N1", "hostname"], timeout=60)
    assert ran.stdout.strip().startswith("extra-st-c7i2xl-")
    seen = updated_twin.slurm.run_on_node(node, "spot", "getent hosts extra-st-c7i2xl-1")
    assert seen.returncode == 0 and "extra-st-c7i2xl-1" in seen.stdout


def test_a_queue_removed_under_terminate_leaves_with_its_nodes(updated_twin, tmp_path):
    """Back to the shipped config, with TERMINATE (a removal with the fleet running needs it)."""
    back = copy.deepcopy(BASE)
    back["Scheduling"]["SlurmSettings"]["QueueUpdateStrategy"] = "TERMINATE"
    extra = [n.name for n in updated_twin.layout().nodes if n.queue == "extra"]
    job = sbatch(updated_twin, tmp_path, "-p", "extra", "--requeue", "--wrap", "sleep 60")
    running_on(updated_twin, job)
    result = update(updated_twin, write(tmp_path, "back", back))
    assert sorted(result.removed) == sorted(extra) and result.added == []
    # Its queue is gone: no requeue can place it; slurmctld ends it as ParallelCluster's would.
    assert job in result.ended and updated_twin.slurm.job(job)["JobState"] == "NODE_FAIL"
    assert "extra" not in {q["name"] for q in updated_twin.layout().queues}
    assert not set(extra) & set(updated_twin.slurm.node_states())
    assert not any(updated_twin.hosts.alive(name) for name in extra)  # their instances ended
