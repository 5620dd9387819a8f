"""Plain validation never reaches the network or AWS, whatever the environment holds (issue 11).

A listener on 127.0.0.1 stands in for AWS: every AWS endpoint, proxy and the metadata service point
at it, with (bogus) credentials set. The configs that make ParallelCluster's model ask AWS (capacity
reservation groups, existing file systems) must still be validated, and nothing may connect.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hpctool.configs.offline import NetworkBlocked, no_network

CORPUS = Path(__file__).parent / "data" / "configs" / "real"
ASKS_AWS = ["it-on-demand-capacity-reservation.yaml", "it-multiple-fsx.yaml", "it-dcv-configuration.yaml"]


@pytest.fixture
def fake_aws():
    """A TCP listener that counts connections; the port every AWS setting points at."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    seen: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append(conn.recv(200))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join(2)
    server.close()


def _hostile_env(port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    return {**os.environ, "AWS_ACCESS_KEY_ID": "AKIABOGUSBOGUSBOGUS0", "AWS_SECRET_ACCESS_KEY": "bogus",
            "AWS_SESSION_TOKEN": "bogus", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL_RESOURCE_GROUPS": url, "AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
            "HTTPS_PROXY": url, "HTTP_PROXY": url}


@pytest.mark.parametrize("name", ASKS_AWS)
def test_plain_validate_makes_no_connection(fake_aws, name: str) -> None:
    port, seen = fake_aws
    done = subprocess.run([sys.executable, "-m", "hpctool.cli", "config", "validate", str(CORPUS / name), "--json"],
                          capture_output=True, text=True, env=_hostile_env(port), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "valid"
    assert not seen, f"validate connected to the fake AWS endpoint: {seen}"
    assert "bogus" not in done.stdout + done.stderr
    if name == "it-on-demand-capacity-reservation.yaml":
        lookups = [n for n in report["not_checked"] if n["check"] == "schema:aws-lookups"]
        assert lookups and "resource-groups" in lookups[0]["reason"]  # said, not silently passed


def test_no_network_blocks_and_restores(fake_aws) -> None:
    port, seen = fake_aws
    before = os.environ.get("AWS_ACCESS_KEY_ID")
    with no_network("eu-west-1") as attempts:
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        with pytest.raises(NetworkBlocked):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        with socket.socket() as sock, pytest.raises(NetworkBlocked):
            sock.connect(("127.0.0.1", port))
        with pytest.raises(NetworkBlocked):
            socket.getaddrinfo("s3.amazonaws.com", 443)
    assert attempts.hosts and not seen
    assert os.environ.get("AWS_ACCESS_KEY_ID") == before
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:  # restored afterwards
        sock.sendall(b"ping")


def test_deep_fetches_no_script_url(fake_aws, tmp_path: Path) -> None:
    """--deep's child blocks the network too: an https:// OnNodeConfigured script is not fetched."""
    import yaml

    port, seen = fake_aws
    config = yaml.safe_load((CORPUS / "pcluster-example-slurm-required.yaml").read_text())
    config["Region"] = "us-east-1"
    config["HeadNode"]["CustomActions"] = {"OnNodeConfigured": {"Script": f"https://127.0.0.1:{port}/boot.sh"}}
    path = tmp_path / "script-url.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "hpctool.cli", "config", "validate", "--deep", "--json", str(path)],
                          capture_output=True, text=True, env=_hostile_env(port), timeout=300, check=False)
    report = json.loads(done.stdout)
    assert not seen, f"--deep connected: {seen}"
    assert report["verdict"] in ("valid", "incomplete"), report
    url_checks = [n for n in report["not_checked"] if n["check"] == "pcluster:UrlValidator"]
    assert url_checks and url_checks[0]["kind"] == "account"
