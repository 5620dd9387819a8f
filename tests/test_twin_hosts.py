"""Every node of the twin is a host of its own, built from the node image: what a job sees on a
node is what it sees on a ParallelCluster instance (hostname, private /tmp, /scratch only with
instance store, shared storage at its MountDir, IMDS only on spot nodes, Slurm 24.11)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hpctool.errors import SetupError
from hpctool.twin import Twin, image, machine
from hpctool.twin.hosts import Hosts, HostSpec, Network, plan_network
from support.twin import wait_for, wait_job

IMDS_PROBE = ("python3 -c \"import urllib.request as u; r=u.Request('http://169.254.169.254/latest/api/token', "
              "method='PUT', headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'}); "
              "print('token', len(u.urlopen(r, timeout=2).read()))\" 2>&1 | tail -1")


def run_job(twin: Twin, tmp_path: Path, options: list[str], command: str) -> str:
    out = tmp_path / f"job-{len(list(tmp_path.glob('job-*')))}.out"
    job = twin.slurm.sbatch([*options, f"--output={out}"], wrap=command)
    assert wait_job(twin.slurm, job, timeout=120) == "COMPLETED", out.read_text() if out.exists() else job
    return out.read_text()


def static(twin: Twin, queue: str) -> list[str]:
    return [n.name for n in twin.layout().static_nodes() if n.queue == queue]


@pytest.mark.twin
def test_each_node_has_its_own_hostname_address_and_slurm_24_11(twin, tmp_path):
    first, second = static(twin, "compute")[:2]
    seen = {}
    for node in (first, second):
        text = run_job(twin, tmp_path, ["--partition=compute", f"--nodelist={node}"],
                       "hostname; echo $SLURMD_NODENAME; cat /etc/debian_version; "
                       "ip -4 -o addr show eth0 | awk '{print $4}'; slurmd -V")
        hostname, nodename, debian, address, version = text.splitlines()[:5]
        seen[node] = address
        assert hostname == nodename == node
        assert debian.startswith("13.")
        assert version.split()[-1].startswith("24.11"), text
    assert seen[first] != seen[second]
    assert seen[first].split("/")[0] == twin.network.address(twin.layout().node(first).index)


@pytest.mark.twin
def test_tmp_is_private_to_a_node_and_shared_storage_is_shared(twin, tmp_path):
    first, second = static(twin, "compute")[:2]
    mount_dir = twin.layout().shared_storage[0][1]  # the default config's EFS at /efs
    run_job(twin, tmp_path, ["--partition=compute", f"--nodelist={first}"],
            f"echo on-{first} > /tmp/left-behind; echo shared > {mount_dir}/from-{first}")
    text = run_job(twin, tmp_path, ["--partition=compute", f"--nodelist={second}"],
                   f"ls /tmp/left-behind 2>&1; cat {mount_dir}/from-{first}; ls -d /scratch 2>&1; true")
    assert "No such file" in text.splitlines()[0]  # a rule that leaves files in /tmp fails, as on a cluster
    assert text.splitlines()[1] == "shared"
    assert "No such file" in text.splitlines()[2]  # c7i has no instance store: no /scratch
    # The job's own output went to the test folder: the checkout is shared like /home.
    assert (twin.home / "storage").is_dir()


@pytest.mark.twin
def test_scratch_exists_only_with_instance_store_and_dies_with_a_dynamic_node(twin, tmp_path):
    dynamic = next(n.name for n in twin.layout().dynamic_nodes() if n.queue == "storage")
    text = run_job(twin, tmp_path, ["--partition=storage", f"--nodelist={dynamic}"],
                   "echo kept > /scratch/result; cat /scratch/result; hostname")
    assert text.split() == ["kept", dynamic]
    twin.slurm.update_node(dynamic, "power_down_force")
    wait_for(lambda: twin.node_state(dynamic) == "idle~", timeout=60, what=f"{dynamic} powered down")
    assert not twin.hosts.alive(dynamic)  # the instance is gone, and its disks with it
    assert not (twin.home / "hosts" / dynamic).exists()
    text = run_job(twin, tmp_path, ["--partition=storage", f"--nodelist={dynamic}"],
                   "ls /scratch; echo end")
    assert text.split() == ["end"]  # a new instance: empty instance store


@pytest.mark.twin
def test_imds_answers_at_its_ec2_address_on_spot_nodes_only(twin, tmp_path):
    spot_node = static(twin, "spot")[0]
    compute_node = static(twin, "compute")[0]
    on_spot = run_job(twin, tmp_path, ["--partition=spot", f"--nodelist={spot_node}"], IMDS_PROBE)
    on_compute = run_job(twin, tmp_path, ["--partition=compute", f"--nodelist={compute_node}"], IMDS_PROBE)
    assert on_spot.strip().startswith("token ")
    assert "Network is unreachable" in on_compute or "No route" in on_compute, on_compute


@pytest.mark.twin
def test_hosts_reach_only_the_twins_subnet(twin):
    node = static(twin, "compute")[0]
    routes = twin.hosts.run(node, ["ip", "-4", "route"]).stdout
    assert "default" not in routes and twin.network.subnet in routes
    assert twin.hosts.run(node, ["getent", "hosts", "head"]).stdout.split()[0] == twin.network.address(0)


def test_image_command_says_what_the_image_holds():
    result = subprocess.run([sys.executable, "-m", "hpctool.cli", "local", "image", "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
    info = json.loads(result.stdout)
    assert result.returncode == 0 and info["present"] and info["current"]
    assert info["slurm"].startswith(image.SLURM_LINE) and info["suite"] == "trixie"
    assert info["size_mb"] > 100 and set(image.PACKAGES) == set(info["packages"])


def test_a_missing_or_outdated_image_names_the_command_that_builds_it(tmp_path):
    missing = image.NodeImage(tmp_path / "none")
    with pytest.raises(SetupError) as error:
        Twin(home=tmp_path / "home", image=missing).up()
    assert "not built" in error.value.message and "hpctool local image build" in error.value.hint
    old = image.NodeImage(tmp_path / "old")
    old.root.mkdir(parents=True)
    old.stamp.write_text(json.dumps({"digest": "another list", "slurm": "24.11.1"}))
    with pytest.raises(SetupError) as error:
        old.require()
    assert "outdated" in error.value.message and "hpctool local image build" in error.value.hint
    result = subprocess.run([sys.executable, "-m", "hpctool.cli", "local", "image"], capture_output=True, text=True,
                            timeout=60, check=False, env={**__import__("os").environ, "HPCTOOL_IMAGE_DIR": str(tmp_path / "x")})
    assert result.returncode == 1 and "hpctool local image build" in result.stdout and "Traceback" not in result.stderr


# -- pure parts ------------------------------------------------------------------------------


def test_the_image_comes_from_the_machines_own_debian_archive(tmp_path):
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                       "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
                       "Suites: bookworm-security\nComponents: main\n")
    other = tmp_path / "vendor.sources"
    other.write_text("Types: deb\nURIs: https://vendor.example/apt\nSuites: stable\n")
    assert image.debian_mirror([other, sources]) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("# comment\ndeb [arch=amd64] http://old.example/debian bookworm main\n")
    assert image.debian_mirror([legacy]) == "http://old.example/debian"
    assert image.debian_mirror([tmp_path / "missing"]) is None


def test_a_changed_package_list_changes_the_digest():
    assert image.packages_digest() != image.packages_digest(image.PACKAGES + ("emacs",))
    assert image.packages_digest() == image.packages_digest(tuple(reversed(image.PACKAGES)))


def test_the_machines_people_reach_the_hosts_and_system_accounts_do_not():
    passwd = ("root:x:0:0:root:/root:/bin/bash\nmunge:x:101:102::/nonexistent:/usr/sbin/nologin\n"
              "ana:x:1001:1001:Ana:/home/ana:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    group = "root:x:0:\nusers:x:100:ana\nana:x:1001:\nlab:x:1500:ana,root\n"
    users, groups = machine.people(passwd, group)
    assert users == "ana:x:1001:1001:Ana:/home/ana:/bin/bash\n"
    assert groups == "ana:x:1001:\nlab:x:1500:ana\n"


def test_shared_folders_are_minimal_and_never_system_folders():
    outside = Path(tempfile.mkdtemp(dir="/var/tmp"))  # not under a home or the checkout
    try:
        (outside / "a" / "b").mkdir(parents=True)
        shared = machine.shared_folders(outside / "a" / "b", extra=f"{outside / 'a'}:/usr:/")
        assert outside / "a" in shared and outside / "a" / "b" not in shared  # covered by its parent
        assert Path("/usr") not in shared and Path("/") not in shared
        assert Path.home() in shared
    finally:
        shutil.rmtree(outside)


def test_two_homes_plan_two_networks_and_addresses_are_per_host(tmp_path):
    one, two = plan_network(tmp_path / "one"), plan_network(tmp_path / "two")
    assert one.bridge != two.bridge and len(one.bridge) <= 15
    network = Network(bridge="hpct-x", subnet="10.210.3.0/24")
    assert network.gateway == "10.210.3.1" and network.address(0) == "10.210.3.10"
    with pytest.raises(SetupError):
        network.address(300)


def test_a_hosts_root_is_its_own_layer_over_the_image_and_storage_comes_before_shared_folders(tmp_path):
    hosts = Hosts(Path("/image"), tmp_path / "run", Network(bridge="hpct-x", subnet="10.210.3.0/24"), tmp_path / "hosts")
    spec = HostSpec(name="n1", address="10.210.3.11", index=1, private={"/scratch": tmp_path / "n1-scratch"},
                    shared=(Path("/scratch/project"), Path("/root")), imds=True)
    lines = hosts._setup_script(spec).splitlines()
    root = tmp_path / "hosts" / "n1" / "root"
    assert "hostname n1" in lines and "ip addr add 169.254.169.254/32 dev lo" in lines
    overlay = next(i for i, line in enumerate(lines) if line.startswith("mount -t overlay"))
    assert "lowerdir=/image," in lines[overlay] and lines[overlay].endswith(str(root))
    private = lines.index(f"mount --bind {tmp_path / 'n1-scratch'} {root}/scratch")
    shared = lines.index(f"mount --bind /scratch/project {root}/scratch/project")
    assert overlay < private < shared  # a shared folder below node-local storage shows through
    assert not any("default" in line for line in lines)  # no route out of the twin's subnet
