"""Configs written for an earlier ParallelCluster release: say what changed and what to use instead.

The schema alone answers "Must be one of ..." or "Unknown field."; these rules turn the known
removals into a message an admin can act on. Schema errors at the same path are then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpctool.configs.findings import ERROR, Finding, PathNamer

LEGACY_CHECK = "legacy"


@dataclass(frozen=True)
class RemovedOs:
    os: str
    change: str
    instead: str


REMOVED_OS = {
    "alinux2": RemovedOs("alinux2", "Amazon Linux 2 is no longer a ParallelCluster OS (it reaches end of "
                         "life; recent 3.x releases ship no alinux2 AMI)", "alinux2023"),
    "centos7": RemovedOs("centos7", "CentOS 7 reached end of life (June 2024) and is no longer a ParallelCluster OS",
                         "rocky8 or rhel8 (or rocky9/rhel9)"),
    "ubuntu1804": RemovedOs("ubuntu1804", "Ubuntu 18.04 is no longer supported", "ubuntu2204 or ubuntu2404"),
    "ubuntu2004": RemovedOs("ubuntu2004", "Ubuntu 20.04 is no longer supported", "ubuntu2204 or ubuntu2404"),
    "alinux": RemovedOs("alinux", "Amazon Linux 1 was a ParallelCluster 2 OS", "alinux2023"),
}


def legacy_findings(config: Any) -> list[Finding]:
    if not isinstance(config, dict):
        return []
    namer = PathNamer(config)
    findings: list[Finding] = []
    image = config.get("Image")
    os_name = image.get("Os") if isinstance(image, dict) else None
    if isinstance(os_name, str) and os_name in REMOVED_OS:
        removed = REMOVED_OS[os_name]
        findings.append(Finding(ERROR, "Image.Os", f"Image.Os {os_name}: {removed.change}",
                                f"use Image.Os: {removed.instead}; with a CustomAmi, rebuild it on the new OS "
                                "with `pcluster build-image`", LEGACY_CHECK))
    login = config.get("LoginNodes")
    pools = login.get("Pools") if isinstance(login, dict) else None
    for index, pool in enumerate(pools if isinstance(pools, list) else []):
        ssh = pool.get("Ssh") if isinstance(pool, dict) else None
        if isinstance(ssh, dict) and "KeyName" in ssh:
            path = f"{namer.item('LoginNodes.Pools', pools, index)}.Ssh.KeyName"
            findings.append(Finding(ERROR, path, "LoginNodes pools no longer take Ssh.KeyName (removed in "
                                    "ParallelCluster 3.15)", "delete Ssh.KeyName from the pool and keep "
                                    "Ssh.AllowedIps; set the cluster's key pair in HeadNode.Ssh.KeyName",
                                    LEGACY_CHECK))
    scheduling = config.get("Scheduling")
    if isinstance(scheduling, dict) and (scheduling.get("Scheduler") == "awsbatch" or "AwsBatchQueues" in scheduling):
        path = "Scheduling.Scheduler" if scheduling.get("Scheduler") == "awsbatch" else "Scheduling.AwsBatchQueues"
        findings.append(Finding(ERROR, path, "the AWS Batch scheduler is no longer part of ParallelCluster 3",
                                "use Scheduler: slurm with Scheduling.SlurmQueues (hpctool's templates do)",
                                LEGACY_CHECK))
    return findings


def looks_like_pcluster2(text: str) -> bool:
    """ParallelCluster 2 configs were INI files with a [cluster NAME] section."""
    return any(line.strip().startswith(("[cluster ", "[global]", "[aws]")) for line in text.splitlines())
