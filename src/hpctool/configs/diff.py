"""``hpctool config diff``: ParallelCluster's own update check between two configs, offline.

ParallelCluster decides what an update may change in ``pcluster.config.config_patch.ConfigPatch``:
it walks ``ClusterSchema``'s fields, pairs list items by their ``update_key`` (queues, compute
resources, storage by ``Name``, tags by ``Key``) and gives each change its field's ``UpdatePolicy``.
Each policy's ``check(change, patch)`` then asks the cluster for its state: is the compute fleet
running, are login nodes running. At ``pcluster update-cluster`` time that comes from AWS; here it
is an assumption (:class:`ClusterState`): the compute fleet as the admin states it (``--fleet``),
the login nodes as OLD says (ParallelCluster stops them by ``Count: 0`` in the deployed config), the
head node running. Everything runs with the network blocked (:mod:`.offline`).

What hpctool adds on top of ParallelCluster's answer for the stated state: the same check under
other states (fleet stopped, login nodes stopped, no QueueUpdateStrategy), so that each change says
what would unlock it, and the steps can be put in order (:mod:`.update_plan`). The policies and
their conditions are ParallelCluster's; nothing here decides a policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hpctool.configs.offline import no_network
from hpctool.configs.schema import config_region
from hpctool.configs.update_plan import (
    BOTH_STOP,
    BY_STRATEGY,
    FLEET_STOP,
    LIVE,
    LOGIN_STOP,
    NO_STRATEGY,
    REFUSED,
    explain,
)
from hpctool.configs.validate import read_config, validate_configs
from hpctool.errors import ConfigInputError, UsageError

FLEET_STATES = ("running", "stopped")


@dataclass(frozen=True)
class ClusterState:
    """The state ``UpdatePolicy.check`` asks about; ``login_pools``: the pools with login nodes running."""

    compute_running: bool
    login_pools: frozenset[str] = frozenset()

    @property
    def login_running(self) -> bool:
        return bool(self.login_pools)


class _AssumedCluster:
    """What ``ConfigPatch`` and the policies read of ``pcluster.models.cluster.Cluster``, from a
    stated state instead of the compute fleet status table and the login nodes' load balancer."""

    name = stack_name = "hpctool-config-diff"

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.head_node_instance = type("HeadNode", (), {"state": "running"})()  # HEAD_NODE_STOP reads it

    def has_running_capacity(self, updated_value: bool = False) -> bool:
        return self.state.compute_running

    def has_running_login_nodes(self, updated_value: bool = False, pool_name: str | None = None) -> bool:
        return pool_name in self.state.login_pools if pool_name else self.state.login_running


@dataclass(frozen=True)
class ConfigChange:
    """One change of ParallelCluster's patch, its policy and what it needs under the stated state."""

    path: str  # YAML path, list items by Name (Scheduling.SlurmQueues[spot].ComputeResources[mixed16].MaxCount)
    old: Any  # None: added
    new: Any  # None: removed
    policy: str  # ParallelCluster's UpdatePolicy name
    result: str  # ParallelCluster's check for the stated state: SUCCEEDED, ACTION NEEDED, FAILED
    needs: str  # one of update_plan.NEEDS
    reason: str  # ParallelCluster's fail reason ("" when it passes)
    action: str  # ParallelCluster's action needed ("" when it passes)
    listed: bool  # whether `pcluster update-cluster` lists it (IGNORED changes it does not)
    storage: dict[str, Any] = field(default_factory=dict)  # a shared storage change: what happens to the data
    needs_stopped_fleet: bool = False  # passes only because the fleet is stated stopped
    meaning: str = ""  # in words, filled by update_plan

    @property
    def queue(self) -> str | None:
        """The queue the change is in (or adds or removes), if any."""
        for part in self.path.split("."):
            if part.startswith("SlurmQueues[") and part.endswith("]"):
                return part[len("SlurmQueues["):-1]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new, "policy": self.policy, "result": self.result,
                "needs": self.needs, "meaning": self.meaning, "reason": self.reason, "action": self.action,
                "listed_by_pcluster": self.listed, "needs_stopped_fleet": self.needs_stopped_fleet,
                "storage": self.storage or None}


@dataclass
class Diff:
    old_source: str
    new_source: str
    state: ClusterState
    region: str
    queue_update_strategy: str
    applicable: bool  # ParallelCluster's ConfigPatch.check() verdict for the stated state
    changes: list[ConfigChange]
    steps: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: the update can be applied as stated; 1: ParallelCluster would refuse it."""
        return 0 if self.applicable else 1

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old_source, "new": self.new_source, "applicable": self.applicable,
                "compute_fleet": "running" if self.state.compute_running else "stopped",
                "login_nodes_running": sorted(self.state.login_pools), "region": self.region,
                "queue_update_strategy": self.queue_update_strategy, "assumptions": self.assumptions,
                "changes": [c.to_dict() for c in self.changes], "steps": self.steps}


def _clean(value: Any) -> Any:
    """ParallelCluster's patch works on copies and marks matched list items ``visited``; drop the mark."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "visited"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return None if value == "-" else value  # "-": pcluster's word for an absent section


def _field(schema: Any, data_key: str) -> Any:
    return next((f for f in schema.declared_fields.values() if f.data_key == data_key), None)


def _update_key(schema: Any, parts: list[str], key: str) -> str | None:
    """The key ParallelCluster pairs the items of this list by (``update_key``: Name, Key, BucketName...)."""
    for part in parts:
        field = _field(schema, part.split("[", 1)[0])
        if field is None or not hasattr(field, "nested"):
            return None
        schema = field.schema
    field = _field(schema, key)
    return field.metadata.get("update_key") if field is not None else None


def _path(change: Any, schema: Any) -> str:
    """The YAML path as ParallelCluster names it; an added or removed list item gets its pairing key."""
    path = ".".join([*change.path, change.key])
    item = change.new_value if change.new_value is not None else change.old_value
    if change.is_list and isinstance(item, dict):
        label = item.get(_update_key(schema, list(change.path), change.key) or "Name")
        if isinstance(label, str):
            path += f"[{label}]"
    return path


def _deletion_policy(item: dict) -> str:
    settings = item.get(f"{item.get('StorageType')}Settings") or {}
    return str(settings.get("DeletionPolicy") or "Delete")  # ParallelCluster's default for managed storage


def _storage_effect(change: Any) -> dict[str, Any]:
    """For a shared storage mount or unmount, what it is and what happens to its data; else {}."""
    if not (change.is_list and change.key == "SharedStorage"):
        return {}
    from pcluster.config.update_policy_utils import SharedStorageChangeInfo

    info = SharedStorageChangeInfo(change)
    item = change.new_value if change.new_value is not None else change.old_value
    effect = {"name": item.get("Name"), "mount_dir": item.get("MountDir"), "type": info.storage_type,
              "external": info.is_external, "action": "mount" if info.is_mount else "unmount"}
    if info.is_unmount and not info.is_external:
        effect["deletion_policy"] = _deletion_policy(item)
    return effect


@contextmanager
def _strategy(patch: Any, value: str | None) -> Iterator[None]:
    """The patch's target QueueUpdateStrategy set to ``value`` for the block (its own copy of NEW)."""
    settings = patch.target_config.setdefault("Scheduling", {}).setdefault("SlurmSettings", {})
    missing = object()
    saved = settings.get("QueueUpdateStrategy", missing)
    if value is not None:
        settings["QueueUpdateStrategy"] = value
    try:
        yield
    finally:
        if saved is missing:
            settings.pop("QueueUpdateStrategy", None)
        else:
            settings["QueueUpdateStrategy"] = saved


def _passes(change: Any, patch: Any, state: ClusterState, strategy: str | None = None) -> bool:
    from pcluster.config.update_policy import UpdatePolicy

    patch.cluster = _AssumedCluster(state)
    with _strategy(patch, strategy):
        return change.update_policy.check(change, patch)[0] == UpdatePolicy.CheckResult.SUCCEEDED


def _needs(change: Any, patch: Any, state: ClusterState) -> str:
    """The mildest state change that makes ParallelCluster's own check pass for this change."""
    fleet_stopped = replace(state, compute_running=False)
    all_stopped = ClusterState(compute_running=False)
    if _passes(change, patch, state):
        if state.compute_running and not _passes(change, patch, state, NO_STRATEGY):
            return BY_STRATEGY
        return LIVE
    if _passes(change, patch, fleet_stopped):
        return FLEET_STOP
    if _passes(change, patch, replace(state, login_pools=frozenset())):
        return LOGIN_STOP
    if _passes(change, patch, all_stopped):
        return BOTH_STOP
    return REFUSED


def _text(value: Any) -> str:
    return "" if value in (None, "-") else str(value)


def running_login_pools(config: dict) -> frozenset[str]:
    """Login pools with nodes running per the deployed config: ParallelCluster stops a pool by Count: 0."""
    pools = (config.get("LoginNodes") or {}).get("Pools") or []
    return frozenset(str(p.get("Name")) for p in pools if isinstance(p, dict) and (p.get("Count") or 0) > 0)


def diff_configs(old: dict, new: dict, fleet: str = "running", region: str | None = None,
                 old_source: str = "OLD", new_source: str = "NEW", cluster: str = "CLUSTER") -> Diff:
    """ParallelCluster's patch from ``old`` (the deployed config) to ``new``, checked for the stated fleet.

    The configs must be valid (see :func:`diff_files`); ParallelCluster's patch assumes they are.
    """
    if fleet not in FLEET_STATES:
        raise UsageError(f"--fleet {fleet}: not a fleet state", "use --fleet running or --fleet stopped")
    from pcluster.config.config_patch import ConfigPatch

    state = ClusterState(compute_running=fleet == "running", login_pools=running_login_pools(old))
    where = config_region(new, region)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # pcluster logs as it compares; hpctool reports the result itself
    try:
        with no_network(where.name):  # SUPPORTED_UNLESS_ADC reads the region from boto's session
            patch = ConfigPatch(cluster=_AssumedCluster(state), base_config=old, target_config=new)
            applicable, _ = patch.check()
            changes = []
            for change in patch.changes:
                result, reason, action, listed = change.update_policy.check(change, patch)
                changes.append(ConfigChange(
                    path=_path(change, patch.cluster_schema), old=_clean(change.old_value), new=_clean(change.new_value),
                    policy=str(change.update_policy.name), result=str(result.value), needs=_needs(change, patch, state),
                    reason=_text(reason), action=_text(action), listed=bool(listed),
                    storage=_storage_effect(change),
                    needs_stopped_fleet=not state.compute_running and not _passes(
                        change, patch, replace(state, compute_running=True))))
                patch.cluster = _AssumedCluster(state)  # later checks (MinCount's) read the stated state
    finally:
        logging.disable(previous)
    strategy = ((new.get("Scheduling") or {}).get("SlurmSettings") or {}).get("QueueUpdateStrategy", NO_STRATEGY)
    diff = Diff(old_source, new_source, state, where.name, str(strategy), bool(applicable), changes)
    explain(diff, cluster)
    return diff


def _scheduler(config: Any) -> Any:
    return (config.get("Scheduling") or {}).get("Scheduler") if isinstance(config, dict) else None


def _refuse_invalid(report: Any, role: str) -> None:
    if not report.errors:
        return
    first = report.errors[0]
    if first.path == "(file)":  # unreadable: the message names the file already
        raise ConfigInputError(f"{role}: {first.message}", first.hint)
    more = f" (and {len(report.errors) - 1} more error(s))" if len(report.errors) > 1 else ""
    raise ConfigInputError(f"{role} {report.source} is not a valid config: {first.path}: {first.message}{more}",
                           f"{first.hint}; `hpctool config validate {report.source}` shows every finding")


def diff_files(old_path: str | Path, new_path: str | Path, fleet: str = "running",
               region: str | None = None, cluster: str = "CLUSTER") -> Diff:
    """Read and validate both configs as `hpctool config validate` does, then diff them.

    An unreadable or invalid file, or two schedulers, is a ConfigInputError (exit 2); a missing
    path or a directory a UsageError (exit 2).
    """
    configs = []
    for role, path in (("OLD", Path(old_path)), ("NEW", Path(new_path))):
        config, unreadable = read_config(path)
        if unreadable is not None:
            _refuse_invalid(unreadable, role)
        configs.append(config)
    old, new = configs
    if _scheduler(old) != _scheduler(new) and _scheduler(old) and _scheduler(new):
        raise ConfigInputError(f"OLD {old_path} schedules with {_scheduler(old)}, NEW {new_path} with "
                               f"{_scheduler(new)}: these are not two configs of one cluster",
                               "ParallelCluster cannot change a cluster's scheduler; diff two configs of the "
                               "same cluster (OLD: the one it runs, from `pcluster describe-cluster`)")
    reports = validate_configs([(old, str(old_path)), (new, str(new_path))], region=region)
    for role, report in zip(("OLD", "NEW"), reports):
        _refuse_invalid(report, role)
    return diff_configs(old, new, fleet, region, str(old_path), str(new_path), cluster)
