"""The local twin, for real: munge, MariaDB + slurmdbd, slurmctld and one slurmd per node."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpctool.cluster.queues import load_queues
from hpctool.errors import ConfigError, SetupError, TwinError
from hpctool.twin import Twin, daemons, machine
from hpctool.twin.layout import plan_layout
from support.twin import wait_all_idle, wait_for, wait_job

HPCTOOL = [sys.executable, "-m", "hpctool.cli"]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPCTOOL, *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def nodes_of(twin: Twin, queue: str) -> list[str]:
    return [n.name for n in twin.layout().nodes if n.queue == queue]


def test_partitions_mirror_the_cluster_config(twin):
    queues = load_queues()
    layout = twin.layout()
    assert [q["name"] for q in layout.queues] == [q.name for q in queues]
    assert {"compute", "spot", "fpga", "storage"} <= {q.name for q in queues}
    sinfo = twin.slurm.run(["sinfo", "-h", "-o", "%R"]).stdout.split()
    assert sorted(sinfo) == sorted(q.name for q in queues)
    for node in layout.nodes:  # ParallelCluster's node names: static -st-, dynamic -dy-
        queue = next(q for q in queues if q.name == node.queue)
        assert node.name.startswith(f"{queue.name}-{'dy' if node.dynamic else 'st'}-{node.compute_resource}-")
        assert node.compute_resource in {r.name for r in queue.compute_resources}
    # Every compute resource has its dynamic node (MaxCount - MinCount, capped at 1 here).
    assert {(n.queue, n.compute_resource) for n in layout.dynamic_nodes()} == {
        (q.name, r.name) for q in queues for r in q.compute_resources}
    assert all(len([n for n in layout.static_nodes() if n.queue == q.name]) == 2 for q in queues)
    assert all(n.spot for n in layout.nodes if n.queue == "spot")
    assert not any(n.spot for n in layout.nodes if n.queue != "spot")
    records = {r["NodeName"]: r for r in twin.slurm.nodes()}
    for node in layout.nodes:  # features and weights as ParallelCluster writes them
        features = records[node.name]["AvailableFeatures"].split(",")
        assert features[:3] == ["dynamic" if node.dynamic else "static", node.instance_type, node.compute_resource]
        assert records[node.name]["Weight"] == ("1000" if node.dynamic else "1")
    assert all("CLOUD" in records[n.name]["State"] for n in layout.dynamic_nodes())


def test_a_job_in_every_partition_completes_on_a_node_of_that_partition(twin, tmp_path):
    ids = {}
    for queue in twin.layout().queues:
        ids[queue["name"]] = twin.slurm.sbatch(
            [f"--partition={queue['name']}", f"--output={tmp_path}/%j.out", "--job-name=twin-test"],
            wrap='echo "$SLURMD_NODENAME $SLURM_JOB_PARTITION"',
        )
    for queue, job_id in ids.items():
        assert wait_job(twin.slurm, job_id) == "COMPLETED"
        node, partition = (tmp_path / f"{job_id}.out").read_text().split()
        assert partition == queue
        assert node in nodes_of(twin, queue)
    # Accounting has every finished job with its partition.
    records = {r.job_id: r for r in twin.slurm.sacct(list(ids.values()))}
    assert {records[i].partition for i in ids.values()} == set(ids)
    assert all(records[i].state == "COMPLETED" and records[i].exit_code == "0:0" for i in ids.values())


def test_requeue_of_a_running_job_reruns_it_with_restart_count_1(twin, tmp_path):
    out = tmp_path / "requeue.out"
    job_id = twin.slurm.sbatch(
        ["--partition=spot", "--requeue", f"--output={out}", "--open-mode=append"],
        wrap='echo "restart=${SLURM_RESTART_COUNT:-0}"; sleep 4',
    )
    wait_for(lambda: out.exists() and "restart=0" in out.read_text(), what="first run")
    twin.slurm.requeue(job_id)
    assert wait_job(twin.slurm, job_id, timeout=120) == "COMPLETED"
    runs = [line for line in out.read_text().splitlines() if line.startswith("restart=")]
    assert runs == ["restart=0", "restart=1"]
    assert "DUE TO JOB REQUEUE" in out.read_text()  # Slurm's own word on why the first run ended
    (record,) = twin.slurm.sacct([job_id])
    assert record.restarts == 1
    assert twin.slurm.job(job_id)["Restarts"] == "1"


def test_after_draining_a_spot_node_a_requeued_job_runs_on_another_spot_node(twin, tmp_path):
    spot = nodes_of(twin, "spot")
    out = tmp_path / "moved.out"
    job_id = twin.slurm.sbatch(
        ["--partition=spot", "--requeue", f"--output={out}", "--open-mode=append"],
        wrap='echo "$SLURMD_NODENAME"; sleep 6',
    )
    first = wait_for(lambda: out.exists() and out.read_text().split(), what="first run")[0].strip()
    assert first in spot
    try:
        twin.slurm.update_node(first, "drain", reason="test drain")
        twin.slurm.requeue(job_id)
        assert wait_job(twin.slurm, job_id, timeout=120) == "COMPLETED"
        nodes = [line for line in out.read_text().splitlines() if line in spot]  # not slurmstepd's or bash's words
        assert len(nodes) == 2
        assert nodes[1] in spot and nodes[1] != first
    finally:
        twin.slurm.update_node(first, "resume")
    wait_all_idle(twin)


def test_status_json_shape(twin):
    result = run_cli("local", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["up"] is True
    assert status["slurm_conf"].endswith("etc/slurm.conf")
    assert set(status) >= {"up", "home", "slurm_conf", "config", "daemons", "queues"}
    assert {"mariadbd", "slurmdbd", "slurmctld"} <= set(status["daemons"])
    assert all(d["running"] and isinstance(d["pid"], int) for d in status["daemons"].values())
    assert [q["name"] for q in status["queues"]] == [q["name"] for q in twin.layout().queues]
    spot = next(q for q in status["queues"] if q["name"] == "spot")
    assert spot["spot"] is True and spot["capacity_type"] == "SPOT"
    assert all(set(n) == {"name", "state", "kind"} for q in status["queues"] for n in q["nodes"])
    assert status["dead"] == []


def test_env_exports_the_twins_slurm_conf_and_the_images_clients(twin):
    result = run_cli("local", "env")
    assert result.stdout == (f"export SLURM_CONF={twin.slurm_conf}\nexport HPCTOOL_TWIN_HOME={twin.home}\n"
                             f"export PATH={twin.client_bin}:\"$PATH\"\n")
    shell = subprocess.run(["bash", "-c", f'eval "$({sys.executable} -m hpctool.cli local env)"; sinfo --version'],
                           capture_output=True, text=True, timeout=30, check=True)
    assert shell.stdout.strip().startswith("slurm-wlm 24.11"), shell.stdout  # the image's Slurm, not the machine's
    # On every host /etc/slurm is the twin's (the Snakemake jobstep plugin strips SLURM_CONF).
    node = twin.layout().static_nodes()[0].name
    assert twin.hosts.run(node, ["cat", "/etc/slurm/slurm.conf"]).stdout == twin.slurm_conf.read_text()


def test_up_is_idempotent_and_down_stops_only_the_twins_daemons(twin):
    before = twin.status()
    pids = {name: d["pid"] for name, d in before["daemons"].items()}
    again = twin.up()  # already up: reports status, starts nothing
    assert {name: d["pid"] for name, d in again["daemons"].items()} == pids

    # An admin's drain survives a restart of the whole twin, and does not hold the restart up.
    drained = max(n.name for n in twin.layout().static_nodes())
    twin.slurm.update_node(drained, "drain", reason="test: kept across down/up")
    bystander = subprocess.Popen(["sleep", "60"])  # a process the twin did not start
    try:
        stopped = twin.down()
        assert {"slurmctld", "slurmdbd", "mariadbd"} <= set(stopped)
        assert all(not daemons.pid_alive(pid) for name, pid in pids.items() if name != "munged")
        assert bystander.poll() is None
        # Every host ended, the bridge removed: nothing of the twin is left on the machine.
        assert not Path(f"/sys/class/net/{twin.network.bridge}").exists()
        assert not list(twin.run_dir.glob("host-*.pid"))
        assert twin.status()["up"] is False
        assert twin.down() == []  # down twice: nothing left to stop
    finally:
        bystander.kill()
        restarted = twin.up()
    assert restarted["up"] is True
    assert "DRAIN" in twin.slurm.node_states()[drained].upper(), twin.slurm.node_states()[drained]
    twin.slurm.update_node(drained, "resume")
    assert twin.slurm.sacct()  # accounting kept its history across down/up
    wait_all_idle(twin)


def test_job_ids_never_repeat_even_when_the_controllers_state_is_lost(twin):
    # A reused id would make sacct mix a new job with an old one's records.
    first = twin.slurm.sbatch(["--partition=compute"], wrap="true")
    wait_job(twin.slurm, first)
    twin.down()
    state = twin.home / "state"
    shutil.rmtree(state)  # slurmctld starts cold, as after a lost disk
    state.mkdir()
    twin.up()
    second = twin.slurm.sbatch(["--partition=compute"], wrap="true")
    assert int(second) > int(first)
    assert wait_job(twin.slurm, second) == "COMPLETED"
    wait_all_idle(twin)


# -- errors a user can run into ---------------------------------------------------------------


def test_not_root_is_refused_with_a_hint():
    with pytest.raises(SetupError) as error:
        machine.check_prerequisites(euid=1000)
    assert "root" in error.value.message and "sudo" in error.value.hint


def test_missing_packages_name_make_setup(tmp_path):
    with pytest.raises(SetupError) as error:
        machine.check_prerequisites(euid=0, path=str(tmp_path))
    # Slurm, munge and MariaDB come from the node image: the machine needs only these.
    assert "unshare" in error.value.message and "nsenter" in error.value.message
    assert "make setup" in error.value.hint


def test_a_second_twin_gets_its_own_bridge_or_refuses_a_subnet_in_use(twin, tmp_path):
    other = Twin(home=tmp_path / "other")
    assert other.network.bridge != twin.network.bridge and other.network.subnet != twin.network.subnet
    # Something else on the machine already has an address in the second twin's subnet.
    blocker = "hpct-blocker"
    subprocess.run(["ip", "link", "add", blocker, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{other.network.address(5)}/24", "dev", blocker], check=True)
        with pytest.raises(SetupError) as error:
            other.up()
    finally:
        subprocess.run(["ip", "link", "del", blocker], check=False)
        other.down(purge=True)
    assert blocker in error.value.message and other.network.subnet in error.value.message
    assert "HPCTOOL_HOME" in error.value.hint
    assert twin.is_up()  # the running twin was not touched


def test_a_config_without_slurm_queues_names_the_yaml_path(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("Region: us-east-1\nScheduling:\n  Scheduler: slurm\n")
    with pytest.raises(ConfigError) as error:
        Twin(home=tmp_path / "home").up(config=config)
    assert "Scheduling.SlurmQueues" in error.value.message and str(config) in error.value.message
    assert not (tmp_path / "home").exists()  # nothing was started or written

    result = run_cli("local", "up", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "hint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_a_clear_cli_error(tmp_path):
    result = run_cli("local", "up", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2  # a usage error, as for `config validate`
    assert "nope.yaml: no such file" in result.stderr and "Traceback" not in result.stderr


def test_a_daemon_that_fails_to_start_shows_its_log(twin, tmp_path):
    log = tmp_path / "slurmctld.log"
    bad_conf = tmp_path / "slurm.conf"  # in the checkout: the head node sees it
    bad_conf.write_text("ClusterName=broken\nNoSuchSetting=1\n")
    process = daemons.spawn(twin.hosts.exec_argv("head", ["slurmctld", "-D", "-f", str(bad_conf)]), log)
    with pytest.raises(TwinError) as error:
        daemons.wait_until(lambda: False, name="slurmctld", log_file=log, timeout=20,
                           alive=lambda: process.poll() is None)
    assert "slurmctld exited during start-up" in error.value.message
    assert str(log) in error.value.message and str(log) in error.value.hint
    assert "NoSuchSetting" in error.value.message  # the log's own words reach the user


def test_the_machines_own_slurm_config_is_never_touched(twin):
    # The twin's hosts see its slurm.conf as /etc/slurm; the machine's /etc/slurm is not its.
    machine_conf = Path("/etc/slurm/slurm.conf")
    assert not (machine_conf.exists() and machine_conf.resolve() == twin.slurm_conf.resolve())


def test_up_with_another_config_while_up_is_refused(twin, tmp_path):
    other = tmp_path / "two-queues.yaml"
    other.write_text(
        "Scheduling:\n  Scheduler: slurm\n  SlurmQueues:\n"
        "    - Name: a\n      ComputeResources: [{Name: r, InstanceType: c7i.large}]\n"
    )
    assert twin.is_up()  # else up() would rightly start the other config
    with pytest.raises(TwinError) as error:
        twin.up(config=other)
    assert "already up" in error.value.message and "hpctool local down" in error.value.hint


def test_a_twin_from_another_config_has_its_partitions(tmp_path, twin, monkeypatch):
    # The layout (nodes, ports, partitions) follows any config's SlurmQueues, not only the default.
    config = tmp_path / "custom.yaml"
    config.write_text(
        "Scheduling:\n  Scheduler: slurm\n  SlurmQueues:\n"
        "    - Name: short\n      CapacityType: SPOT\n      ComputeResources:\n"
        "        - {Name: a, InstanceType: c7i.large}\n        - {Name: b, InstanceType: m7i.large}\n"
        "    - Name: long\n      ComputeResources: [{Name: big, InstanceType: r7i.2xlarge}]\n"
    )
    layout = plan_layout(load_queues(config), str(config), static_per_queue=3, max_dynamic=1, base=30000)
    assert [n.name for n in layout.nodes] == [
        "short-st-a-1", "short-st-a-2", "short-st-b-1", "short-dy-a-1", "short-dy-b-1",
        "long-st-big-1", "long-st-big-2", "long-st-big-3", "long-dy-big-1",
    ]
    assert [q["spot"] for q in layout.queues] == [True, False]
    assert len(set(layout.ports.values())) == len(layout.ports)
    assert layout.memory_mb_per_node * len(layout.nodes) < 0.7 * _real_memory_mb()


def _real_memory_mb() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def test_down_cancels_running_jobs_first(twin, tmp_path):
    job_id = twin.slurm.sbatch(["--partition=compute"], wrap="sleep 317")
    wait_for(lambda: twin.slurm.job(job_id)["JobState"] == "RUNNING", what="job running")
    wait_for(lambda: _running("sleep 317"), what="the job's process")
    twin.down()
    try:
        assert not _running("sleep 317")
    finally:
        twin.up()
    (record,) = twin.slurm.sacct([job_id])
    assert record.state == "CANCELLED"
    wait_all_idle(twin)


def _running(command: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip() == command:
                    return True
            except OSError:
                continue
    return False


def test_a_database_error_never_shows_the_password(twin):
    password = (twin.etc / "db-password").read_text().strip()
    with pytest.raises(TwinError) as error:
        twin.accounting._execute(f"CREATE USER 'x'@'127.0.0.1' IDENTIFIED BY '{password}' NONSENSE", secret=password)
    assert "refused the accounting setup" in error.value.message
    assert password not in str(error.value) and "***" in error.value.message


# -- healing ------------------------------------------------------------------------------------


def test_up_heals_exactly_the_dead_daemons_and_running_jobs_go_on(twin, tmp_path):
    import os
    import signal

    out = tmp_path / "survivor.out"
    job = twin.slurm.sbatch(["--partition=compute", f"--output={out}"],
                            wrap='echo "start $SLURMD_NODENAME"; sleep 25; echo end')
    wait_for(lambda: out.exists() and out.read_text().startswith("start"), what="the job running")
    job_node = out.read_text().split()[1]
    time.sleep(6)  # slurmctld saves its state every few seconds; a crash loses only what is newer
    victim = next(n.name for n in twin.layout().static_nodes() if n.queue == "storage")
    before = {name: d["pid"] for name, d in twin.status()["daemons"].items()}
    for name in ("slurmctld", "slurmdbd", f"slurmd {victim}"):  # a control-plane crash and a lost node
        os.kill(before[name], signal.SIGKILL)
    wait_for(lambda: not any(daemons.pid_alive(before[n]) for n in ("slurmctld", "slurmdbd")), what="the kills")

    status = run_cli("local", "status")
    assert status.returncode == 1
    for name in ("slurmctld", "slurmdbd", f"slurmd {victim}"):
        assert f"not running: {name}" in status.stdout
    assert "hpctool local up" in status.stdout

    healed = twin.up()
    assert sorted(healed["started"]) == sorted(["slurmctld", "slurmdbd", f"slurmd {victim}"])
    assert healed["up"] is True and healed["dead"] == []
    after = {name: d["pid"] for name, d in healed["daemons"].items()}
    untouched = [n for n in before if n not in {"slurmctld", "slurmdbd", f"slurmd {victim}"}]
    assert {n: after[n] for n in untouched} == {n: before[n] for n in untouched}  # nothing healthy restarted
    # The job under the healthy slurmd ran on to its end, and accounting has it.
    assert wait_job(twin.slurm, job, timeout=90) == "COMPLETED"
    assert out.read_text().split() == ["start", job_node, "end"]
    again = twin.up()
    assert again["started"] == []  # healthy: up starts nothing
    wait_all_idle(twin)
