"""slurmctld's ResumeProgram and SuspendProgram for the twin's dynamic nodes, and the simulated
instance boot between them: ``python -m hpctool.twin.power --home DIR resume|suspend NODELIST``.

A resume starts, per node and in parallel (as EC2 launches), a boot that waits the compute
resource's boot delay and then starts the node's ``slurmd -b`` (``-b``: report the boot as just
now, since no machine really rebooted). Injected faults (:mod:`hpctool.twin.capacity`) make it
fail the way ParallelCluster's resume fails. A suspend stops the node's slurmd, or a boot that
is still pending (slurmctld also calls it as ResumeFailProgram after a ResumeTimeout).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime

from hpctool.errors import HpctoolError
from hpctool.twin import capacity, daemons
from hpctool.twin.core import Twin
from hpctool.twin.layout import TwinLayout


def _log(message: str) -> None:
    print(f"{datetime.now().isoformat(timespec='seconds')} {message}", flush=True)


def reset_signals() -> None:
    """slurmctld runs its programs with SIGTERM and others blocked and maybe ignored; a slurmd
    started with that mask would ignore ``scontrol`` and SIGTERM alike."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def expand(twin: Twin, hostlist: str) -> list[str]:
    """``spot-dy-mixed16-[1-2]`` -> node names, by Slurm's own hostlist rules."""
    return twin.slurm.run(["scontrol", "show", "hostnames", hostlist]).stdout.split()


def boot_pid_file(twin: Twin, node: str):
    return twin.run_dir / f"boot-{node}.pid"


def resume(twin: Twin, nodes: list[str]) -> None:
    layout = twin.layout()
    if layout is None:
        _log(f"resume {','.join(nodes)}: no twin layout, nothing to boot")
        return
    faults = capacity.load(twin.paths)
    failed_resources: set[tuple[str, str]] = set()
    for node in nodes:
        entry = layout.node(node)
        if entry is None or not entry.dynamic:
            _log(f"resume {node}: not a dynamic node of the twin, ignored")
            continue
        fault = faults.get(entry.queue, entry.compute_resource)
        # Within the timeout after a failure the resource stays disabled, capacity or not.
        if fault.insufficient() or fault.disabled_until > time.time():
            reason = capacity.RESUME_FAILURE_REASON.format(code=fault.code)
            twin.slurm.update_node(node, "down", reason=reason)
            failed_resources.add((entry.queue, entry.compute_resource))
            _log(f"resume {node}: {reason}")
            continue
        argv = [sys.executable, "-m", "hpctool.twin.power", "--home", str(twin.home), "boot", node,
                "--delay", str(capacity.boot_delay(fault))] + (["--hang"] if fault.boot_hang else [])
        process = daemons.spawn(argv, twin.log_dir / "power.log", env=twin.env())
        boot_pid_file(twin, node).write_text(f"{process.pid}\n")
        _log(f"resume {node}: booting (delay {capacity.boot_delay(fault):g} s{', will hang' if fault.boot_hang else ''})")
    for queue, resource in sorted(failed_resources):
        disable_resource(twin, layout, queue, resource, faults)


def disable_resource(twin: Twin, layout: TwinLayout, queue: str, resource: str,
                     faults: capacity.CapacityFaults) -> None:
    """ParallelCluster's fast failover: the compute resource's other powered-down nodes go DOWN
    for the insufficient-capacity timeout, so the scheduler sends jobs to other resources."""
    from hpctool.twin.conf import power_timings

    fault = faults.get(queue, resource)
    reason = capacity.DISABLED_REASON.format(code=fault.code)
    states = twin.slurm.node_states()
    for node in layout.dynamic_nodes():
        if node.queue == queue and node.compute_resource == resource and states.get(node.name, "").startswith("idle~"):
            twin.slurm.update_node(node.name, "down", reason=reason)
            _log(f"{node.name}: {reason}")
    fault.disabled_until = time.time() + power_timings(layout).capacity_timeout
    faults.put(queue, resource, fault)
    capacity.save(twin.paths, faults)


def boot(twin: Twin, node: str, delay: float, hang: bool) -> None:
    time.sleep(delay)
    if hang:
        _log(f"boot {node}: hanging (the instance never joins; slurmctld's ResumeTimeout takes over)")
        signal.pause()  # until suspend (ResumeFailProgram) stops it
        return
    started = twin.start_node(node, boot=True)
    boot_pid_file(twin, node).unlink(missing_ok=True)
    _log(f"boot {node}: slurmd {'started' if started else 'was already running'}")


def suspend(twin: Twin, nodes: list[str]) -> None:
    for node in nodes:
        pending = daemons.read_pid(boot_pid_file(twin, node))
        if daemons.stop_pid(pending, name=f"boot {node}", program="hpctool.twin.power", timeout=2):
            _log(f"suspend {node}: pending boot cancelled")
        boot_pid_file(twin, node).unlink(missing_ok=True)
        stopped = twin.stop_node(node)
        _log(f"suspend {node}: {'slurmd stopped' if stopped else 'no slurmd was running'}")


def main(argv: list[str] | None = None) -> int:
    reset_signals()
    parser = argparse.ArgumentParser(prog="python -m hpctool.twin.power")
    parser.add_argument("--home", required=True)
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("resume", "suspend"):
        sub.add_parser(action).add_argument("nodelist")
    boot_parser = sub.add_parser("boot")
    boot_parser.add_argument("node")
    boot_parser.add_argument("--delay", type=float, default=0.0)
    boot_parser.add_argument("--hang", action="store_true")
    args = parser.parse_args(argv)
    # The twin with its services: a booting node's host gets what boots with it (SSSD before its
    # slurmd, a spot node's IMDS and handler), as an instance's own start-up brings them.
    from hpctool.twin import Twin as TwinWithServices

    twin = TwinWithServices(args.home)
    try:
        if args.action == "boot":
            boot(twin, args.node, args.delay, args.hang)
        elif args.action == "resume":
            resume(twin, expand(twin, args.nodelist))
        else:
            suspend(twin, expand(twin, args.nodelist))
    except HpctoolError as error:  # slurmctld only logs the exit code: say why here
        _log(f"{args.action} failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
