"""The configuration of ParallelCluster's own node daemons (aws-parallelcluster-node 3.16.1:
``slurm_resume``, ``slurm_suspend``, ``clustermgtd``, ``slurm_fleet_status_manager``) for the twin,
rendered from its layout: pure functions, golden-tested (``tests/golden/pcnode/``).

Key names and defaults follow ParallelCluster's cookbook templates and the daemons' own config
readers; the timeouts are ParallelCluster's times the twin's time scale, the same numbers the twin's
slurm.conf uses (:func:`hpctool.twin.conf.power_timings`). What AWS resources the daemons expect
(launch templates and their tags, DynamoDB tables) is planned here too, so seeding them
(:mod:`hpctool.twin.ec2`) is data in, calls out. See docs/twin-pcnode.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpctool.cluster.queues import Queue
from hpctool.twin.conf import CLUSTER_NAME, TwinPaths, power_timings
from hpctool.twin.layout import TwinLayout, TwinNode

REGION = "us-east-1"  # the twin's moto answers for any region; one fixed name keeps files stable
# ParallelCluster's table names (pcluster.constants): nodes <-> instances, and the fleet status.
SLURM_TABLE_PREFIX = "parallelcluster-slurm-"
STATUS_TABLE_PREFIX = "parallelcluster-"
FLEET_STATUS_KEY = "COMPUTE_FLEET"
DAEMONS = ("slurm_resume", "slurm_suspend", "clustermgtd", "slurm_fleet_status_manager")
# ParallelCluster's CapacityType spellings in fleet-config.json (cookbook's fleet config generator).
CAPACITY_TYPES = {"ONDEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "capacity-block"}


@dataclass(frozen=True)
class PcnodePaths:
    """Where the daemons' files go in one twin's home. ParallelCluster's daemons find the Slurm
    configuration folder as ``$SLURM_BINARIES_DIR/../etc``: ``SLURM_BINARIES_DIR=<home>/pcnode/bin``
    (links to the twin's clients) and ``<home>/pcnode/etc`` a link to ``<home>/etc``."""

    twin: TwinPaths

    @property
    def plugin_dir(self) -> Path:  # /etc/parallelcluster/slurm_plugin on a head node
        return self.twin.etc / "parallelcluster" / "slurm_plugin"

    @property
    def pcluster_dir(self) -> Path:  # /opt/slurm/etc/pcluster
        return self.twin.etc / "pcluster"

    @property
    def log_dir(self) -> Path:  # /var/log/parallelcluster
        return self.twin.log / "parallelcluster"

    @property
    def path_dir(self) -> Path:  # first on the daemons' PATH: their sudo, the fleet status scripts
        return self.twin.home / "pcnode" / "bin"

    @property
    def heartbeat(self) -> Path:
        return self.pcluster_dir / ".slurm_plugin" / "clustermgtd_heartbeat"

    @property
    def fleet_config(self) -> Path:
        return self.plugin_dir / "fleet-config.json"

    @property
    def run_instances_overrides(self) -> Path:
        return self.pcluster_dir / "run_instances_overrides.json"

    @property
    def create_fleet_overrides(self) -> Path:
        return self.pcluster_dir / "create_fleet_overrides.json"

    @property
    def partition_mapping(self) -> Path:
        return self.pcluster_dir / "parallelcluster_partition_nodelist_mapping.json"

    def conf(self, daemon: str) -> Path:
        return self.plugin_dir / f"parallelcluster_{daemon}.conf"

    def logging_conf(self, daemon: str) -> Path:
        return self.plugin_dir / f"parallelcluster_{daemon}_logging.conf"

    def log(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"


@dataclass(frozen=True)
class HeadInstance:
    """The head node as the daemons know it (its address on the twin's bridge, its hostname)."""

    address: str
    hostname: str
    instance_id: str = "i-0head0000000000000"


@dataclass(frozen=True)
class PcnodeTimings:
    """clustermgtd's and resume's timings (seconds): ParallelCluster's, times the time scale."""

    loop_time: int  # clustermgtd's loop (60); read with getint, so whole seconds
    node_replacement_timeout: int  # = ResumeTimeout (ComputeNodeBootstrapTimeout, 1800)
    insufficient_capacity_timeout: int  # 600
    orphaned_instance_timeout: int  # 300
    health_check_timeout: int  # 180
    health_check_timeout_after_slurmdstarttime: int  # 180
    compute_console_wait_time: int  # 300
    clustermgtd_timeout: int  # resume and suspend: the heartbeat's age that means "down" (300)


def pcnode_timings(layout: TwinLayout) -> PcnodeTimings:
    scale = layout.time_scale
    slurm = power_timings(layout)
    loop_time = max(1, round(60 * scale))
    return PcnodeTimings(
        loop_time=loop_time,
        # As on a cluster: the same number as slurm.conf's ResumeTimeout, so Slurm and clustermgtd
        # give up on a boot together; the capacity timeout likewise matches the twin's manager.
        node_replacement_timeout=slurm.resume_timeout,
        insufficient_capacity_timeout=slurm.capacity_timeout,
        orphaned_instance_timeout=max(10, round(300 * scale)),
        health_check_timeout=max(10, round(180 * scale)),
        health_check_timeout_after_slurmdstarttime=max(10, round(180 * scale)),
        compute_console_wait_time=max(1, round(300 * scale)),
        # clustermgtd writes its heartbeat once a loop, and a loop lasts at least 5 s whatever
        # loop_time says (a fixed sleep before it reads EC2): below a few loops every resume
        # would see it "down".
        clustermgtd_timeout=max(3 * (loop_time + 5), round(300 * scale)),
    )


def slurm_table(cluster: str = CLUSTER_NAME) -> str:
    return f"{SLURM_TABLE_PREFIX}{cluster}"


def status_table(cluster: str = CLUSTER_NAME) -> str:
    return f"{STATUS_TABLE_PREFIX}{cluster}"


def launch_template_name(queue: str, compute_resource: str, cluster: str = CLUSTER_NAME) -> str:
    """The name resume's RunInstances/CreateFleet ask for: ``{cluster}-{queue}-{compute resource}``."""
    return f"{cluster}-{queue}-{compute_resource}"


def _ini(section: str, values: dict[str, Any]) -> str:
    lines = [f"# Written by hpctool local up for ParallelCluster's {section}. Do not edit: it is rewritten.",
             f"[{section}]"]
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _common(head: HeadInstance, cluster: str) -> dict[str, Any]:
    return {
        "cluster_name": cluster,
        "region": REGION,
        "proxy": "NONE",
        "dynamodb_table": slurm_table(cluster),
        "head_node_private_ip": head.address,
        "head_node_hostname": head.hostname,
        "instance_id": head.instance_id,
        # No Route53 hosted zone: node names are the hosts' names on the twin.
        "use_private_hostname": False,
    }


def _launch(paths: PcnodePaths) -> dict[str, Any]:
    return {
        "fleet_config_file": paths.fleet_config,
        "run_instances_overrides": paths.run_instances_overrides,
        "create_fleet_overrides": paths.create_fleet_overrides,
    }


def render_resume_conf(layout: TwinLayout, paths: PcnodePaths, head: HeadInstance, cluster: str = CLUSTER_NAME,
                       *, scaling_strategy: str = "all-or-nothing", job_level_scaling: bool = True) -> str:
    """``scaling_strategy``: the config's Scheduling.ScalingStrategy (ParallelCluster's default
    all-or-nothing; best-effort, greedy-all-or-nothing). ``job_level_scaling`` (3.16.1's default):
    launches per job from Slurm's resume file; 3.16.1 builds SlurmResumeJob(**job) from each job,
    which Slurm 26.05's extra fields break, so a twin on 26.05 must turn it off (node-list scaling)."""
    timings = pcnode_timings(layout)
    return _ini("slurm_resume", {
        **_common(head, cluster),
        "clustermgtd_heartbeat_file_path": paths.heartbeat,
        "clustermgtd_timeout": timings.clustermgtd_timeout,
        "scaling_strategy": scaling_strategy,
        "job_level_scaling": job_level_scaling,
        "update_node_address": True,
        **_launch(paths),
        "logging_config": paths.logging_conf("slurm_resume"),
    })


def render_suspend_conf(layout: TwinLayout, paths: PcnodePaths) -> str:
    return _ini("slurm_suspend", {
        "clustermgtd_heartbeat_file_path": paths.heartbeat,
        "clustermgtd_timeout": pcnode_timings(layout).clustermgtd_timeout,
        "logging_config": paths.logging_conf("slurm_suspend"),
    })


def render_clustermgtd_conf(layout: TwinLayout, paths: PcnodePaths, head: HeadInstance,
                            cluster: str = CLUSTER_NAME) -> str:
    timings = pcnode_timings(layout)
    common = _common(head, cluster)
    return _ini("clustermgtd", {
        **{key: common[key] for key in ("cluster_name", "region", "proxy")},
        "heartbeat_file_path": paths.heartbeat,
        **{key: common[key] for key in ("dynamodb_table", "use_private_hostname", "head_node_private_ip",
                                        "head_node_hostname", "instance_id")},
        "loop_time": timings.loop_time,
        "node_replacement_timeout": timings.node_replacement_timeout,
        "insufficient_capacity_timeout": timings.insufficient_capacity_timeout,
        "orphaned_instance_timeout": timings.orphaned_instance_timeout,
        "health_check_timeout": timings.health_check_timeout,
        "health_check_timeout_after_slurmdstarttime": timings.health_check_timeout_after_slurmdstarttime,
        # The cookbook's: console output of failed nodes sampled for the log (moto answers it).
        "compute_console_logging_enabled": True,
        "compute_console_logging_max_sample_size": 1,
        "compute_console_wait_time": timings.compute_console_wait_time,
        # No capacity blocks on the twin (moto lacks DescribeCapacityReservations).
        "disable_capacity_blocks_management": True,
        **_launch(paths),
        "logging_config": paths.logging_conf("clustermgtd"),
    })


def render_fleet_status_manager_conf(paths: PcnodePaths, cluster: str = CLUSTER_NAME) -> str:
    return _ini("slurm_fleet_status_manager", {
        "cluster_name": cluster,
        "region": REGION,
        "proxy": "NONE",
        "logging_config": paths.logging_conf("slurm_fleet_status_manager"),
    })


# Loggers the daemons write apart from their main log (ParallelCluster's own logging configs):
# (logger name, qualified name, file in the log folder).
_SIDE_LOGS = {
    "slurm_resume": [("events", "slurm_plugin.resume.events", "slurm_resume.events")],
    "clustermgtd": [("events", "slurm_plugin.clustermgtd.events", "clustermgtd.events"),
                    ("console", "slurm_plugin.clustermgtd.console_output", "compute_console_output.log")],
}


def render_logging_conf(daemon: str, paths: PcnodePaths) -> str:
    """A daemon's Python logging config (logging.config.fileConfig), its logs in the twin's log
    folder instead of /var/log/parallelcluster."""
    side = _SIDE_LOGS.get(daemon, [])
    lines = [f"# Written by hpctool local up: {daemon}'s logs in the twin's log folder.",
             "[loggers]", "keys=" + ",".join(["root", *(name for name, _, _ in side)]), "",
             "[handlers]", "keys=" + ",".join(["fileHandler", *(f"{name}Handler" for name, _, _ in side)]), "",
             "[formatters]", "keys=defaultFormatter" + (",messageFormatter" if side else ""), "",
             "[logger_root]", "level=INFO", "handlers=fileHandler", "",
             "[formatter_defaultFormatter]",
             "format=%(asctime)s - %(process)d - [%(name)s:%(funcName)s] - %(levelname)s - %(message)s", "",
             "[handler_fileHandler]", "class=FileHandler", "level=INFO", "formatter=defaultFormatter",
             f"args=({str(paths.log(daemon))!r},)", ""]
    if side:
        lines += ["[formatter_messageFormatter]", "format=%(message)s", ""]
    for name, qualname, file in side:
        level = "WARNING" if name == "events" else "INFO"  # as ParallelCluster: events from warnings up
        lines += [f"[logger_{name}]", f"level={level}", f"handlers={name}Handler", "propagate=0",
                  f"qualname={qualname}", "",
                  f"[handler_{name}Handler]", "class=FileHandler", f"level={level}", "formatter=messageFormatter",
                  f"args=({str(paths.log_dir / file)!r}, 'a', None, False)", ""]
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=4) + "\n"


def _ranges(nodes: list[TwinNode]) -> list[str]:
    """``<queue>-st|dy-<cr>-[1-N]`` per compute resource, static first, as the cookbook lists them."""
    found: list[str] = []
    for kind, dynamic in (("st", False), ("dy", True)):
        count = sum(1 for n in nodes if n.dynamic == dynamic)
        if count:
            found.append(f"{nodes[0].queue}-{kind}-{nodes[0].compute_resource}-[1-{count}]")
    return found


def render_partition_mapping(layout: TwinLayout) -> str:
    """parallelcluster_partition_nodelist_mapping.json: the partitions and nodes ParallelCluster manages."""
    mapping = {}
    for queue in layout.queues:
        ranges = []
        for resource in queue["compute_resources"]:
            ranges += _ranges([n for n in layout.nodes if n.queue == queue["name"] and n.compute_resource == resource])
        mapping[queue["name"]] = ",".join(ranges)
    return _json(mapping)


# ParallelCluster's spot market options (launch_template_utils): one-time, terminated when reclaimed.
_SPOT_MARKET = {"MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}


def _queue_models(layout: TwinLayout, queues: list[Queue]) -> list[Queue]:
    by_name = {q.name: q for q in queues}
    return [by_name[row["name"]] for row in layout.queues]


def render_fleet_config(layout: TwinLayout, queues: list[Queue], subnet_id: str) -> str:
    """fleet-config.json as the cookbook generates it: per queue and compute resource the launch API
    (``create-fleet`` for ``Instances``, ``run-instances`` for one ``InstanceType``), CapacityType,
    instance types, and for CreateFleet the subnets and allocation strategy."""
    config: dict[str, dict[str, Any]] = {}
    for queue in _queue_models(layout, queues):
        capacity = CAPACITY_TYPES.get(queue.capacity_type, "on-demand")
        config[queue.name] = {}
        for resource in queue.compute_resources:
            entry: dict[str, Any] = {"CapacityType": capacity}
            if resource.flexible:
                entry.update({"Api": "create-fleet",
                              "Instances": [{"InstanceType": t} for t in resource.instance_types],
                              "Networking": {"SubnetIds": [subnet_id]}})
                # ParallelCluster's default for a queue with Instances (none for capacity blocks).
                strategy = queue.allocation_strategy or ("" if queue.capacity_type == "CAPACITY_BLOCK"
                                                         else "lowest-price")
                if strategy:
                    entry["AllocationStrategy"] = strategy
            else:
                entry.update({"Api": "run-instances", "Instances": [{"InstanceType": resource.instance_types[0]}]})
            config[queue.name][resource.name] = entry
    return _json(config)


def render_run_instances_overrides(layout: TwinLayout, queues: list[Queue], subnet_id: str) -> str:
    """RunInstances parameters per compute resource: what moto takes only from the call, not from
    the launch template: the twin's subnet (it ignores the template's network interface) and, on
    SPOT queues, the spot market options (without them the instance is on-demand)."""
    overrides: dict[str, dict[str, Any]] = {}
    for queue in _queue_models(layout, queues):
        for resource in queue.compute_resources:
            if resource.flexible:
                continue  # CreateFleet: the subnet comes in each override, the market from the request
            entry: dict[str, Any] = {"SubnetId": subnet_id}
            if queue.is_spot:
                entry["InstanceMarketOptions"] = _SPOT_MARKET
            overrides.setdefault(queue.name, {})[resource.name] = entry
    return _json(overrides)


def render_create_fleet_overrides() -> str:
    """CreateFleet parameters per compute resource: none. The subnet already comes with each of
    resume's launch template overrides (from fleet-config.json's Networking); an empty file says
    so rather than leaving the daemons to look for a missing one."""
    return _json({})


def launch_templates(layout: TwinLayout, queues: list[Queue], subnet_id: str, image_id: str,
                     cluster: str = CLUSTER_NAME) -> list[dict[str, Any]]:
    """The launch templates ParallelCluster's compute fleet stack creates, one per compute
    resource: ``{"name", "data"}`` with CreateLaunchTemplate's LaunchTemplateData (instance and
    volume tags as ParallelCluster sets them, spot market options on SPOT queues, the instance type
    and subnet only for a single-type resource, as ParallelCluster does)."""
    templates = []
    for queue in _queue_models(layout, queues):
        for resource in queue.compute_resources:
            pc_tags = {"parallelcluster:cluster-name": cluster, "Name": "Compute",
                       "parallelcluster:node-type": "Compute"}
            named = {"parallelcluster:queue-name": queue.name,
                     "parallelcluster:compute-resource-name": resource.name}
            instance_tags = {**pc_tags, **named, **queue.tags}
            volume_tags = {"parallelcluster:cluster-name": cluster, "parallelcluster:node-type": "Compute",
                           **named, **queue.tags}
            data: dict[str, Any] = {
                "ImageId": image_id,
                "InstanceInitiatedShutdownBehavior": "terminate",
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": _tag_list(instance_tags)},
                    {"ResourceType": "volume", "Tags": _tag_list(volume_tags)},
                ],
            }
            if queue.is_spot:
                data["InstanceMarketOptions"] = _SPOT_MARKET
            elif queue.capacity_type == "CAPACITY_BLOCK":
                data["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
            if not resource.flexible:
                data["InstanceType"] = resource.instance_types[0]
                data["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": subnet_id}]
            templates.append({"name": launch_template_name(queue.name, resource.name, cluster), "data": data})
    return templates


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def render_all(layout: TwinLayout, queues: list[Queue], paths: PcnodePaths, head: HeadInstance, subnet_id: str,
               cluster: str = CLUSTER_NAME) -> dict[Path, str]:
    """Every file the daemons read, by path: what ``up`` writes (each with hpctool.atomic)."""
    files = {
        paths.conf("slurm_resume"): render_resume_conf(layout, paths, head, cluster),
        paths.conf("slurm_suspend"): render_suspend_conf(layout, paths),
        paths.conf("clustermgtd"): render_clustermgtd_conf(layout, paths, head, cluster),
        paths.conf("slurm_fleet_status_manager"): render_fleet_status_manager_conf(paths, cluster),
        paths.fleet_config: render_fleet_config(layout, queues, subnet_id),
        paths.run_instances_overrides: render_run_instances_overrides(layout, queues, subnet_id),
        paths.create_fleet_overrides: render_create_fleet_overrides(),
        paths.partition_mapping: render_partition_mapping(layout),
    }
    for daemon in DAEMONS:
        files[paths.logging_conf(daemon)] = render_logging_conf(daemon, paths)
    return files
