"""Runs ParallelCluster's node daemon code (aws-parallelcluster-node, in .tools/pcnode) against the
twin's moto, for tests/test_twin_ec2.py. It runs on that venv's Python, so it imports nothing of
hpctool's, and prints one JSON document on stdout.

    launch CONF [--assign] [--resume-file FILE] NODE...
                          resume's launch, as slurm_resume's _resume builds it from CONF (read by
                          ParallelCluster's own SlurmResumeConfig) and Slurm's resume file (FILE,
                          what slurmctld hands ResumeProgram in SLURM_RESUME_FILE), without Slurm:
                          node addresses are not pushed to scontrol (update_node_address off), but
                          with --assign as resume does (the node table written, then `sudo
                          $SLURM_BINARIES_DIR/scontrol update nodename=... nodeaddr=...`: the caller
                          puts stand-ins for both on PATH and in SLURM_BINARIES_DIR).
                          Prints the nodes that failed by EC2 error code and the cluster's compute
                          instances as clustermgtd finds them (InstanceManager.get_cluster_instances).
    assign CONF NODE=INSTANCE...   the DynamoDB write resume makes for assigned nodes.
    delete CONF ID...     InstanceManager.delete_instances for those instances: how clustermgtd ends
                          an unhealthy node's instance.
    terminate CONF        what the fleet status manager's stop does to EC2: every compute instance
                          of the cluster terminated (InstanceManager.terminate_all_compute_nodes).
    health CONF           clustermgtd's EC2 health query (get_unhealthy_cluster_instance_status)
                          over the cluster's instances, and which of them fail its checks.
    fleet-status CONF STATUS_FILE  slurm_fleet_status_manager's main with CONFIG_FILE=CONF.
    read-configs FOLDER   each daemon's own config reader on the files rendered in FOLDER: what
                          it made of them.

The endpoint comes from AWS_ENDPOINT_URL (botocore honours it), with dummy credentials.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from datetime import UTC


def _manager(conf: str):
    from slurm_plugin.instance_manager import InstanceManager
    from slurm_plugin.resume import SlurmResumeConfig

    config = SlurmResumeConfig(conf)
    manager = InstanceManager(
        region=config.region, cluster_name=config.cluster_name, boto3_config=config.boto3_config,
        table_name=config.dynamodb_table, hosted_zone=config.hosted_zone, dns_domain=config.dns_domain,
        use_private_hostname=config.use_private_hostname, head_node_private_ip=config.head_node_private_ip,
        head_node_hostname=config.head_node_hostname, fleet_config=config.fleet_config,
        run_instances_overrides=config.run_instances_overrides,
        create_fleet_overrides=config.create_fleet_overrides, job_level_scaling=config.job_level_scaling,
        instance_info_retrieval_timeout=config.instance_info_retrieval_timeout)
    return config, manager


def launch(conf: str, args: list[str]) -> dict:
    from slurm_plugin.common import ScalingStrategy

    slurm_resume = None
    assign_nodes = args[:1] == ["--assign"]
    if assign_nodes:
        args = args[1:]
    if args[:1] == ["--resume-file"]:
        with open(args[1], encoding="utf-8") as file:
            slurm_resume = json.load(file)
        args = args[2:]
    config, manager = _manager(conf)
    manager.add_instances(node_list=args, slurm_resume=slurm_resume, launch_batch_size=config.launch_max_batch_size,
                          assign_node_batch_size=config.assign_node_max_batch_size,
                          terminate_batch_size=config.terminate_max_batch_size, update_node_address=assign_nodes,
                          scaling_strategy=ScalingStrategy(config.scaling_strategy))
    instances = manager.get_cluster_instances()
    return {
        "config": {"cluster_name": config.cluster_name, "job_level_scaling": config.job_level_scaling,
                   "scaling_strategy": config.scaling_strategy, "fleet_config": config.fleet_config,
                   "run_instances_overrides": config.run_instances_overrides},
        "failed": {code: sorted(names) for code, names in manager.failed_nodes.items() if names},
        "instances": [{"id": i.id, "ip": i.private_ip, "hostname": i.hostname} for i in instances],
    }


def assign(conf: str, pairs: list[str]) -> dict:
    from slurm_plugin.fleet_manager import EC2Instance

    _, manager = _manager(conf)
    by_id = {i.id: i for i in manager.get_cluster_instances()}
    nodes = {}
    for pair in pairs:
        node, instance_id = pair.split("=", 1)
        instance = by_id[instance_id]
        nodes[node] = EC2Instance(instance.id, instance.private_ip, instance.hostname, instance.all_private_ips,
                                  instance.launch_time)
    manager._store_assigned_hostnames(nodes)  # what resume does before scontrol update nodeaddr=...
    return {"stored": sorted(nodes)}


def delete(conf: str, ids: list[str]) -> dict:
    config, manager = _manager(conf)
    manager.delete_instances(instance_ids_to_terminate=ids, terminate_batch_size=config.terminate_max_batch_size)
    return {"deleted": sorted(ids)}


def terminate(conf: str) -> dict:
    config, manager = _manager(conf)
    before = [i.id for i in manager.get_cluster_instances()]
    manager.terminate_all_compute_nodes(config.terminate_max_batch_size)
    return {"terminated": sorted(before)}


def health(conf: str) -> dict:
    from datetime import datetime

    _, manager = _manager(conf)
    ids = [i.id for i in manager.get_cluster_instances()]
    states = manager.get_unhealthy_cluster_instance_status(ids)
    now = datetime.now(tz=UTC)
    return {"cluster": sorted(ids), "reported": sorted(s.id for s in states),
            "failing": sorted(s.id for s in states
                              if s.fail_ec2_health_check(now, 0) or s.fail_scheduled_events_check())}


def fleet_status(conf: str, status_file: str) -> dict:
    from slurm_plugin import fleet_status_manager

    os.environ["CONFIG_FILE"] = conf
    sys.argv = ["slurm_fleet_status_manager", "-cf", status_file]
    try:
        fleet_status_manager.main()
    except SystemExit as exc:
        return {"exit": exc.code}
    return {"exit": 0}


def read_configs(folder: str) -> dict:
    from slurm_plugin.clustermgtd import ClustermgtdConfig
    from slurm_plugin.fleet_status_manager import SlurmFleetManagerConfig
    from slurm_plugin.resume import SlurmResumeConfig
    from slurm_plugin.suspend import SlurmSuspendConfig

    def conf(daemon: str) -> str:
        return os.path.join(folder, f"parallelcluster_{daemon}.conf")

    def plain(config: object) -> dict:
        return {key: value for key, value in vars(config).items()
                if isinstance(value, (str, int, float, bool, dict, list, type(None))) and not key.startswith("_")}

    configs = {"slurm_resume": SlurmResumeConfig(conf("slurm_resume")),
               "slurm_suspend": SlurmSuspendConfig(conf("slurm_suspend")),
               "clustermgtd": ClustermgtdConfig(conf("clustermgtd")),
               "slurm_fleet_status_manager": SlurmFleetManagerConfig(conf("slurm_fleet_status_manager"))}
    for daemon, config in configs.items():  # each main() applies its logging config so
        logging.config.fileConfig(config.logging_config, disable_existing_loggers=False)
        logging.getLogger(f"slurm_plugin.{daemon}").info("logging of %s configured", daemon)
        logging.getLogger("slurm_plugin.resume.events").warning("an event of %s", daemon)
    return {daemon: plain(config) for daemon, config in configs.items()}


def main() -> None:
    # main() of each daemon logs to /var/log/parallelcluster first; a root handler here makes its
    # basicConfig a no-op, so nothing is written outside the test's folder.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    command, *args = sys.argv[1:]
    if command == "launch":
        result = launch(args[0], args[1:])
    elif command == "assign":
        result = assign(args[0], args[1:])
    elif command == "delete":
        result = delete(args[0], args[1:])
    elif command == "terminate":
        result = terminate(args[0])
    elif command == "health":
        result = health(args[0])
    elif command == "read-configs":
        result = read_configs(args[0])
    elif command == "fleet-status":
        result = fleet_status(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
