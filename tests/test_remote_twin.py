"""`hpctool remote HOST ...` from a "laptop" (this test, with its own manifest and ssh config) to a
"head node" (a real sshd on 127.0.0.1 whose sessions see the twin's Slurm), directly and through a
bastion: status, submit, jobs, logs (and --follow), cancel, fetch, a germline run that outlives its
connection, JupyterLab as a Slurm job behind a forwarded port, and nodes exec on the twin's nodes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hpctool.errors import RemoteError
from hpctool.remote.connection import Remote, SshSettings
from hpctool.remote.manifest import Manifest, Submission
from hpctool.remote.session import RemoteSession
from hpctool.slurm.parse import node_powered_down
from support import REPO
from support.sshd_lab import SshLab
from support.twin import reset_twin, wait_for, wait_job

pytestmark = pytest.mark.twin
REMOTE_HPCTOOL = str(REPO / ".venv" / "bin" / "hpctool")


@pytest.fixture(scope="module")
def lab(twin, tmp_path_factory):
    lab = SshLab(tmp_path_factory.mktemp("sshlab"))
    # The twin's Slurm clients (the node image's 24.11) on the lab head's PATH, as /opt/slurm/bin is
    # on a ParallelCluster head node.
    head_env = {"SLURM_CONF": str(twin.slurm_conf), "PATH": f"{twin.client_bin}:/usr/local/bin:/usr/bin:/bin"}
    for name in ("HPCTOOL_HOME", "HPCTOOL_TWIN_PORT_BASE"):
        if os.environ.get(name):
            head_env[name] = os.environ[name]
    head = lab.start("head", set_env=head_env)
    bastion = lab.start("bastion")
    for server in (head, bastion):
        lab.trust(server)
    lab.alias("head", head)
    lab.alias("bastion", bastion)
    lab.alias("head-via-bastion", head, proxy_jump="bastion")
    yield lab
    lab.stop()


@pytest.fixture
def laptop(lab, tmp_path):
    """The laptop's side: its data dir (manifest), run root on the head node, CLI environment."""
    env = {k: v for k, v in os.environ.items() if k not in {"SSH_AUTH_SOCK", "SLURM_CONF"}}
    env.update(HPCTOOL_SSH_CONFIG=str(lab.client_config), HPCTOOL_KNOWN_HOSTS=str(lab.known_hosts),
               HPCTOOL_HOME=str(tmp_path / "laptop"), HPCTOOL_REMOTE_ROOT=str(tmp_path / "cluster-runs"),
               HPCTOOL_REMOTE_HPCTOOL=REMOTE_HPCTOOL)
    return env


def cli(laptop: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "hpctool.cli", "remote", *args], capture_output=True, text=True,
                            env=laptop, timeout=timeout, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def session(lab: SshLab, laptop: dict, host: str = "head") -> RemoteSession:
    remote = Remote(host, SshSettings(config=lab.client_config, known_hosts=lab.known_hosts))
    return RemoteSession(remote, Manifest(Path(laptop["HPCTOOL_HOME"]) / "remote-runs.json"),
                         root=laptop["HPCTOOL_REMOTE_ROOT"], hpctool=REMOTE_HPCTOOL)


def test_status_shows_the_twins_queues_and_my_jobs(lab, laptop, twin):
    job = twin.slurm.sbatch(["--partition=compute", "--job-name=mine"], wrap="sleep 20")
    try:
        result = cli(laptop, "head", "status", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert {q["name"] for q in twin.layout().queues} == set(data["queues"])
        assert len(data["nodes"]) == len(twin.layout().nodes)
        assert job in {j["id"] for j in data["jobs"]}
        table = cli(laptop, "head", "status")
        assert "compute" in table.stdout and "mine" in table.stdout
    finally:
        twin.slurm.cancel([job])


def test_submit_jobs_logs_fetch_through_the_bastion(lab, laptop, tmp_path, twin):
    script = tmp_path / "count.sh"
    script.write_text("#!/bin/bash\n#SBATCH --ntasks=1\nmkdir -p out\n"
                      "wc -l < inputs/reads.txt > out/lines-$SLURM_ARRAY_TASK_ID.txt\n"
                      "echo task $SLURM_ARRAY_TASK_ID on $SLURMD_NODENAME in $SLURM_JOB_PARTITION\n")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "reads.txt").write_text("a\nb\nc\n")
    result = cli(laptop, "head-via-bastion", "submit", str(script), str(inputs), "--queue", "spot",
                 "--cpus", "1", "--mem", "100M", "--array", "0-2", "--json")
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)
    run_id, job_id = submitted["run"], submitted["job_ids"][0]
    manifest = json.loads((Path(laptop["HPCTOOL_HOME"]) / "remote-runs.json").read_text())
    assert manifest["runs"][run_id]["folder"] == submitted["folder"]
    assert oct((Path(laptop["HPCTOOL_HOME"]) / "remote-runs.json").stat().st_mode & 0o777) == "0o600"
    assert wait_job(twin.slurm, job_id) == "COMPLETED"
    table = cli(laptop, "head", "jobs", "--json")
    row = next(r for r in json.loads(table.stdout) if r["run"] == run_id)
    assert row["states"] == ["COMPLETED"] and {j["partition"] for j in row["jobs"]} == {"spot"}
    logs = cli(laptop, "head", "logs", run_id)
    assert logs.returncode == 0 and all(f"task {i} on spot-" in logs.stdout for i in range(3)), logs.stdout
    dest = tmp_path / "results"
    fetched = cli(laptop, "head-via-bastion", "fetch", run_id, str(dest), "--json")
    assert fetched.returncode == 0, fetched.stderr
    assert [(dest / "out" / f"lines-{i}.txt").read_text().strip() for i in range(3)] == ["3", "3", "3"]
    assert (dest / "count.sh").read_text() == script.read_text()
    again = json.loads(cli(laptop, "head", "fetch", run_id, str(dest), "--json").stdout)
    assert again["files_transferred"] == 0  # only changed files travel


def test_logs_follow_until_the_job_ends_and_cancel(lab, laptop, tmp_path, twin):
    script = tmp_path / "ticks.sh"
    script.write_text("#!/bin/bash\nfor i in 1 2 3 4; do echo tick $i; sleep 1; done\n")
    with session(lab, laptop) as s:
        run = s.submit(Submission(script, queue="compute"))
        seen: list[str] = []
        state = s.follow(run.id, seen.append, interval=0.5, timeout=60)
        assert state == "COMPLETED"
        assert [line for line in "".join(seen).splitlines() if line.startswith("tick")] == [f"tick {i}" for i in range(1, 5)]
        script.write_text("#!/bin/bash\nsleep 300\n")
        long = s.submit(Submission(script, queue="compute", name="long"))
        wait_for(lambda: twin.slurm.job(long.job_ids[0]).get("JobState") == "RUNNING", 30, what="running")
    cancelled = cli(laptop, "head", "cancel", long.id)
    assert cancelled.returncode == 0 and long.job_ids[0] in cancelled.stdout
    assert wait_job(twin.slurm, long.job_ids[0]) == "CANCELLED"


def test_follow_dropped_midway_is_a_clear_error(lab, laptop, tmp_path, twin):
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/bash\nfor i in $(seq 30); do echo line $i; sleep 1; done\n")
    with session(lab, laptop) as s:
        run = s.submit(Submission(script, queue="compute"))
        seen: list[str] = []

        def on_text(text: str) -> None:
            seen.append(text)
            lab.servers["head"].drop_connections()

        with pytest.raises(RemoteError) as caught:
            s.follow(run.id, on_text, interval=0.5, timeout=60)
        assert "dropped" in caught.value.message or "failed" in caught.value.message
        assert caught.value.hint
    twin.slurm.cancel(run.job_ids)


def test_germline_run_outlives_the_laptops_connection(lab, laptop, tmp_path, twin, repo):
    data = tmp_path / "test-data"
    subprocess.run([sys.executable, str(repo / "scripts" / "make_test_data.py"), str(data), "--seed", "7"],
                   check=True, capture_output=True)
    config = tmp_path / "my.yaml"
    shutil.copy(repo / "snakemake" / "workflows" / "germline" / "config" / "test.yaml", config)
    started = cli(laptop, "head", "run", "germline", "--configfile", str(config), "--input", str(data),
                  "--profile", "twin", "--json")
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert (Path(run["folder"]) / "my.yaml").read_text() == config.read_text()
    assert (Path(run["folder"]) / "test-data" / "samples.tsv").read_text() == (data / "samples.tsv").read_text()
    try:
        # The laptop goes away: every connection to the head node is cut.
        lab.servers["head"].drop_connections()
        time.sleep(1)
        os.kill(run["pid"], 0)  # still running on the "head node"
        with session(lab, laptop) as s:
            state = s.manifest.get(run["run"])

            def rule_jobs():
                progress = s.germline_progress(state)
                return progress if progress["running"] and any(j["queue"] for j in progress["rule_jobs"]) else None

            progress = wait_for(rule_jobs, 90, interval=1, what="Slurm jobs of the germline rules")
        assert all(j["rule"] and j["job_id"].isdigit() for j in progress["rule_jobs"])
        assert {"compute", "spot", "storage"} & {j["queue"] for j in progress["rule_jobs"]}
        text = cli(laptop, "head", "jobs", run["run"]).stdout
        assert "steps" in text and "RULE" in text and progress["rule_jobs"][0]["job_id"] in text
    finally:
        cancelled = cli(laptop, "head", "cancel", run["run"])
    assert cancelled.returncode == 0, cancelled.stderr
    stat = Path(f"/proc/{run['pid']}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # ended (maybe unreaped)
    for job in progress["rule_jobs"]:
        assert wait_job(twin.slurm, job["job_id"]) in {"CANCELLED", "COMPLETED", "FAILED"}


def test_notebook_as_a_slurm_job_behind_a_forwarded_port(lab, laptop, twin):
    process = subprocess.Popen([sys.executable, "-m", "hpctool.cli", "remote", "head", "notebook", "--queue", "compute",
                                "--mem", "500M"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=laptop)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        output = "".join(lines)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/lab", output)
        if not url:
            process.kill()
            pytest.fail(f"no URL; stdout: {output}\nstderr: {process.communicate()[1]}")
        secret_file = Path(re.search(r"is in (\S+)", output).group(1))
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
        full = secret_file.read_text().strip()
        token = full.split("token=")[1]
        assert token not in output
        with urllib.request.urlopen(f"{url.group(1)}/api/status?token={token}", timeout=10) as response:
            assert response.status == 200 and "started" in json.loads(response.read())
        with pytest.raises(urllib.error.HTTPError) as refused:  # authentication stays on
            urllib.request.urlopen(f"{url.group(1)}/api/contents", timeout=10)
        assert refused.value.code == 403
        job_id = re.search(r"job (\d+)", output).group(1)
        assert twin.slurm.job(job_id)["JobState"] == "RUNNING"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert token not in out + err
    assert wait_job(twin.slurm, job_id) == "CANCELLED"  # stopping the forward ends the job


def test_nodes_exec_runs_on_every_running_node_of_the_queue(lab, laptop, twin):
    # A dynamic node an earlier test powered up would power down during the exec (its srun then
    # waits out --immediate): start from static nodes up, dynamic ones powered down.
    reset_twin(twin)
    # Powered-down dynamic nodes have no instance to run on: nodes exec skips them.
    queue_nodes = sorted(n.name for n in twin.layout().nodes if n.queue == "compute"
                         and not node_powered_down(twin.node_state(n.name)))
    result = cli(laptop, "head", "nodes", "exec", "--queue", "compute", "--json", "--",
                 "echo on $SLURMD_NODENAME; test $SLURMD_NODENAME != " + queue_nodes[-1])
    rows = json.loads(result.stdout)
    assert sorted(r["node"] for r in rows) == queue_nodes
    for row in rows:
        assert row["output"].splitlines()[0] == f"on {row['node']}"
        assert row["exit_code"] == (1 if row["node"] == queue_nodes[-1] else 0)
    assert result.returncode == 1  # one node failed: the command fails
    text = cli(laptop, "head", "nodes", "exec", "--queue", "compute", "--", "true")
    assert text.returncode == 0 and sorted(line.split("\t")[0] for line in text.stdout.splitlines()) == queue_nodes
    assert all("\texit 0" in line for line in text.stdout.splitlines())
