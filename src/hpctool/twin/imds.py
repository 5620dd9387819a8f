"""A loopback emulator of the EC2 instance metadata service (IMDSv2), one per spot node of the twin.

It speaks the parts of IMDSv2 the spot-interruption handler uses, exactly as EC2 does: a session
token from ``PUT /latest/api/token`` (TTL header required), then ``GET /latest/meta-data/...`` with
the ``X-aws-ec2-metadata-token`` header (401 without a valid token: IMDSv1 is off, as in our
clusters). ``spot/instance-action`` and ``events/recommendations/rebalance`` are 404 until the
twin posts a notice.

We write it ourselves because no maintained emulator serves spot notices over IMDSv2 on a port of
our choosing (moto's mock is in-process for boto3, not an HTTP endpoint a separate process polls).

Control endpoints, under ``/_emulator/`` (loopback only, never present on EC2):
``POST notice {"deadline_s": 120}``, ``POST rebalance``, ``POST clear``,
``POST faults {"status": 500, "count": 3}`` / ``{"delay_s": 5, "count": 1}`` / ``{"expire_tokens": true}``,
``GET state``.

Run: ``python -m hpctool.twin.imds --port 16870 --node spot-st-mixed16-1``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# B105: an IMDS URL path, not a password
TOKEN_PATH = "/latest/api/token"  # nosec B105
META_PREFIX = "/latest/meta-data/"
CONTROL_PREFIX = "/_emulator/"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
# B105: the IMDSv2 header name, not a password
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # nosec B105
MAX_TTL = 21600


def iso_utc(epoch: float) -> str:
    """EC2's time format in instance-action documents: ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ImdsState:
    """What one emulated instance serves; changed by the control endpoints."""

    node: str
    instance_id: str
    instance_action: dict[str, str] | None = None
    notice_issued_at: float | None = None
    rebalance: dict[str, str] | None = None
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch)
    fault_status: int = 0
    fault_delay_s: float = 0.0
    fault_count: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "instance_id": self.instance_id,
            "instance_action": self.instance_action,
            "notice_issued_at": self.notice_issued_at,
            "rebalance": self.rebalance,
            "faults_left": self.fault_count,
            "requests": self.requests,
        }

    def post_notice(self, deadline_s: float, action: str = "terminate") -> dict[str, Any]:
        """Serve an instance-action; a second notice while one is active keeps the first (as EC2)."""
        with self.lock:
            if self.instance_action is None:
                now = time.time()
                # EC2 gives whole seconds; round up so the deadline is never earlier than asked.
                self.instance_action = {"action": action, "time": iso_utc(int(now + deadline_s + 0.999))}
                self.notice_issued_at = now
            return self.snapshot()


class ImdsHandler(BaseHTTPRequestHandler):
    server_version = "EC2ws"
    sys_version = ""
    state: ImdsState  # set on the subclass made by make_server
    control = True  # serves /_emulator/ (False on 169.254.169.254 when a control address is given)

    # -- plumbing ---------------------------------------------------------------------------
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The handler polls every second or two: log control calls and errors, not every poll.
        if self.path.startswith(CONTROL_PREFIX) or str(code) not in {"200", "404"}:
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{iso_utc(time.time())} {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: str = "", content_type: str = "text/plain") -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out (e.g. an injected delay): nothing left to answer

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError("expected a JSON object")
        return value

    def _injected_fault(self) -> bool:
        """Apply a pending fault (metadata paths only); True when the request was answered by it."""
        state = self.state
        with state.lock:
            if state.fault_count <= 0:
                return False
            state.fault_count -= 1
            status, delay = state.fault_status, state.fault_delay_s
        if delay:
            time.sleep(delay)
        if status:
            self._send(status, "injected fault")
            return True
        return False

    def _token_valid(self) -> bool:
        token = self.headers.get(TOKEN_HEADER, "")
        with self.state.lock:
            expiry = self.state.tokens.get(token)
        return expiry is not None and expiry > time.time()

    # -- EC2 paths --------------------------------------------------------------------------
    def do_PUT(self) -> None:
        self.state.requests += 1
        if self.path != TOKEN_PATH:
            self._send(404, "Not Found")
            return
        if self._injected_fault():
            return
        ttl_text = self.headers.get(TTL_HEADER, "")
        if not ttl_text.isdigit() or not 1 <= int(ttl_text) <= MAX_TTL:
            self._send(400, f"{TTL_HEADER} must be 1..{MAX_TTL}")
            return
        token = secrets.token_urlsafe(32)
        with self.state.lock:
            now = time.time()
            self.state.tokens = {t: e for t, e in self.state.tokens.items() if e > now}
            self.state.tokens[token] = now + int(ttl_text)
        self._send(200, token)

    def do_GET(self) -> None:
        self.state.requests += 1
        if self.path.startswith(CONTROL_PREFIX) and self.control:
            self._control("GET", self.path[len(CONTROL_PREFIX):])
            return
        if not self.path.startswith(META_PREFIX):
            self._send(404, "Not Found")
            return
        if self._injected_fault():
            return
        if not self._token_valid():
            self._send(401, "Unauthorized")
            return
        key = self.path[len(META_PREFIX):].rstrip("/")
        state = self.state
        documents: dict[str, str | None] = {
            "instance-id": state.instance_id,
            "instance-life-cycle": "spot",
            "local-hostname": state.node,
            "local-ipv4": "127.0.0.1",
            "spot/instance-action": json.dumps(state.instance_action) if state.instance_action else None,
            "events/recommendations/rebalance": json.dumps(state.rebalance) if state.rebalance else None,
        }
        body = documents.get(key)
        if body is None:
            self._send(404, "Not Found")
        else:
            self._send(200, body, "application/json" if body.startswith("{") else "text/plain")

    # -- control ----------------------------------------------------------------------------
    def do_POST(self) -> None:
        self.state.requests += 1
        if not self.path.startswith(CONTROL_PREFIX) or not self.control:
            self._send(405, "Method Not Allowed")
            return
        self._control("POST", self.path[len(CONTROL_PREFIX):])

    def _control(self, method: str, action: str) -> None:
        state = self.state
        try:
            body = self._read_json() if method == "POST" else {}
            if method == "GET" and action == "state":
                pass
            elif method == "POST" and action == "notice":
                deadline_s = float(body.get("deadline_s", 120))
                if not 0 < deadline_s <= 3600:
                    raise ValueError("deadline_s must be in (0, 3600]")
                state.post_notice(deadline_s, str(body.get("action", "terminate")))
            elif method == "POST" and action == "rebalance":
                with state.lock:
                    state.rebalance = state.rebalance or {"noticeTime": iso_utc(time.time())}
            elif method == "POST" and action == "clear":
                with state.lock:
                    state.instance_action = state.notice_issued_at = state.rebalance = None
                    state.fault_count = 0
            elif method == "POST" and action == "faults":
                with state.lock:
                    if body.get("expire_tokens"):
                        state.tokens.clear()
                    state.fault_status = int(body.get("status", 0))
                    state.fault_delay_s = float(body.get("delay_s", 0))
                    state.fault_count = int(body.get("count", 0))
            else:
                self._send(404, f"no control action {method} {action}")
                return
        except (ValueError, TypeError) as error:
            self._send(400, f"bad request: {error}")
            return
        with state.lock:
            snapshot = state.snapshot()
        self._send(200, json.dumps(snapshot), "application/json")


def make_server(port: int, node: str, host: str = "127.0.0.1", state: ImdsState | None = None,
                control: bool = True) -> ThreadingHTTPServer:
    """An emulator bound to ``host:port`` (port 0 picks a free one) serving ``node``'s metadata."""
    if state is None:
        state = ImdsState(node=node, instance_id="i-" + secrets.token_hex(9)[:17])
    handler = type("BoundImdsHandler", (ImdsHandler,), {"state": state, "control": control})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpctool.twin.imds", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    parser.add_argument("--node", required=True, help="the Slurm node this instance is")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--control-host", help="serve the control endpoints here only (the twin's side)")
    parser.add_argument("--control-port", type=int, default=8081)
    args = parser.parse_args(argv)
    server = make_server(args.port, args.node, args.host, control=args.control_host is None)
    if args.control_host:
        control = make_server(args.control_port, args.node, args.control_host,
                              state=server.RequestHandlerClass.state)
        threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    sys.stderr.write(f"{iso_utc(time.time())} IMDS emulator for {args.node} on {args.host}:{args.port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
