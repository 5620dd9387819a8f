"""Many users on the twin: a config with a DirectoryService gets slapd on the head node and SSSD on
every host; `hpctool local users` adds directory users, who run jobs as themselves on any node
with one uid, keep their homes to themselves, and count in Slurm's fair share by group."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.twin.head import HEAD
from support.twin import SUITE_TWIN_OPTIONS, bring_up, reset_twin, wait_for, wait_job

pytestmark = pytest.mark.twin
HPCTOOL = str(Path(sys.executable).with_name("hpctool"))
PROD_GOLDEN = Path(__file__).parent / "golden" / "configs" / "prod.yaml"
USERS = {"alice": "genomics", "bob": "imaging"}


def cli(twin, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HPCTOOL, "local", "users", *argv], env=twin.env(), capture_output=True, text=True,
                          timeout=120, check=False)


def on_host(twin, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(twin.hosts.exec_argv(host, list(argv)), capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_twin_without_a_directory_says_how_to_get_one(twin):
    result = cli(twin, "list")
    assert result.returncode == 2, result.stderr
    assert "no DirectoryService" in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def directory_twin(twin, tmp_path_factory):
    """The suite's twin from the shipped config plus prod's DirectoryService (without its access
    filter: every directory user may log in), with two users in two groups."""
    config = yaml.safe_load(Path(DEFAULT_CLUSTER_CONFIG).read_text())
    section = dict(yaml.safe_load(PROD_GOLDEN.read_text())["DirectoryService"])
    section.pop("LdapAccessFilter")
    config["DirectoryService"] = section
    path = tmp_path_factory.mktemp("directory") / "cluster-with-directory.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    homes = []
    try:
        bring_up(twin, path, **SUITE_TWIN_OPTIONS)
        for name, group in USERS.items():
            result = cli(twin, "add", name, "--group", group, "--json")
            assert result.returncode == 0, result.stderr
            homes.append(Path(json.loads(result.stdout)["home"]))
        yield twin
    finally:
        for name in USERS:
            cli(twin, "remove", name)
        for home in homes:  # the directory keeps homes (as AD does); the suite's are its own
            if home.is_dir() and home.stat().st_uid >= 20000:
                shutil.rmtree(home)
        bring_up(twin, DEFAULT_CLUSTER_CONFIG, **SUITE_TWIN_OPTIONS)
        reset_twin(twin)


def _identity(twin, host: str, name: str) -> str:
    result = on_host(twin, host, "id", name)
    assert result.returncode == 0, f"{name} on {host}: {result.stderr}"
    return result.stdout.strip()


def test_each_user_has_one_uid_and_group_on_every_node(directory_twin):
    twin = directory_twin
    nodes = [n.name for n in twin.layout().static_nodes()][:3]
    for name, group in USERS.items():
        seen = {host: _identity(twin, host, name) for host in [HEAD, *nodes]}
        assert len(set(seen.values())) == 1, seen
        assert f"({group})" in seen[HEAD] and "uid=2" in seen[HEAD], seen[HEAD]
    listing = json.loads(cli(twin, "list", "--json").stdout)
    assert {u["name"]: u["accounts"] for u in listing} == {n: [g] for n, g in USERS.items()}
    assert len({u["uid"] for u in listing}) == 2


def test_two_users_run_jobs_as_themselves_on_two_nodes(directory_twin):
    twin = directory_twin
    compute = [n.name for n in twin.layout().static_nodes() if n.queue == "compute"][:2]
    jobs = {}
    for (name, _), node in zip(USERS.items(), compute, strict=True):
        script = "id -un; id -u; hostname; touch /home/$USER/from-job"
        result = on_host(twin, HEAD, "runuser", "-u", name, "--", "sbatch", "--parsable", "-p", "compute",
                         "-w", node, f"--chdir=/home/{name}", f"--output=/home/{name}/job.out", "--wrap", script)
        assert result.returncode == 0, result.stderr
        jobs[name] = (result.stdout.strip().split(";")[0], node)
    for name, (job, node) in jobs.items():
        assert wait_job(twin.slurm, job) == "COMPLETED"
        user, uid, host = (Path(f"/home/{name}/job.out").read_text().split())
        head_uid = on_host(twin, HEAD, "id", "-u", name).stdout.strip()
        assert (user, uid, host) == (name, head_uid, node)
        made = Path(f"/home/{name}/from-job").stat()
        assert str(made.st_uid) == head_uid  # the job wrote as the user, on shared /home
    records = {r["User"]: r for r in _sacct(twin, [job for job, _ in jobs.values()])}
    assert {name: records[name]["Account"] for name in USERS} == USERS


def _sacct(twin, job_ids: list[str]) -> list[dict[str, str]]:
    text = twin.slurm.sacct_text(["JobID", "User", "Account", "State"], job_ids=job_ids)
    return [dict(zip(["JobID", "User", "Account", "State"], line.split("|"), strict=True))
            for line in text.splitlines() if line]


def test_homes_are_private_to_their_users(directory_twin):
    twin = directory_twin
    node = next(n.name for n in twin.layout().static_nodes() if n.queue == "compute")
    assert oct(Path("/home/alice").stat().st_mode & 0o777) == "0o700"
    for host in (HEAD, node):
        peek = on_host(twin, host, "runuser", "-u", "bob", "--", "ls", "/home/alice")
        assert peek.returncode != 0 and "Permission denied" in peek.stderr, (host, peek)
        own = on_host(twin, host, "runuser", "-u", "alice", "--", "ls", "/home/alice/.ssh")
        assert own.returncode == 0 and "id_ed25519" in own.stdout, (host, own)


def test_a_directory_user_logs_in_over_ssh_and_on_a_node(directory_twin):
    twin = directory_twin
    node = next(n.name for n in twin.layout().static_nodes() if n.queue == "compute")
    for where in ([], [node]):
        result = subprocess.run([HPCTOOL, "local", "ssh", "--user", "alice", *where, "--", "id", "-un;", "hostname;",
                                 "pwd"], env=twin.env(), capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["alice", where[0] if where else HEAD, "/home/alice"], result.stdout
    unknown = subprocess.run([HPCTOOL, "local", "ssh", "--user", "mallory-nobody", "--", "true"], env=twin.env(),
                             capture_output=True, text=True, timeout=60, check=False)
    assert unknown.returncode == 2 and "no user 'mallory-nobody'" in unknown.stderr


def _hub_login(browser, url: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/hub/login")
    browser.find_element(By.ID, "username_input").send_keys(user)
    browser.find_element(By.ID, "password_input").send_keys(password)
    browser.find_element(By.ID, "login_submit").click()


def _wait_css(browser, selector: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, selector)))


def test_directory_users_log_in_to_the_hub_on_the_head_node_by_their_allow_group(directory_twin, tmp_path):
    """The hub runs on the head node, where PAM reaches the directory through SSSD: alice (in the
    allow group, a directory group as on a cluster with AD) gets JupyterLab as a Slurm job of her own; bob (PAM accepts his password) and then
    alice, once she has left the group, are refused."""
    from selenium.webdriver.common.by import By

    from hpctool.notebook.hub import TwinHub
    from support.browser import headless_chromium

    twin = directory_twin
    group = "hpc-users"  # prod's access filter's group
    passwords = {name: Path(twin.home / "directory" / "passwords" / name).read_text().strip() for name in USERS}
    joined = cli(twin, "join", "alice", group)
    assert joined.returncode == 0 and "joined" in joined.stdout, joined.stderr
    assert json.loads(cli(twin, "list", "--json").stdout)[0]["groups"] == [group]
    hub = TwinHub(twin)
    hub.down()
    (hub.dir / "jupyterhub.sqlite").unlink(missing_ok=True)
    try:
        status = hub.up(allowed_groups=(group,))
        assert group in status["login"] and "directory user" in status["login"]
        assert status["running"] and status["url"].startswith("http://127.0.0.1:")  # through the SSH forward
        hub_pid = status["pid"]
        assert Path(f"/proc/{hub_pid}/root").resolve() == twin.hosts.host_root(HEAD).resolve()  # on the head node
        with headless_chromium(["--window-size=1280,860"], page_load_timeout=60) as browser:
            _hub_login(browser, hub.url, "alice", passwords["alice"])
            _wait_css(browser, "#spawn_form")
            browser.find_element(By.CSS_SELECTOR, "input[name=queue][value=compute]").click()
            cpus = browser.find_element(By.ID, "hpctool-cpus")
            cpus.clear()
            cpus.send_keys("1")
            browser.find_element(By.CSS_SELECTOR, "#spawn_form button[type=submit]").click()
            _wait_css(browser, "#jp-main-dock-panel", timeout=120)
            assert "/user/alice/lab" in browser.current_url
            browser.save_screenshot(str(tmp_path / "directory-user-jupyterlab.png"))
        jobs = [j for j in twin.slurm.jobs() if j.get("JobName") == "jupyterlab" and j.get("JobState") == "RUNNING"]
        assert len(jobs) == 1, jobs
        job = jobs[0]
        alice_uid = on_host(twin, HEAD, "id", "-u", "alice").stdout.strip()
        # This machine's scontrol cannot name a directory user; the uid is alice's.
        assert job["UserId"].endswith(f"({alice_uid})") and alice_uid != "0", job["UserId"]
        assert _sacct(twin, [job["JobId"]])[0]["User"] == "alice"  # slurmdbd has the name
        node = job["NodeList"]
        assert node in {n.name for n in twin.layout().nodes if n.queue == "compute"}
        server = on_host(twin, node, "pgrep", "-u", "alice", "-f", "jupyterhub-singleuser")
        assert server.returncode == 0, f"no JupyterLab of alice's on {node}"

        leave = cli(twin, "leave", "alice", group)
        assert leave.returncode == 0, leave.stderr
        for name in ("bob", "alice"):
            with headless_chromium(["--window-size=1280,860"], page_load_timeout=60) as browser:
                _hub_login(browser, hub.url, name, passwords[name])
                error = _wait_css(browser, ".login_error")
                assert "Invalid username or password" in error.text, name
                browser.save_screenshot(str(tmp_path / f"refused-{name}.png"))
        log = hub.log_file.read_text()
        for name in ("bob", "alice"):  # PAM took the password; the allow rule refused
            assert f"User '{name}' not allowed." in log, name
        wrong = cli(twin, "leave", "bob", group)
        assert wrong.returncode == 2 and "not a member" in wrong.stderr and "hint: " in wrong.stderr
        primary = cli(twin, "leave", "alice", "genomics")
        assert primary.returncode == 2 and "primary group" in primary.stderr
    finally:
        hub.down()
        cli(twin, "leave", "alice", group)


def test_fair_share_is_counted_per_group_account(directory_twin):
    shares = {s.user: s for s in directory_twin.slurm.fair_share()}
    assert shares["alice"].account == "genomics" and shares["bob"].account == "imaging"
    config = directory_twin.slurm.config()
    assert config["PriorityType"] == "priority/multifactor" and config["PriorityWeightFairShare"] == "10000"


def test_bad_user_names_and_unknown_users_are_clear_errors(directory_twin):
    for argv, words in ((("add", "alice", "--group", "genomics"), "already exists"),
                        (("add", "Bad Name"), "not a valid name"), (("add", "slurm"), "reserved"),
                        (("remove", "nobody-here"), "not a user")):
        result = cli(directory_twin, *argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert words in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr


def test_a_removed_user_resolves_nowhere_and_can_no_longer_submit(directory_twin):
    twin = directory_twin
    result = cli(twin, "add", "carol", "--group", "genomics", "--json")
    assert result.returncode == 0, result.stderr
    home = Path(json.loads(result.stdout)["home"])
    try:
        node = next(n.name for n in twin.layout().static_nodes() if n.queue == "compute")
        assert _identity(twin, node, "carol")
        removed = cli(twin, "remove", "carol", "--json")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["account"] == "genomics"
        for host in (HEAD, node):
            assert on_host(twin, host, "id", "carol").returncode != 0
        submit = on_host(twin, HEAD, "runuser", "-u", "carol", "--", "sbatch", "--wrap", "true")
        assert submit.returncode != 0 and "carol" in submit.stderr
        assert "carol" not in {row.user for row in twin.slurm.associations()}
        assert home.is_dir()  # the home stays, as in AD
    finally:
        if home.is_dir() and home.stat().st_uid >= 20000:
            shutil.rmtree(home)


def test_a_dynamic_node_resolves_the_users_when_it_boots(directory_twin):
    twin = directory_twin
    node = next(n.name for n in twin.layout().dynamic_nodes() if n.queue == "compute")
    result = on_host(twin, HEAD, "runuser", "-u", "alice", "--", "sbatch", "--parsable", "-p", "compute",
                     "-w", node, "--chdir=/home/alice", "--output=/home/alice/dynamic.out", "--wrap", "id -un; hostname")
    assert result.returncode == 0, result.stderr
    assert wait_job(twin.slurm, result.stdout.strip(), timeout=120) == "COMPLETED"
    assert Path("/home/alice/dynamic.out").read_text().split() == ["alice", node]


def test_users_resolve_through_a_head_node_reboot(directory_twin):
    """The head node (slapd, its SSSD, Slurm's daemons) reboots: a node's SSSD answers from its
    cache meanwhile, and `local up` brings the directory back for every host."""
    twin = directory_twin
    node = next(n.name for n in twin.layout().static_nodes() if n.queue == "compute")
    before = _identity(twin, node, "alice")
    assert twin.hosts.shutdown(HEAD)
    assert _identity(twin, node, "alice") == before  # offline: from SSSD's cache
    heal = subprocess.run([HPCTOOL, "local", "up", "--json"], env=twin.env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert heal.returncode == 0, heal.stderr
    started = json.loads(heal.stdout)["started"]
    assert {"host head", "slapd", f"sssd {HEAD}"} <= set(started), started
    # SSSD on the new head node goes online with slapd within moments (the group name comes then).
    wait_for(lambda: _identity(twin, HEAD, "alice") == before, timeout=30, what="alice's identity on the head node")
    listed = cli(twin, "list", "--json")
    assert listed.returncode == 0 and {u["name"] for u in json.loads(listed.stdout)} >= set(USERS)
