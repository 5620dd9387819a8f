"""The IMDSv2 emulator speaks EC2's token protocol, and the handler's IMDS client survives its faults.

No Slurm here: the emulator runs in a thread on a free loopback port; the handler script is loaded
from bootstrap/ as a module (it has no .py suffix because it is installed as a command).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpctool.twin.imds import make_server
from support.handler import load_handler

REPO = Path(__file__).resolve().parents[1]


handler = load_handler()


@pytest.fixture
def imds() -> Iterator[str]:
    server = make_server(0, "spot-st-test-1")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url: str, method: str = "GET", headers: dict | None = None, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def token(base: str, ttl: str = "60") -> str:
    status, body = call(f"{base}/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert status == 200
    return body


def test_imdsv1_is_refused_and_a_token_needs_a_ttl(imds: str) -> None:
    assert call(f"{imds}/latest/meta-data/instance-id")[0] == 401
    assert call(f"{imds}/latest/api/token", "PUT")[0] == 400
    assert call(f"{imds}/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "99999"})[0] == 400
    assert call(f"{imds}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "forged"})[0] == 401
    status, body = call(f"{imds}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token(imds)})
    assert status == 200 and body.startswith("i-")


def test_instance_action_is_404_until_a_notice_then_ec2s_document(imds: str) -> None:
    headers = {"X-aws-ec2-metadata-token": token(imds)}
    assert call(f"{imds}/latest/meta-data/spot/instance-action", headers=headers)[0] == 404
    before = time.time()
    status, _ = call(f"{imds}/_emulator/notice", "POST", body={"deadline_s": 30})
    assert status == 200
    status, body = call(f"{imds}/latest/meta-data/spot/instance-action", headers=headers)
    assert status == 200
    document = json.loads(body)
    assert document["action"] == "terminate"
    reclaim = handler.notice_epoch(document)
    assert before + 29 <= reclaim <= time.time() + 32
    # A second notice keeps the first one (one notice per instance).
    call(f"{imds}/_emulator/notice", "POST", body={"deadline_s": 300})
    assert json.loads(call(f"{imds}/latest/meta-data/spot/instance-action", headers=headers)[1]) == document
    call(f"{imds}/_emulator/clear", "POST", body={})
    assert call(f"{imds}/latest/meta-data/spot/instance-action", headers=headers)[0] == 404


def test_bad_control_requests_are_400(imds: str) -> None:
    assert call(f"{imds}/_emulator/notice", "POST", body={"deadline_s": -1})[0] == 400
    assert call(f"{imds}/_emulator/nonsense", "POST", body={})[0] == 404


def test_handler_client_reads_notice_and_rebalance(imds: str) -> None:
    client = handler.Imds(imds, timeout=2)
    assert client.get_json("spot/instance-action") is None
    assert client.get_json("events/recommendations/rebalance") is None
    call(f"{imds}/_emulator/rebalance", "POST", body={})
    call(f"{imds}/_emulator/notice", "POST", body={"deadline_s": 120})
    assert client.get_json("spot/instance-action")["action"] == "terminate"
    assert "noticeTime" in client.get_json("events/recommendations/rebalance")


def test_handler_client_takes_a_new_token_after_401(imds: str) -> None:
    client = handler.Imds(imds, timeout=2)
    assert client.get("instance-id")
    first = client.token
    call(f"{imds}/_emulator/faults", "POST", body={"expire_tokens": True})
    assert client.get("instance-id")  # 401 once, then a fresh token
    assert client.token != first


def test_handler_client_raises_imds_error_on_5xx_and_timeouts(imds: str) -> None:
    client = handler.Imds(imds, timeout=0.5)
    client.get("instance-id")
    call(f"{imds}/_emulator/faults", "POST", body={"status": 503, "count": 1})
    with pytest.raises(handler.ImdsError, match="503"):
        client.get("spot/instance-action")
    call(f"{imds}/_emulator/faults", "POST", body={"delay_s": 1.5, "count": 1})
    with pytest.raises(handler.ImdsError):
        client.get("spot/instance-action")
    assert client.get("spot/instance-action") is None  # recovered
    unreachable = handler.Imds("http://127.0.0.1:9", timeout=0.5)
    with pytest.raises(handler.ImdsError):
        unreachable.get("spot/instance-action")


def test_handler_poll_logs_imds_errors_and_keeps_going(imds: str, tmp_path: Path) -> None:
    args = handler.parse_args(["--imds-endpoint", imds, "--node", "spot-st-test-1", "--log", str(tmp_path / "h.jsonl"),
                               "--state-file", str(tmp_path / "state.json"), "--imds-timeout", "0.5"])
    instance = handler.Handler(args)
    call(f"{imds}/_emulator/faults", "POST", body={"status": 500, "count": 2})
    instance.poll_once()
    instance.poll_once()
    instance.poll_once()  # faults used up: a clean poll
    call(f"{imds}/_emulator/rebalance", "POST", body={})
    instance.poll_once()
    instance.poll_once()
    events = [json.loads(line)["event"] for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert events.count("imds-error") == 2  # one per faulty poll; the third poll is clean
    assert events.count("imds-recovered") == 1
    assert events.count("rebalance-recommendation") == 1  # logged once, not every poll


def test_handler_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        handler.parse_args(["--signal", "NOPE"])
    with pytest.raises(SystemExit):
        handler.parse_args(["--interval", "0"])
    assert handler.parse_args(["--signal", "sigusr1"]).signal == "sigusr1"
