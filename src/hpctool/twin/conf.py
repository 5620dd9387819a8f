"""The twin's Slurm configuration files, rendered from its layout: pure functions, golden-tested
(``tests/golden/twin/``). Settings follow what ParallelCluster writes on a cluster, with its
autoscaling timings scaled by the layout's time scale, and what a machine without systemd or
cgroups can run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpctool.twin.layout import DYNAMIC_WEIGHT, STATIC_WEIGHT, TwinLayout

CLUSTER_NAME = "twin"


@dataclass(frozen=True)
class TwinPaths:
    """Where one twin keeps everything (all under its home)."""

    home: Path

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def log(self) -> Path:
        return self.home / "log"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def dbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    def slurmd_pid(self, node: str) -> Path:
        return self.run / f"slurmd-{node}.pid"

    def slurmd_log(self, node: str) -> Path:
        return self.log / f"slurmd-{node}.log"


@dataclass(frozen=True)
class PowerTimings:
    """ParallelCluster's power-saving timings (seconds), times the twin's scale."""

    suspend_time: int  # ScaledownIdletime x 60
    suspend_timeout: int  # 120 on ParallelCluster
    resume_timeout: int  # ComputeNodeBootstrapTimeout, 1800 by default
    capacity_timeout: int  # clustermgtd's insufficient_capacity_timeout, 600
    manager_interval: float  # clustermgtd's loop, 60
    power_save_interval: int  # slurmctld's power-save scan (SlurmctldParameters), 10 by default
    slurmd_timeout: int  # SlurmdTimeout, 180 on ParallelCluster: a node that stops answering goes DOWN


def power_timings(layout: TwinLayout) -> PowerTimings:
    scale = layout.time_scale
    # Floors keep Slurm's own mechanics intact at tiny scales (it refuses SuspendTimeout < 5 s
    # worth of work, and a resume needs a few seconds for slurmd to register).
    return PowerTimings(
        suspend_time=max(10, round(layout.scaledown_idletime_min * 60 * scale)),
        suspend_timeout=max(5, round(120 * scale)),
        resume_timeout=max(20, round(1800 * scale)),
        capacity_timeout=max(10, round(600 * scale)),
        manager_interval=max(1.0, 60 * scale),
        # Slurm's whole-second scan: unscaled, a node would stay "powering down" up to 10 s longer
        # than SuspendTimeout, and an idle node stay up that much past SuspendTime.
        power_save_interval=max(1, round(10 * scale)),
        # Floor: a node of a busy 2-core machine must never miss it while it is well.
        slurmd_timeout=max(20, round(180 * scale)),
    )


@dataclass(frozen=True)
class HeadNode:
    """Where the twin's controller runs, and what every host shares with it."""

    hostname: str
    address: str
    plugin_dir: str  # Slurm's plugins in the node image (a path valid on the machine and in nodes)
    munge_socket: str


def render_slurm_conf(layout: TwinLayout, paths: TwinPaths, head: HeadNode, addresses: dict[str, str],
                      first_job_id: int = 1) -> str:
    timings = power_timings(layout)
    static = [n.name for n in layout.static_nodes()]
    lines = [
        "# Written by hpctool local up; the twin's own cluster (Slurm 24.11). Do not edit: it is rewritten.",
        f"ClusterName={CLUSTER_NAME}",
        f"SlurmctldHost={head.hostname}({head.address})",
        f"SlurmctldPort={layout.ports['SlurmctldPort']}",
        f"SlurmdPort={layout.ports.get('SlurmdPort', 6818)}",
        f"PluginDir={head.plugin_dir}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # Short credential lifetime: a requeued job waits seconds, not ~120 s, before it may
        # restart; longer than SuspendTimeout, so a job requeued off a node that failed to boot
        # restarts after Slurm has powered that node down.
        f"AuthInfo=cred_expire={timings.suspend_timeout + 5},socket={head.munge_socket}",
        f"StateSaveLocation={paths.state}",
        f"SlurmdSpoolDir={paths.spool}/%n",
        f"SlurmctldPidFile={paths.run / 'slurmctld.pid'}",
        f"SlurmdPidFile={paths.run}/slurmd-%n.pid",
        f"SlurmctldLogFile={paths.log / 'slurmctld.log'}",
        f"SlurmdLogFile={paths.log}/slurmd-%n.log",
        # No systemd and no cgroup delegation on CI-like machines (cgroup.conf: CgroupPlugin=disabled).
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        # ParallelCluster's: a reconfigure keeps the partitions' states.
        "ReconfigFlags=KeepPartState",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=2,batch_sched_delay=0",
        "ReturnToService=1",
        "JobRequeue=1",
        # Never reuse an id accounting already holds, even when slurmctld's state is lost.
        f"FirstJobId={first_job_id}",
        "KillWait=5",
        "MinJobAge=300",
        # A job without --mem gets memory per CPU, not the whole node.
        f"DefMemPerCPU={layout.memory_mb_per_node // layout.cpus_per_node}",
        "InactiveLimit=0",
        f"SlurmdTimeout={timings.slurmd_timeout}",
        # Lets a virtual node claim more CPUs than the machine has.
        "SlurmdParameters=config_overrides",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=30",
        *(_accounting_lines(layout, head) if layout.accounting else [
            # As ParallelCluster without SlurmSettings.Database: no slurmdbd, sacct has nothing.
            "AccountingStorageType=accounting_storage/none"]),
        # The config's priority weights (CustomSlurmSettings: fair share), as ParallelCluster appends them.
        *(f"{key}={value}" for key, value in layout.priority),
        "",
        ("# Power saving as ParallelCluster writes it (timings x the twin's time scale "
        f"{layout.time_scale:g}): dynamic nodes boot for jobs and power down when idle."),
        f"SuspendProgram={paths.bin / 'suspend'}",
        f"ResumeProgram={paths.bin / 'resume'}",
        f"ResumeFailProgram={paths.bin / 'suspend'}",
        f"SuspendTime={timings.suspend_time}",
        f"SuspendTimeout={timings.suspend_timeout}",
        f"ResumeTimeout={timings.resume_timeout}",
        "ResumeRate=0",
        "SuspendRate=0",
        "TreeWidth=65533",
        # Powered-down cloud nodes stay visible in sinfo, as on ParallelCluster.
        "PrivateData=cloud",
        # power_save_min_interval=0 (ParallelCluster: 30): the twin's scaled timings are shorter.
        ("SlurmctldParameters=idle_on_node_suspend,power_save_min_interval=0,"
         f"power_save_interval={timings.power_save_interval}"),
    ]
    if static:
        lines.append(f"SuspendExcNodes={','.join(static)}")
    lines.append("")
    for node in layout.nodes:
        weight = DYNAMIC_WEIGHT if node.dynamic else STATIC_WEIGHT
        # Under ParallelCluster's daemons (--scaling parallelcluster) static nodes are CLOUD too, kept
        # up by SuspendExcNodes, as in ParallelCluster's slurm.conf.
        state = "CLOUD" if node.dynamic or layout.pcnode else "UNKNOWN"
        # A dynamic node under ParallelCluster's daemons has no address until its instance does
        # (resume's `scontrol update nodeaddr=`): clustermgtd takes a set one for a missing instance.
        address = "" if node.dynamic and layout.pcnode else f" NodeAddr={addresses[node.name]}"
        lines.append(
            f"NodeName={node.name} NodeHostname={node.name}{address} "
            f"CPUs={layout.cpus_per_node} RealMemory={layout.memory_mb_per_node} "
            f"Features={','.join(node.features)} Weight={weight} State={state}"
        )
    lines.append("")
    for index, queue in enumerate(layout.queues):
        default = "YES" if index == 0 else "NO"
        lines.append(
            f"PartitionName={queue['name']} Nodes={','.join(queue['nodes'])} Default={default} "
            "MaxTime=INFINITE State=UP OverSubscribe=NO"
        )
    return "\n".join(lines) + "\n"


def _accounting_lines(layout: TwinLayout, head: HeadNode) -> list[str]:
    return [
        "AccountingStorageType=accounting_storage/slurmdbd",
        f"AccountingStorageHost={head.address}",
        # Connections to slurmdbd take their MUNGE socket from here, not from AuthInfo.
        f"AccountingStoragePass={head.munge_socket}",
        f"AccountingStoragePort={layout.ports['DbdPort']}",
        "AccountingStorageEnforce=associations",
    ]


def render_cgroup_conf() -> str:
    # 24.05+: no cgroup plugin at all; machines like CI's have no delegated cgroup v2 tree.
    return "# Written by hpctool local up.\nCgroupPlugin=disabled\n"


def render_slurmdbd_conf(layout: TwinLayout, paths: TwinPaths, password: str, head: HeadNode) -> str:
    return "\n".join([
        "# Written by hpctool local up.",
        "AuthType=auth/munge",
        f"AuthInfo=socket={head.munge_socket}",
        f"DbdHost={head.hostname}",
        f"DbdAddr={head.address}",
        f"PluginDir={head.plugin_dir}",
        f"DbdPort={layout.ports['DbdPort']}",
        "SlurmUser=root",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={layout.ports['MariaDB port']}",
        "StorageUser=slurm",
        f"StoragePass={password}",
        "StorageLoc=slurm_acct_db",
        f"LogFile={paths.log / 'slurmdbd.log'}",
        f"PidFile={paths.run / 'slurmdbd.pid'}",
        "",
    ])


def render_power_script(action: str, python: str, paths: TwinPaths) -> str:
    """The Resume/Suspend program slurmctld runs on the head node: a shell stub into
    :mod:`hpctool.twin.power`, which runs on the machine (outside the head node's namespaces, as
    an EC2 call leaves the instance) through the machine anchor's namespaces.
    slurmctld starts it with stdin, stdout and stderr closed: open them first, or the first file
    a child opens becomes its fd 0-2 (a slurmd's log on fd 0 breaks every job launch)."""
    return (
        "#!/bin/sh\n"
        f"# Written by hpctool local up: slurmctld's {action} program for the twin's dynamic nodes.\n"
        f"exec </dev/null >>{paths.log / 'power.log'} 2>&1\n"
        f'exec nsenter -t "$(cat {paths.run / "machine.pid"})" -m -n -u -r -w -- '
        f'{python} -m hpctool.twin.power --home {paths.home} {action} "$@"\n'
    )
