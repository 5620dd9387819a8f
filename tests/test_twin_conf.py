"""The twin's layout and Slurm configuration, rendered without root or daemons: golden files for
slurm.conf and slurmdbd.conf, and the layout rules (names, counts, ports, timings)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG, ComputeResource, Queue, load_cluster
from hpctool.errors import SetupError
from hpctool.twin.conf import (
    HeadNode,
    TwinPaths,
    power_timings,
    render_power_script,
    render_slurm_conf,
    render_slurmdbd_conf,
)
from hpctool.twin.hosts import Network
from hpctool.twin.layout import plan_layout
from hpctool.twin.spot import SpotServices
from support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "twin"
PATHS = TwinPaths(Path("/root/.local/share/hpctool"))
NETWORK = Network(bridge="hpct-abcdef", subnet="10.210.7.0/24")
HEAD = HeadNode(hostname="head", address=NETWORK.address(0),
                plugin_dir="/var/lib/hpctool/image/root/usr/lib/x86_64-linux-gnu/slurm-wlm",
                munge_socket="/run/hpctool/hpct-abcdef/munge/munge.socket.2")


def addresses(layout):
    return {n.name: NETWORK.address(n.index) for n in layout.nodes}


def default_layout(**options):
    cluster = load_cluster()
    return plan_layout(cluster.queues, "cluster-configs/default.yaml", base=16817, real_memory_mb=24000,
                       scaledown_idletime_min=cluster.scaledown_idletime_min,
                       service_ports=SpotServices().ports, priority=cluster.priority, **options)


def test_slurm_conf_of_the_default_twin_matches_golden():
    layout = default_layout()
    assert_golden(render_slurm_conf(layout, PATHS, HEAD, addresses(layout), first_job_id=42),
                  GOLDEN / "slurm.conf")


def test_slurm_conf_of_the_test_twin_matches_golden():
    layout = default_layout(static_per_queue=2, max_dynamic=1, time_scale=0.02)
    assert_golden(render_slurm_conf(layout, PATHS, HEAD, addresses(layout)), GOLDEN / "slurm-static.conf")


def test_the_configs_priority_weights_reach_the_twins_slurm_conf(tmp_path):
    """Fair share as the cluster has it: the config's Priority* CustomSlurmSettings, nothing else of them."""
    assert dict(load_cluster().priority) == {"PriorityWeightFairshare": "10000", "PriorityWeightAge": "1000"}
    conf = render_slurm_conf(default_layout(), PATHS, HEAD, addresses(default_layout())).splitlines()
    assert "PriorityWeightFairshare=10000" in conf and "PriorityWeightAge=1000" in conf
    assert not [line for line in conf if line.startswith("TaskProlog")]  # only the priority settings are carried
    config = yaml.safe_load(Path(DEFAULT_CLUSTER_CONFIG).read_text())
    config["Scheduling"]["SlurmSettings"]["CustomSlurmSettings"] = [{"JobRequeue": 1}]
    plain = tmp_path / "fifo.yaml"
    plain.write_text(yaml.safe_dump(config))
    cluster = load_cluster(plain)
    assert cluster.priority == ()
    layout = plan_layout(cluster.queues, str(plain), base=16817, real_memory_mb=24000, priority=cluster.priority)
    assert not [line for line in render_slurm_conf(layout, PATHS, HEAD, addresses(layout)).splitlines()
                if line.startswith("PriorityWeight")]


def test_a_config_without_accounting_gives_a_twin_without_it(tmp_path):
    """As ParallelCluster: no SlurmSettings.Database (nor ExternalSlurmdbd), no slurmdbd."""
    config = yaml.safe_load(Path(DEFAULT_CLUSTER_CONFIG).read_text())
    assert load_cluster().accounting  # the shipped config has a database
    del config["Scheduling"]["SlurmSettings"]["Database"]
    bare = tmp_path / "no-accounting.yaml"
    bare.write_text(yaml.safe_dump(config))
    cluster = load_cluster(bare)
    assert not cluster.accounting
    layout = plan_layout(cluster.queues, str(bare), base=16817, real_memory_mb=24000, accounting=cluster.accounting)
    with_db = default_layout()
    assert not layout.same_cluster(with_db) and layout.nodes == with_db.nodes
    conf = render_slurm_conf(layout, PATHS, HEAD, addresses(layout))
    assert "AccountingStorageType=accounting_storage/none" in conf.splitlines()
    assert "AccountingStorageHost" not in conf and "AccountingStorageEnforce" not in conf
    assert "AccountingStorageType=accounting_storage/slurmdbd" in render_slurm_conf(
        with_db, PATHS, HEAD, addresses(with_db)).splitlines()
    config["Scheduling"]["SlurmSettings"]["ExternalSlurmdbd"] = {"Host": "10.0.0.5", "Port": 6819}
    bare.write_text(yaml.safe_dump(config))
    assert load_cluster(bare).accounting


def test_slurmdbd_conf_matches_golden():
    assert_golden(render_slurmdbd_conf(default_layout(), PATHS, "not-a-real-password", HEAD),
                  GOLDEN / "slurmdbd.conf")


def test_under_parallelclusters_daemons_every_node_is_cloud_and_dynamic_ones_have_no_address_yet():
    layout = default_layout(static_per_queue=2, max_dynamic=1, time_scale=0.02, scaling="parallelcluster")
    plain = render_slurm_conf(default_layout(static_per_queue=2, max_dynamic=1, time_scale=0.02), PATHS, HEAD,
                              addresses(layout)).splitlines()
    nodes = {line.split()[0]: line for line in render_slurm_conf(layout, PATHS, HEAD, addresses(layout)).splitlines()
             if line.startswith("NodeName=")}
    assert nodes and all(line.endswith("State=CLOUD") for line in nodes.values())
    for node in layout.nodes:
        has_address = f"NodeAddr={addresses(layout)[node.name]}" in nodes[f"NodeName={node.name}"]
        assert has_address is not node.dynamic  # static: its instance's (seeded) address
    # the rest is the same slurm.conf: the same programs (bin/resume enters ParallelCluster's)
    assert [line for line in plain if not line.startswith("NodeName=")] == [
        line for line in render_slurm_conf(layout, PATHS, HEAD, addresses(layout)).splitlines()
        if not line.startswith("NodeName=")]


def test_parallelclusters_programs_are_entered_through_the_machine_anchor():
    from hpctool.twin.pcnode_conf import PcnodePaths
    from hpctool.twin.pcnode_programs import program_path, render_power_shim

    paths = PcnodePaths(PATHS)
    for action, program in (("resume", "slurm_resume"), ("suspend", "slurm_suspend")):
        lines = render_power_shim(action, paths, PATHS.run / "machine.pid").splitlines()
        assert lines[2].startswith("exec </dev/null >>") and lines[2].endswith("2>&1")
        assert lines[3] == (f'exec nsenter -t "$(cat {PATHS.run}/machine.pid)" -m -n -u -r -w -- '
                            f'{program_path(paths, program)} "$@"')


def test_power_scripts_open_stdio_before_python():
    script = render_power_script("resume", "/venv/bin/python", PATHS)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    # slurmctld closes fds 0-2: the stub must open them before anything else runs.
    assert lines[2].startswith("exec </dev/null >>") and lines[2].endswith("2>&1")
    # It runs on the head node and leaves it through the machine anchor's namespaces.
    assert lines[3] == (f'exec nsenter -t "$(cat {PATHS.run}/machine.pid)" -m -n -u -r -w -- '
                        f'/venv/bin/python -m hpctool.twin.power --home {PATHS.home} resume "$@"')


def test_the_default_twin_mirrors_the_config_dynamic_nodes_included():
    layout = default_layout()
    cluster = load_cluster()
    assert not layout.static_nodes()  # every MinCount is 0 in the default config
    expected = [(q.name, r.name, i) for q in cluster.queues for r in q.compute_resources
                for i in range(1, min(r.max_count - r.min_count, 2) + 1)]
    assert [(n.queue, n.compute_resource, int(n.name.rsplit("-", 1)[1])) for n in layout.nodes] == expected
    assert all(n.name == f"{n.queue}-dy-{n.compute_resource}-{n.name.rsplit('-', 1)[1]}" for n in layout.nodes)
    # Every node a host of its own: an address each, Slurm's own port everywhere.
    assert len({NETWORK.address(n.index) for n in layout.nodes} | {NETWORK.address(0)}) == len(layout.nodes) + 1
    assert {n.port for n in layout.nodes} == {6818}


def test_min_count_becomes_static_nodes_capped_for_one_machine():
    queue = Queue("q", "ONDEMAND", (ComputeResource("big", ("c7i.large",), 20, 30),
                                    ComputeResource("small", ("c7i.large",), 1, 1)))
    layout = plan_layout([queue], "x.yaml", base=20000, max_dynamic=3, real_memory_mb=24000)
    names = [n.name for n in layout.nodes]
    assert names == ["q-st-big-1", "q-st-big-2", "q-st-big-3", "q-st-big-4", "q-st-small-1",
                     "q-dy-big-1", "q-dy-big-2", "q-dy-big-3"]


def test_timings_follow_parallelcluster_times_the_scale():
    layout = default_layout(time_scale=1.0)
    timings = power_timings(layout)
    # ParallelCluster: SuspendTime = ScaledownIdletime x 60, SuspendTimeout 120, ResumeTimeout 1800.
    assert (timings.suspend_time, timings.suspend_timeout, timings.resume_timeout) == (600, 120, 1800)
    assert power_timings(default_layout(time_scale=0.1)).suspend_time == 60
    assert power_timings(default_layout(time_scale=0.001)).suspend_timeout == 5  # Slurm's floor


@pytest.mark.parametrize("options, word", [({"static_per_queue": -1}, "--static"),
                                           ({"max_dynamic": -2}, "--max-dynamic"),
                                           ({"time_scale": 5.0}, "--time-scale")])
def test_bad_layout_options_are_setup_errors(options, word):
    with pytest.raises(SetupError) as error:
        default_layout(**options)
    assert word in error.value.message and error.value.hint


def test_a_queue_without_any_node_is_refused():
    queue = Queue("empty", "ONDEMAND", (ComputeResource("r", ("c7i.large",), 0, 0),))
    with pytest.raises(SetupError) as error:
        plan_layout([queue], "x.yaml", base=20000)
    assert "empty" in error.value.message and "MaxCount" in error.value.hint


# -- the twin's config reader: typed, and no input makes it raise anything but ConfigError ------

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpctool.cluster.queues import slurm_queues
from hpctool.errors import ConfigError

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=False),
                     st.text(max_size=8), st.sampled_from(["many", "c7i.large", "SPOT", "ONDEMAND", ""]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["Name", "InstanceType", "Instances", "MinCount", "MaxCount",
                                     "ComputeResources", "CapacityType", "Tags", "Key", "Value"]), inner,
                    max_size=5)), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queues=_values)
def test_any_slurm_queues_value_is_read_or_refused_with_a_config_error(queues):
    config = {"Scheduling": {"Scheduler": "slurm", "SlurmQueues": queues}}
    try:
        result = slurm_queues(config, "fuzz.yaml")
    except ConfigError as error:
        assert error.message.startswith("fuzz.yaml") and error.hint
        return
    for queue in result:  # what is read is typed as the twin needs it
        assert isinstance(queue.name, str) and queue.compute_resources
        for resource in queue.compute_resources:
            assert isinstance(resource.min_count, int) and isinstance(resource.max_count, int)
            assert 0 <= resource.min_count <= resource.max_count
            assert all(isinstance(t, str) and t for t in resource.instance_types)


@pytest.mark.parametrize("count, word", [("many", "MinCount"), (-1, "MinCount"), (True, "MinCount")])
def test_a_bad_min_count_names_the_yaml_path(count, word):
    config = {"Scheduling": {"SlurmQueues": [{"Name": "q", "ComputeResources": [
        {"Name": "r", "InstanceType": "c7i.large", "MinCount": count}]}]}}
    with pytest.raises(ConfigError) as error:
        slurm_queues(config, "c.yaml")
    assert f"Scheduling.SlurmQueues[q].ComputeResources[0].{word}" in error.value.message


def test_duplicate_keys_are_refused_for_the_twin_too(tmp_path):
    config = tmp_path / "dup.yaml"
    config.write_text("Scheduling:\n  SlurmQueues: []\nScheduling:\n  SlurmQueues: []\n")
    with pytest.raises(ConfigError) as error:
        load_cluster(config)
    assert "Scheduling" in error.value.message
