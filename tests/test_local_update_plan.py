"""`hpctool local update`'s pure parts: the new layout keeps what running hosts have, and which
queues QueueUpdateStrategy applies to (from ParallelCluster's own patch)."""

from __future__ import annotations

import copy

import yaml

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG, load_cluster
from hpctool.configs.diff import diff_configs
from hpctool.twin.layout import plan_layout
from hpctool.twin.update import carry_over, strategy_queues

BASE = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())


def layout_of(config: dict, tmp_path, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return plan_layout(load_cluster(path).queues, str(path), static_per_queue=2, max_dynamic=1, base=16817,
                       real_memory_mb=24000 if name == "old" else 8000)


def with_queue_first(config: dict) -> dict:
    """A new queue listed first: a fresh plan would renumber every later node's host."""
    changed = copy.deepcopy(config)
    first = copy.deepcopy(changed["Scheduling"]["SlurmQueues"][0])
    first.update(Name="early", ComputeResources=[{"Name": "c7i2xl", "InstanceType": "c7i.2xlarge",
                                                  "MinCount": 1, "MaxCount": 2}])
    changed["Scheduling"]["SlurmQueues"].insert(0, first)
    return changed


def test_kept_nodes_keep_their_host_and_new_ones_take_free_numbers(tmp_path) -> None:
    old = layout_of(BASE, tmp_path, "old")
    new = layout_of(with_queue_first(BASE), tmp_path, "new")
    merged = carry_over(old, new)
    before = {n.name: n.index for n in old.nodes}
    after = {n.name: n.index for n in merged.nodes}
    assert all(after[name] == index for name, index in before.items())  # addresses of running hosts
    added = [n for n in merged.nodes if n.name not in before]
    assert {n.name for n in added} == {"early-st-c7i2xl-1", "early-st-c7i2xl-2", "early-dy-c7i2xl-1"}
    assert sorted(n.index for n in added) == list(range(max(before.values()) + 1, max(before.values()) + 4))
    assert len(set(after.values())) == len(after)
    assert merged.memory_mb_per_node == old.memory_mb_per_node != new.memory_mb_per_node
    assert merged.config == new.config and merged.queues == new.queues


def test_the_strategy_applies_to_the_queues_with_such_a_change() -> None:
    changed = copy.deepcopy(BASE)
    compute = next(q for q in changed["Scheduling"]["SlurmQueues"] if q["Name"] == "compute")
    compute["ComputeSettings"] = {"LocalStorage": {"RootVolume": {"Size": 80}}}
    queues = [q["Name"] for q in BASE["Scheduling"]["SlurmQueues"]]
    assert strategy_queues(diff_configs(BASE, changed), queues) == {"compute"}
    assert strategy_queues(diff_configs(BASE, with_queue_first(BASE)), queues) == set()  # added live
