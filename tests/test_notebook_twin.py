"""Notebooks as Slurm jobs on the twin, in a real headless Chromium: real JupyterHub, batchspawner,
configurable-http-proxy and PAM, JupyterLab as a real Slurm job run by a real non-root user.

One hub serves the whole module (starting it is the slow part). The culler's timeout is short
(CULL_TIMEOUT) and servers report activity every few seconds, so only a server nobody uses is
culled. Screenshots go to the test's folder; HPCTOOL_UPDATE_SCREENSHOTS=1 copies them to docs/img.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hpctool.notebook.hub import TwinHub, ensure_user
from hpctool.twin import Twin, spot
from support.browser import headless_chromium
from support.twin import wait_for

pytestmark = pytest.mark.twin

USER, PASSWORD = "nbalice", "alice-" + "pw-1"
OUTSIDER, OUTSIDER_PASSWORD = "nbmallory", "mallory-" + "pw-1"
GROUP = "hpctool-notebook"
CULL_TIMEOUT = 15
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
SMALL = {"partition": "compute", "nprocs": "1", "memory": "1G", "runtime": "1:00:00"}


class Hub:
    """The running hub, with an admin service token for what the browser does not show."""

    def __init__(self, twin: Twin, hub: TwinHub, token: str, shots: Path) -> None:
        self.twin, self.hub, self.token, self.shots = twin, hub, token, shots
        self.url = hub.url
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"token {token}"

    def user(self, name: str = USER) -> dict:
        response = self.api.get(f"{self.url}/hub/api/users/{name}", timeout=10)
        response.raise_for_status()
        return response.json()

    def server(self, name: str = USER) -> dict | None:
        return self.user(name).get("servers", {}).get("")

    def start(self, options: dict, name: str = USER) -> dict:
        response = self.api.post(f"{self.url}/hub/api/users/{name}/server", json=options, timeout=30)
        assert response.status_code in (201, 202), response.text
        return wait_for(lambda: (s := self.server(name)) and s.get("ready") and s, timeout=90,
                        what="the notebook server to be ready")

    def stop(self, name: str = USER) -> None:
        if self.server(name):
            self.api.delete(f"{self.url}/hub/api/users/{name}/server", timeout=30)
            wait_for(lambda: not self.server(name), timeout=60, what="the server to stop")

    def job_id(self, name: str = USER) -> str:
        server = self.server(name)
        assert server, "no server"
        return server["state"]["job_id"]

    def sacct(self, job_id: str) -> dict:
        out = self.twin.slurm.run(["sacct", "-X", "-n", "-P", "-j", job_id,
                                   "-o", "JobID,User,Partition,NodeList,State"]).stdout
        fields = out.strip().splitlines()[-1].split("|")
        return dict(zip(["job_id", "user", "partition", "node", "state"], fields, strict=True))

    def shot(self, browser, name: str) -> Path:
        path = self.shots / f"{name}.png"
        browser.save_screenshot(str(path))
        assert path.stat().st_size > 5000  # a rendered page, not an empty canvas
        if os.environ.get("HPCTOOL_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_IMG / path.name)
        return path


@pytest.fixture(scope="module")
def hub(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    ensure_user(twin, USER, PASSWORD, (GROUP,))
    ensure_user(twin, OUTSIDER, OUTSIDER_PASSWORD, ())
    token = secrets.token_hex(24)
    test_service = [
        'c.JupyterHub.services.append({"name": "hpctool-test", "api_token": ' + repr(token) + "})",
        ('c.JupyterHub.load_roles.append({"name": "hpctool-test", "services": ["hpctool-test"], "scopes": '
         '["admin:users", "admin:servers", "admin:server_state", "list:users", "tokens", "access:servers"]})'),
        "c.JupyterHub.last_activity_interval = 3",
    ]
    runner = TwinHub(twin)
    runner.down()  # a hub left from a manual session has another config
    (runner.dir / "jupyterhub.sqlite").unlink(missing_ok=True)  # no users or stop reasons from earlier runs
    runner.up(cull_timeout=CULL_TIMEOUT, cull_every=2, extra_lines=tuple(test_service),
              environment=(("SLURM_CONF", str(twin.slurm_conf)), ("JUPYTERHUB_ACTIVITY_INTERVAL", "3")))
    running = Hub(twin, runner, token, tmp_path_factory.mktemp("screenshots"))
    # The hub knows a user after a first login; tests that start servers through the API need it now.
    created = running.api.post(f"{running.url}/hub/api/users/{USER}", timeout=10)
    assert created.status_code == 201, created.text
    try:
        yield running
    finally:
        runner.down()


@pytest.fixture
def browser():
    """A new headless Chromium per test (about a second): no cookies, no JupyterLab tab left over."""
    with headless_chromium(["--window-size=1280,860"], page_load_timeout=60) as driver:
        yield driver


@pytest.fixture
def fresh(hub: Hub, browser) -> Iterator[Hub]:
    """Each test starts with no server, and leaves none behind."""
    hub.stop()
    yield hub
    hub.stop()


def _by(kind: str):
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def page_text(browser) -> str:
    """The page's text; "" while the browser is between pages (the element went stale)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return browser.find_element(_by("TAG_NAME"), "body").text
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def log_in(browser, hub: Hub, user: str, password: str, shot: str = "", refused: bool = False) -> None:
    browser.get(f"{hub.url}/hub/login")
    browser.find_element(_by("ID"), "username_input").send_keys(user)
    browser.find_element(_by("ID"), "password_input").send_keys(password)
    if shot:
        hub.shot(browser, shot)
    browser.find_element(_by("ID"), "login_submit").click()
    if refused:
        return
    # Logged in once the hub has answered the form (a page load before that cancels the login).
    wait_for(lambda: "/hub/login" not in browser.current_url, timeout=60, interval=0.2,
             what="the hub to answer the login form")


def wait_css(browser, selector: str, timeout: float = 60):
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(
        expected_conditions.presence_of_element_located((_by("CSS_SELECTOR"), selector)))


def run_in_kernel(hub: Hub, code: str) -> str:
    """Run code in a new kernel of the user's server through the Jupyter server API, with a token
    of the user's own (created through the hub API); return what it printed."""
    import websocket

    created = hub.api.post(f"{hub.url}/hub/api/users/{USER}/tokens", json={"note": "test"}, timeout=10)
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"token {created.json()['token']}"}
    base = f"{hub.url}/user/{USER}/api"
    kernel = requests.post(f"{base}/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/kernels/{kernel.json()['id']}/channels",
                                     header=[f"{k}: {v}" for k, v in headers.items()], timeout=60)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": USER, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    printed = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        ws.close()
    return "".join(printed)


def test_journey_login_form_jupyterlab_as_a_slurm_job(fresh: Hub, browser) -> None:
    hub = fresh
    log_in(browser, hub, USER, PASSWORD, shot="notebook-login")
    form = wait_css(browser, "#spawn_form")
    layout = hub.twin.layout()
    for queue in layout.queues:  # the twin's queues, spot marked
        assert browser.find_element(_by("CSS_SELECTOR"), f"input[name=queue][value={queue['name']}]")
    assert "may be reclaimed with 2 minutes' notice" in form.text
    assert f"{layout.cpus_per_node} vCPUs" in form.text
    hub.shot(browser, "notebook-form")
    browser.find_element(_by("CSS_SELECTOR"), "input[name=queue][value=compute]").click()
    cpus = browser.find_element(_by("ID"), "hpctool-cpus")
    cpus.clear()
    cpus.send_keys("1")
    browser.find_element(_by("CSS_SELECTOR"), "#spawn_form button[type=submit]").click()
    wait_css(browser, "#jp-main-dock-panel", timeout=120)  # JupyterLab's shell is on the page
    assert f"/user/{USER}/lab" in browser.current_url
    time.sleep(1.5)  # let JupyterLab paint its launcher for the screenshot
    hub.shot(browser, "notebook-jupyterlab")

    job_id = hub.job_id()
    printed = run_in_kernel(hub, "import os; print(os.environ['SLURMD_NODENAME'], "
                                 "os.environ['SLURM_JOB_PARTITION'], os.environ['SLURM_JOB_ID'], os.getuid())")
    node, partition, kernel_job, uid = printed.split()
    assert partition == "compute" and kernel_job == job_id
    assert int(uid) == pwd.getpwnam(USER).pw_uid != 0
    compute_nodes = {n.name for n in layout.nodes if n.queue == "compute"}
    assert node in compute_nodes
    accounted = hub.sacct(job_id)
    assert accounted["user"] == USER and accounted["partition"] == "compute" and accounted["node"] == node
    assert accounted["state"] == "RUNNING"


def test_wrong_password_is_refused(fresh: Hub, browser) -> None:
    log_in(browser, fresh, USER, "not-the-password", refused=True)
    error = wait_css(browser, ".login_error")
    assert "Invalid username or password" in error.text
    assert "/hub/login" in browser.current_url
    assert not fresh.user().get("servers")


def test_user_outside_the_allowed_group_is_refused(fresh: Hub, browser) -> None:
    import pamela

    pamela.authenticate(OUTSIDER, OUTSIDER_PASSWORD, service="login")  # PAM itself accepts the password
    log_in(browser, fresh, OUTSIDER, OUTSIDER_PASSWORD, refused=True)
    error = wait_css(browser, ".login_error")
    assert "Invalid username or password" in error.text
    assert fresh.api.get(f"{fresh.url}/hub/api/users/{OUTSIDER}", timeout=10).status_code == 404


def test_stopping_the_server_cancels_its_job(fresh: Hub, browser) -> None:
    hub = fresh
    hub.start(SMALL)
    job_id = hub.job_id()
    # slurmdbd records the start a moment after the server answers: wait for it, then stop.
    wait_for(lambda: hub.sacct(job_id)["state"] == "RUNNING", timeout=30, what="sacct to show the job running")
    log_in(browser, hub, USER, PASSWORD)
    browser.get(f"{hub.url}/hub/home")
    wait_css(browser, "#stop").click()
    wait_for(lambda: not hub.server(), timeout=60, what="the hub to show the server stopped")
    wait_for(lambda: hub.sacct(job_id)["state"].startswith("CANCELLED"), timeout=30, what="sacct to show the job cancelled")


def test_a_job_that_cannot_start_shows_slurms_reason_quickly(fresh: Hub, browser) -> None:
    hub = fresh
    nodes = [n.name for n in hub.twin.layout().nodes if n.queue == "storage"]
    for node in nodes:
        hub.twin.slurm.update_node(node, "drain", reason="maintenance")
    try:
        log_in(browser, hub, USER, PASSWORD)
        wait_css(browser, "#spawn_form")
        browser.find_element(_by("CSS_SELECTOR"), "input[name=queue][value=storage]").click()
        clicked = time.monotonic()
        browser.find_element(_by("CSS_SELECTOR"), "#spawn_form button[type=submit]").click()
        # The progress page's message, or the error page when the failure beat the redirect.
        message = wait_for(lambda: "cannot start" in (t := page_text(browser)) and t, timeout=60, interval=0.3,
                           what="the failure")
        seconds = time.monotonic() - clicked
        hub.shot(browser, "notebook-cannot-start")
    finally:
        for node in nodes:
            hub.twin.slurm.update_node(node, "resume")
    # Slurm 22.05 names either reason for a queue whose nodes are all drained.
    assert "ReqNodeNotAvail" in message or "DRAINED" in message, message
    assert "cannot start in queue storage" in message
    # Reported from Slurm's reason while pending, far sooner than start_timeout (120 s on the twin).
    assert seconds < hub.hub.settings().start_timeout / 4, seconds
    job_id = message.split("Slurm job ")[1].split()[0]
    assert "Spawn failed" in message or "Error" in message
    assert hub.sacct(job_id)["state"].startswith("CANCELLED")  # not left pending in the queue


def test_culler_stops_an_idle_server_and_cancels_its_job(fresh: Hub) -> None:
    hub = fresh
    hub.start(SMALL)
    job_id = hub.job_id()
    started = time.monotonic()
    wait_for(lambda: not hub.server(), timeout=CULL_TIMEOUT + 40, interval=1, what="the culler")
    assert time.monotonic() - started >= CULL_TIMEOUT - 5  # culled for idleness, not at once
    culled = [line for line in hub.hub.log_file.read_text().splitlines()
              if f"DELETE /hub/api/users/{USER}/server" in line and "(idle-culler@" in line]
    assert culled, "the hub's log has no DELETE of the server by the idle-culler service"
    wait_for(lambda: hub.sacct(job_id)["state"].startswith("CANCELLED"), timeout=30, what="sacct to show the job cancelled")


def test_spot_notice_under_a_notebook_shows_the_server_stopped_and_why(fresh: Hub, browser) -> None:
    hub = fresh
    hub.start({**SMALL, "partition": "spot"})
    job_id = hub.job_id()
    node = wait_for(lambda: hub.sacct(job_id)["node"], what="the job's node")
    spot.send_spot_notice(hub.twin, node, deadline_s=3)
    try:
        wait_for(lambda: not hub.server(), timeout=60, interval=0.5, what="the hub to notice the lost node")
        log_in(browser, hub, USER, PASSWORD)
        banner = wait_css(browser, "#hpctool-last-stop")
        hub.shot(browser, "notebook-spot-stopped")
        assert f"Slurm job {job_id} ended: NODE_FAIL" in banner.text
        assert node in banner.text and "reclaimed by EC2" in banner.text
        assert hub.sacct(job_id)["state"] == "NODE_FAIL"
    finally:
        spot.restore_node(hub.twin, node)
