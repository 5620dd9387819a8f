"""Spot interruptions on the local twin: the EC2 side of the story, played for real.

On every spot node's host the twin runs an IMDSv2 emulator (:mod:`hpctool.twin.imds`) at
169.254.169.254, as EC2 answers there, and the node's ``bootstrap/spot-interruption-handler``
with its EC2 defaults: the same handler, the same code path, no endpoint override. The twin
drives the emulator through its control port on the node's own address. :func:`send_spot_notice` makes a node's emulator serve the instance-action
document and schedules the reclaim: at the deadline the node is marked DOWN (Slurm kills what
still runs there) and its slurmd is stopped, as EC2 taking the instance would.
:func:`restore_node` brings the node back as a fresh instance.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpctool import shipped
from hpctool.atomic import write_atomic
from hpctool.errors import TwinError
from hpctool.polling import poll_until
from hpctool.slurm.parse import node_in_service, node_out_of_service
from hpctool.twin import daemons
from hpctool.twin.core import Twin
from hpctool.twin.hosts import IMDS_ADDRESS
from hpctool.twin.layout import TwinLayout, TwinNode

HANDLER_SCRIPT = shipped.path("bootstrap") / "spot-interruption-handler"
CONTROL_PORT = 8081  # the emulator's control endpoints, on the node's address (never on EC2)
HANDLER_INTERVAL_S = 0.5  # the twin polls faster than the bootstrap's 2 s: a notice is handled within a second, same code


class SpotServices:
    """The twin's spot side as a :class:`~hpctool.twin.core.TwinService`: per spot node, an IMDS
    emulator and the interruption handler that runs on such a node on EC2."""

    def ports(self, nodes: list[TwinNode], base: int) -> dict[str, int]:
        return {}

    def pid_files(self, twin: Twin, layout: TwinLayout) -> dict[str, Path]:
        return service_pid_files(twin, layout)

    def start(self, twin: Twin, layout: TwinLayout) -> list[str]:
        return start_services(twin, layout)

    def stop(self, twin: Twin) -> list[str]:
        return stop_services(twin)

    def host_booted(self, twin: Twin, layout: TwinLayout, node: TwinNode) -> None:
        """A spot node's host came up (a static node at ``up``, a dynamic one at its boot)."""
        if node.spot:
            start_services(twin, layout, [node.name])


def control_address(twin: Twin, layout: TwinLayout, node: str) -> str:
    entry = layout.node(node)
    assert entry is not None
    return twin.hosts.address(node) or twin.network.address(entry.index)


@dataclass(frozen=True)
class SpotFiles:
    """Where one spot node's emulator, handler and reclaim keep their PID files and logs."""

    imds_pid: Path
    handler_pid: Path
    reclaim_pid: Path
    imds_log: Path
    handler_log: Path  # the handler's JSON lines (what the benchmarks read)
    handler_output: Path
    handler_state: Path
    reclaim_log: Path


def files(twin: Twin, node: str) -> SpotFiles:
    return SpotFiles(
        imds_pid=twin.run_dir / f"imds-{node}.pid",
        handler_pid=twin.run_dir / f"spot-handler-{node}.pid",
        reclaim_pid=twin.run_dir / f"spot-reclaim-{node}.pid",
        imds_log=twin.log_dir / f"imds-{node}.log",
        handler_log=twin.log_dir / f"spot-handler-{node}.jsonl",
        handler_output=twin.log_dir / f"spot-handler-{node}.log",
        handler_state=twin.home / "state" / f"spot-handler-{node}.json",
        reclaim_log=twin.log_dir / f"spot-reclaim-{node}.log",
    )


def service_pid_files(twin: Twin, layout: TwinLayout) -> dict[str, Path]:
    """The long-running spot services of the spot nodes that are up, named as ``status`` shows them."""
    result: dict[str, Path] = {}
    for node in layout.spot_nodes():
        if not twin.hosts.alive(node):
            continue
        paths = files(twin, node)
        result[f"imds {node}"] = paths.imds_pid
        result[f"spot-handler {node}"] = paths.handler_pid
    return result


def _spawn(argv: list[str], log: Path, pid_file: Path, env: dict[str, str]) -> None:
    process = daemons.spawn(argv, log, env=env)
    write_atomic(pid_file, f"{process.pid}\n")


def start_services(twin: Twin, layout: TwinLayout, nodes: list[str] | None = None) -> list[str]:
    """Start the emulator and handler of every spot node that is up and lacks them; return what started."""
    started = []
    for node in nodes if nodes is not None else layout.spot_nodes():
        if not twin.hosts.alive(node):
            continue  # a powered-down dynamic node: no instance, nothing to serve
        paths = files(twin, node)
        address = control_address(twin, layout, node)
        if not daemons.pid_alive(daemons.read_pid(paths.imds_pid)):
            _spawn(twin.hosts.exec_argv(node, [sys.executable, "-m", "hpctool.twin.imds", "--host", IMDS_ADDRESS,
                                               "--port", "80", "--node", node, "--control-host", address,
                                               "--control-port", str(CONTROL_PORT)]),
                   paths.imds_log, paths.imds_pid, twin.env())
            daemons.wait_until(lambda a=address: _answers(a), name=f"imds {node}", log_file=paths.imds_log,
                               timeout=15, alive=lambda f=paths.imds_pid: daemons.pid_alive(daemons.read_pid(f)))
            started.append(f"imds {node}")
        if not daemons.pid_alive(daemons.read_pid(paths.handler_pid)):
            # The node image's python3 with -I -S: the handler needs only the standard library,
            # and talks to IMDS at 169.254.169.254 as on EC2.
            _spawn(twin.hosts.exec_argv(node, ["python3", "-I", "-S", str(HANDLER_SCRIPT), "--node", node,
                                               "--slurm-conf", str(twin.slurm_conf),
                                               "--interval", str(HANDLER_INTERVAL_S), "--log", str(paths.handler_log),
                                               "--state-file", str(paths.handler_state)]),
                   paths.handler_output, paths.handler_pid, twin.env())
            started.append(f"spot-handler {node}")
    if started:
        twin.progress(f"started {len(started)} spot service(s) (IMDS emulators, interruption handlers)")
    return started


def stop_services(twin: Twin, layout: TwinLayout | None = None) -> list[str]:
    """Stop handlers, emulators and pending reclaims, by PID file only. Every such PID file in the
    run folder counts, not only the layout's nodes: a twin restarted with another config must not
    leave the previous spot nodes' emulators holding their ports."""
    stopped = []
    programs = {"spot-reclaim": "hpctool.twin.spot", "spot-handler": HANDLER_SCRIPT.name, "imds": "hpctool.twin.imds"}
    for kind, program in programs.items():
        for pid_file in sorted(twin.run_dir.glob(f"{kind}-*.pid")):
            name = f"{kind} {pid_file.name[len(kind) + 1:-len('.pid')]}"
            if daemons.stop_pid(daemons.read_pid(pid_file), name=name, program=program, timeout=10):
                stopped.append(name)
            pid_file.unlink(missing_ok=True)
    return stopped


def _answers(address: str) -> bool:
    try:
        _control(address, "GET", "state", timeout=1)
    except TwinError:
        return False
    return True


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def _control(address: str, method: str, action: str, body: dict[str, Any] | None = None,
             timeout: float = 5) -> dict[str, Any]:
    data = json.dumps(body or {}).encode() if method == "POST" else None
    request = urllib.request.Request(f"http://{address}:{CONTROL_PORT}/_emulator/{action}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise TwinError(f"the IMDS emulator at {address} did not answer {method} {action}: {error}",
                        "is the twin up? (`hpctool local status`; `hpctool local up` restarts missing services)"
                        ) from error


def _spot_node(twin: Twin, node: str) -> TwinLayout:
    layout = twin.layout()
    if layout is None:
        raise TwinError(f"no twin at {twin.home}", "start it with `hpctool local up`")
    names = {n.name: n for n in layout.nodes}
    if node not in names:
        raise TwinError(f"{node} is not a node of the twin", f"spot nodes: {', '.join(layout.spot_nodes()) or 'none'}")
    if not names[node].spot:
        raise TwinError(f"{node} is in queue {names[node].queue}, which is not a spot queue",
                        f"spot nodes: {', '.join(layout.spot_nodes()) or 'none (no CapacityType: SPOT queue)'}")
    return layout


@dataclass(frozen=True)
class SpotNotice:
    node: str
    action: str
    time: str  # the reclaim time, as EC2 writes it
    issued_at: float  # epoch seconds when the emulator started serving it
    reclaim_at: float  # epoch seconds

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "action": self.action, "time": self.time,
                "issued_at": self.issued_at, "reclaim_at": self.reclaim_at}


def send_spot_notice(twin: Twin, node: str, deadline_s: float = 120) -> SpotNotice:
    """Serve a 2-minute (or ``deadline_s``) interruption notice for ``node`` and schedule its reclaim.

    A second call while a notice is active returns the same notice (EC2 gives one per instance).
    """
    if not 0 < deadline_s <= 3600:
        raise TwinError(f"--deadline {deadline_s:g} is out of range", "give seconds from 1 to 3600 (EC2 gives 120)")
    layout = _spot_node(twin, node)
    if not twin.hosts.alive(node):
        raise TwinError(f"{node} is not up (a powered-down node has no instance to interrupt)",
                        "notice a node that is up: `hpctool local status` shows the states")
    address = control_address(twin, layout, node)
    if not _answers(address):
        start_services(twin, layout, [node])
    state = _control(address, "POST", "notice", {"deadline_s": deadline_s})
    action = state["instance_action"]
    # From the served document, not deadline_s: a repeated notice keeps the first one's time.
    reclaim_at = datetime.strptime(action["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    notice = SpotNotice(node=node, action=action["action"], time=action["time"],
                        issued_at=state["notice_issued_at"], reclaim_at=reclaim_at)
    paths = files(twin, node)
    if not daemons.pid_alive(daemons.read_pid(paths.reclaim_pid)):
        _spawn([sys.executable, "-m", "hpctool.twin.spot", "reclaim", node, "--at", str(notice.reclaim_at),
                "--home", str(twin.home)], paths.reclaim_log, paths.reclaim_pid, twin.env())
    twin.progress(f"{node}: notice served ({notice.action} at {notice.time}); "
                  f"reclaim in {max(0.0, reclaim_at - time.time()):.0f} s")
    return notice


def inject_imds_faults(twin: Twin, node: str, *, status: int = 0, delay_s: float = 0, count: int = 0,
                       expire_tokens: bool = False) -> dict[str, Any]:
    """Make ``node``'s emulator answer the next ``count`` requests with ``status`` (and/or after
    ``delay_s``), or revoke its tokens: the faults the handler must survive."""
    layout = _spot_node(twin, node)
    return _control(control_address(twin, layout, node), "POST", "faults",
                    {"status": status, "delay_s": delay_s, "count": count, "expire_tokens": expire_tokens})


def reclaim(twin: Twin, node: str) -> None:
    """What EC2 does at the deadline: the instance is gone. Slurm marks the node DOWN (killing what
    still runs there; requeueable jobs go back to the queue) and the node's slurmd disappears."""
    slurm = twin.slurm
    # The handler drained the node; EC2 took it: users see it down, as on ParallelCluster (a
    # drained node whose slurmd vanished would show `drain*`).
    if "drain" in twin.node_state(node):
        slurm.update_node(node, "undrain")
    slurm.update_node(node, "down", reason="spot-reclaimed")
    try:  # let slurmd kill the job processes before it goes
        poll_until(lambda: not slurm.run(["squeue", "-h", "-w", node, "-o", "%A"]).stdout.strip(),
                   timeout=20, interval=0.5, on_timeout=lambda: TwinError(f"jobs linger on {node}"))
    except TwinError:
        pass
    twin.stop_node(node)
    layout = twin.layout()
    entry = layout.node(node) if layout is not None else None
    if entry is not None and entry.dynamic:
        # ParallelCluster's clustermgtd replaces a lost dynamic instance by resetting its node to
        # powered down: the next job that needs it boots a new instance.
        slurm.update_node(node, "power_down_force")


def cancel_reclaim(twin: Twin, node: str) -> None:
    """Call off the reclaim a notice scheduled (the notice itself stays served)."""
    daemons.stop_pid(daemons.read_pid(files(twin, node).reclaim_pid), name=f"spot-reclaim {node}",
                     program="hpctool.twin.spot", timeout=5)


def restore_node(twin: Twin, node: str, wait: bool = True, timeout: float = 60) -> str:
    """Bring ``node`` back as a fresh instance: cancel a pending reclaim, clear the notice, and
    start its slurmd and resume it (a static node) or reset it to powered down, ready to boot
    (a dynamic node, as ParallelCluster replaces one). Returns the node's state."""
    layout = _spot_node(twin, node)
    dynamic = bool(layout.node(node) and layout.node(node).dynamic)
    cancel_reclaim(twin, node)
    # A new instance runs a new handler that has handled nothing: EC2 sends an instance at most one
    # notice, so the handler knows notices by action and time, and a notice to the restored node
    # that falls on the same second as an old one must not pass for a repeat.
    paths = files(twin, node)
    daemons.stop_pid(daemons.read_pid(paths.handler_pid), name=f"spot-handler {node}", program=HANDLER_SCRIPT.name,
                     timeout=10)
    paths.handler_pid.unlink(missing_ok=True)
    paths.handler_state.unlink(missing_ok=True)
    if twin.hosts.alive(node):
        address = control_address(twin, layout, node)
        if not _answers(address):
            start_services(twin, layout, [node])  # a new emulator serves no notice
        _control(address, "POST", "clear")
        start_services(twin, layout, [node])  # the new handler, once the old notice is gone
    if not dynamic:
        twin.start_node(node)  # a new instance: a new host, its services started at its boot
    slurm = twin.slurm

    def back() -> bool:
        state = twin.node_state(node)
        if node_out_of_service(state):
            slurm.update_node(node, "power_down_force" if dynamic else "resume")
            return False
        return not wait or node_in_service(state)

    poll_until(back, timeout=timeout, interval=0.3,
               on_timeout=lambda: TwinError(f"{node} did not come back (state {twin.node_state(node)}) "
                                            f"within {timeout:.0f} s", f"see {twin.paths.slurmd_log(node)}"))
    state = twin.node_state(node)
    twin.progress(f"{node}: restored ({state})")
    return state


def handler_events(twin: Twin, node: str) -> list[dict[str, Any]]:
    """The handler's JSON-lines log for ``node`` (empty when it has not started)."""
    try:
        text = files(twin, node).handler_log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_notice_handled(twin: Twin, node: str, notice: SpotNotice, timeout: float = 90) -> dict[str, Any]:
    """Wait for the handler's ``done`` event of ``notice``; return it."""
    def done() -> dict[str, Any] | None:
        return next((e for e in handler_events(twin, node) if e["event"] == "done" and e["ts"] >= notice.issued_at - 1
                     and e.get("notice", {}).get("time") == notice.time), None)

    return poll_until(done, timeout=timeout, interval=0.2, on_timeout=lambda: TwinError(
        f"the spot handler of {node} did not finish the notice for {notice.time} in {timeout:.0f} s",
        f"see {files(twin, node).handler_log}"))


def main(argv: list[str] | None = None) -> int:
    """``python -m hpctool.twin.spot reclaim NODE --at EPOCH --home DIR``: the twin's delayed reclaim."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hpctool.twin.spot")
    sub = parser.add_subparsers(dest="command", required=True)
    reclaim_parser = sub.add_parser("reclaim", help="at --at, take NODE away as EC2 would")
    reclaim_parser.add_argument("node")
    reclaim_parser.add_argument("--at", type=float, required=True, help="epoch seconds")
    reclaim_parser.add_argument("--home", required=True)
    args = parser.parse_args(argv)
    twin = Twin(args.home)
    time.sleep(max(0.0, args.at - time.time()))
    print(f"{time.strftime('%H:%M:%S')} reclaiming {args.node}", flush=True)
    reclaim(twin, args.node)
    print(f"{time.strftime('%H:%M:%S')} {args.node} reclaimed (DOWN, slurmd stopped)", flush=True)
    files(twin, args.node).reclaim_pid.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
