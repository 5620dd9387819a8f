"""What a config diff means for the admin: each change in words, the steps in order, the report.

Pure: it reads what :mod:`.diff` found (ParallelCluster's policies and checks) and adds words.
Written by hpctool because ParallelCluster has none of it: its policies carry a reason and an
action only for a change that fails, nothing about what a passing change does to running nodes,
jobs or data, and ``pcluster update-cluster`` checks one change at a time, not the order of the
stops, the update and the restarts the whole change needs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

# What a change needs before `pcluster update-cluster` accepts it, from the mildest to "never".
LIVE, BY_STRATEGY, FLEET_STOP, LOGIN_STOP, BOTH_STOP, REFUSED = (
    "nothing", "queue-update-strategy", "compute-fleet-stop", "login-nodes-stop", "compute-and-login-stop",
    "new-cluster")
NEEDS = (REFUSED, BOTH_STOP, LOGIN_STOP, FLEET_STOP, BY_STRATEGY, LIVE)  # report order: the hardest first
LABELS = {REFUSED: "new cluster", BOTH_STOP: "stop all", LOGIN_STOP: "stop login", FLEET_STOP: "stop fleet",
          BY_STRATEGY: "replace", LIVE: "live"}
# ParallelCluster's default QueueUpdateStrategy: queue changes wait for a stopped fleet.
NO_STRATEGY = "COMPUTE_FLEET_STOP"

# Each policy of pcluster.config.update_policy in words: what it allows, whatever the state.
POLICY_WORDS = {
    "SUPPORTED": "applied live by update-cluster",
    "IGNORED": "not listed by update-cluster; it changes nothing on its own",
    "SUPPORTED_UNLESS_ADC": "applied live (refused only in the isolated us-iso regions)",
    "QUEUE_UPDATE_STRATEGY": "needs the compute fleet stopped, or QueueUpdateStrategy DRAIN or TERMINATE to "
                             "replace the queue's nodes",
    "RESIZE_UPDATE_STRATEGY_ON_REMOVE": "growing or adding applies live; shrinking or removing needs the compute "
                                        "fleet stopped or QueueUpdateStrategy TERMINATE",
    "MANAGED_PLACEMENT_GROUP": "as QUEUE_UPDATE_STRATEGY; removing a placement group ParallelCluster manages needs "
                               "the compute fleet stopped",
    "MANAGED_FSX": "refused while the cluster has an FSx for Lustre file system ParallelCluster created (forcing "
                   "it would replace the file system); else as QUEUE_UPDATE_STRATEGY",
    "SHARED_STORAGE_UPDATE_POLICY": "external EFS/FSx mount and unmount live; other storage needs the compute "
                                    "fleet stopped or a QueueUpdateStrategy, and login nodes stopped; /home never "
                                    "changes",
    "COMPUTE_FLEET_STOP_ON_REMOVE": "adding applies live; removing needs the compute fleet stopped",
    "COMPUTE_FLEET_STOP": "needs the compute fleet stopped",
    "HEAD_NODE_STOP": "needs the head node stopped",
    "LOGIN_NODES_POOLS_UPDATE_POLICY": "adding a login pool applies live; removing one needs its login nodes stopped",
    "LOGIN_NODES_STOP": "needs every login node stopped",
    "LOGIN_NODES_POOL_STOP": "needs the pool's login nodes stopped",
    "COMPUTE_AND_LOGIN_NODES_STOP": "needs the compute fleet and the login nodes stopped",
    "EXTRA_CHEF_ATTRIBUTES": "only a few ExtraChefAttributes keys may change",
    "READ_ONLY_RESOURCE_BUCKET": "read-only: the cluster keeps the bucket it was created with",
    "UNSUPPORTED": "not possible on an existing cluster",
    "UNKNOWN": "ParallelCluster does not know its effect, so it refuses it",
}
STRATEGY_WORDS = {
    "DRAIN": "the nodes of {queues} take no new jobs, finish the running ones, then are replaced",
    "TERMINATE": "the nodes of {queues} are terminated at once and replaced: their running jobs are killed "
                 "(Slurm requeues those that may be requeued)",
}
FLEET_STOP_CMD = "pcluster update-compute-fleet --cluster-name {cluster} --status STOP_REQUESTED"
FLEET_START_CMD = "pcluster update-compute-fleet --cluster-name {cluster} --status START_REQUESTED"


def _storage_words(storage: dict[str, Any]) -> tuple[str, bool]:
    """A mount or unmount in words, and whether data is lost."""
    what = f"{storage.get('type')} '{storage.get('name')}' at {storage.get('mount_dir')}"
    if storage.get("action") == "mount":
        return (f"mounts the existing {what}; its data is untouched" if storage.get("external") else
                f"creates a new, empty {what}"), False
    if storage.get("external"):
        return f"unmounts {what}: the file system and its data stay (ParallelCluster did not create it)", False
    policy = storage.get("deletion_policy")
    if policy == "Retain":
        return f"detaches {what}: DeletionPolicy Retain keeps the file system and its data", False
    if policy == "Snapshot":
        return f"DELETES the volume {what} after a snapshot: its data survives only in the snapshot", True
    return (f"DELETES {what} and ALL ITS DATA: its DeletionPolicy is Delete (the default for storage "
            "ParallelCluster created)"), True


def loses_data(change: Any) -> bool:
    return bool(change.storage) and _storage_words(change.storage)[1]


def change_meaning(change: Any, strategy: str) -> str:
    """What the change does or needs, in words, for the stated state."""
    reason = f" ({change.reason})" if change.reason else ""
    if change.needs == REFUSED:
        words = f"not possible without a new cluster: ParallelCluster refuses it{reason}"
        if change.path.startswith("SharedStorage[") and not change.storage:
            words += ("; a file system with other settings is a new entry (a new Name), and removing this one "
                      "deletes it with its data unless its DeletionPolicy is Retain")
    elif change.needs == FLEET_STOP:
        words = f"needs the compute fleet stopped first{reason}"
    elif change.needs == LOGIN_STOP:
        words = f"needs the login nodes stopped first (Count: 0 in their pools){reason}"
    elif change.needs == BOTH_STOP:
        words = f"needs the compute fleet and the login nodes stopped first{reason}"
    elif change.needs == BY_STRATEGY:
        how = STRATEGY_WORDS.get(strategy, "the nodes of {queues} are replaced").format(queues=_queues([change.queue]))
        words = f"applied per QueueUpdateStrategy {strategy}: {how}"
    elif change.policy == "IGNORED":
        words = POLICY_WORDS["IGNORED"]
        if change.path.endswith("QueueUpdateStrategy"):
            words += "; NEW's value decides how the queue changes are applied"
    elif change.needs_stopped_fleet:
        words = "applied because the compute fleet is stopped (as stated); its nodes get it when the fleet starts"
    else:
        words = "applied live: running nodes and jobs are not touched"
    if change.storage:
        words += "; " + _storage_words(change.storage)[0]
    return words


def _queues(names: list[str | None]) -> str:
    """``queue a``, ``queues a, b``; a change outside any queue (shared storage) replaces every queue's nodes."""
    if None in names or not names:
        return "every queue"
    unique = sorted(set(names))  # type: ignore[type-var]
    return f"queue{'s' if len(unique) > 1 else ''} {', '.join(unique)}"  # type: ignore[arg-type]


def _names(changes: list[Any], limit: int = 4) -> str:
    paths = [c.path for c in changes]
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def plan_steps(diff: Any, cluster: str = "CLUSTER") -> list[str]:
    """The order to apply the whole change: save data, stop what must stop, update, restart."""
    changes = [c for c in diff.changes if c.listed or c.policy != "IGNORED"]
    if not changes:
        return []
    needs = {c.needs for c in changes}
    steps = []
    refused = [c for c in changes if c.needs == REFUSED]
    if refused:
        steps.append(f"Revert in NEW what ParallelCluster refuses on an existing cluster ({_names(refused)}), or "
                     "create a new cluster from NEW (`pcluster create-cluster`) and move users and data to it; "
                     "the steps below apply the rest.")
    for change in (c for c in changes if loses_data(c)):
        steps.append(f"Save the data of {change.storage['name']} ({change.storage['mount_dir']}) first: copy it "
                     "off, or first apply an update that only sets its DeletionPolicy to Retain (a live change), "
                     "so that removing it keeps the file system.")
    stop_login = needs & {LOGIN_STOP, BOTH_STOP}
    stop_fleet = needs & {FLEET_STOP, BOTH_STOP}
    if stop_login:
        steps.append("Stop the login nodes: set Count: 0 in every login pool of the running config (OLD), run "
                     f"`pcluster update-cluster --cluster-name {cluster} --cluster-configuration OLD-with-Count-0` "
                     "and wait for UPDATE_COMPLETE (users on them are logged out).")
    if stop_fleet:
        steps.append(f"Stop the compute fleet: `{FLEET_STOP_CMD.format(cluster=cluster)}`, then wait until "
                     f"`pcluster describe-compute-fleet --cluster-name {cluster}` says STOPPED (its nodes are "
                     "terminated: running jobs are killed, and Slurm requeues those that may be requeued).")
    steps.append(f"Let ParallelCluster check it with the real cluster state and the account: `pcluster "
                 f"update-cluster --cluster-name {cluster} --cluster-configuration {diff.new_source} --dryrun true`.")
    steps.append(f"Apply: `pcluster update-cluster --cluster-name {cluster} --cluster-configuration "
                 f"{diff.new_source}`, then wait until `pcluster describe-cluster --cluster-name {cluster}` says "
                 "UPDATE_COMPLETE.")
    replaced = [c.queue for c in changes if c.needs == BY_STRATEGY]
    if replaced and not stop_fleet:
        how = STRATEGY_WORDS.get(diff.queue_update_strategy, "the nodes of {queues} are replaced")
        steps.append(f"Watch the replacement (QueueUpdateStrategy {diff.queue_update_strategy}): "
                     f"{how.format(queues=_queues(replaced))}; `sinfo` on the head node shows it.")
    if stop_fleet:
        steps.append(f"Start the compute fleet again: `{FLEET_START_CMD.format(cluster=cluster)}`.")
    elif not diff.state.compute_running:
        steps.append(f"The compute fleet is stopped (as stated): start it when you want it back, "
                     f"`{FLEET_START_CMD.format(cluster=cluster)}`.")
    if stop_login:
        steps.append("Start the login nodes again: NEW's Count values, `pcluster update-cluster` with NEW once more.")
    return steps


def explain(diff: Any, cluster: str = "CLUSTER") -> None:
    """Fill each change's meaning, the steps and the assumptions of ``diff`` (in place)."""
    running = diff.state.compute_running
    diff.changes = sorted((replace(c, meaning=change_meaning(c, diff.queue_update_strategy)) for c in diff.changes),
                          key=lambda c: NEEDS.index(c.needs))
    diff.steps = plan_steps(diff, cluster)
    login = ", ".join(sorted(diff.state.login_pools)) or "none"
    diff.assumptions = [
        f"compute fleet {'running' if running else 'stopped'} (--fleet)",
        f"login nodes running in pools: {login} (OLD's pools with Count > 0)",
        "head node running",
        f"region {diff.region}",
        f"OLD {diff.old_source} is the config the cluster runs",
    ]


def _show(value: Any, limit: int = 70) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def verdict(diff: Any) -> str:
    state = f"compute fleet {'running' if diff.state.compute_running else 'stopped'}"
    if not diff.changes:
        return f"{diff.old_source} -> {diff.new_source}: no changes, nothing to update"
    if diff.applicable:
        return f"{diff.old_source} -> {diff.new_source}: ParallelCluster would accept this update ({state})"
    counts = {n: sum(c.needs == n for c in diff.changes) for n in NEEDS}
    parts = [f"{counts[n]} {LABELS[n]}" for n in (REFUSED, BOTH_STOP, LOGIN_STOP, FLEET_STOP) if counts[n]]
    return (f"{diff.old_source} -> {diff.new_source}: ParallelCluster would REFUSE this update ({state}): "
            + ", ".join(parts) + "; see the steps")


def format_diff(diff: Any) -> str:
    """The human-readable report (the CLI prints it; --json prints Diff.to_dict())."""
    header = (f"changes from {diff.old_source} to {diff.new_source} (QueueUpdateStrategy "
              f"{diff.queue_update_strategy}; assuming {diff.assumptions[0]}, {diff.assumptions[1]}):")
    lines = [header] if diff.changes else []
    for change in diff.changes:
        lines.append(f"{LABELS[change.needs]:11} {change.path}: {_show(change.old)} -> {_show(change.new)}  "
                     f"[{change.policy}]")
        lines.append(f"{'':11} {change.meaning}")
        if change.action and change.needs not in (LIVE, BY_STRATEGY):
            lines.append(f"{'':11} ParallelCluster's action: {change.action}")
    if diff.steps:
        lines.append("steps:")
        lines.extend(f"  {number}. {step}" for number, step in enumerate(diff.steps, 1))
    lines.append(verdict(diff))
    return "\n".join(lines)
