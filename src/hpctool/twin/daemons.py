"""Starting, watching and stopping the local twin's daemons (munged, mariadbd, slurm*).

Slurm's *client* commands go through :mod:`hpctool.slurm`; this module owns daemon processes:
it spawns them detached, waits until they answer, and stops them by PID file only, so it never
touches a process the twin did not start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hpctool.errors import SetupError, TwinError
from hpctool.polling import poll_until

# Daemons live in sbin, which a non-login root shell (CI) may not have on PATH.
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_program(name: str, path: str | None = None) -> str | None:
    search = path if path is not None else f"{os.environ.get('PATH', '')}:{SBIN_PATH}"
    return shutil.which(name, path=search)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0): look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(ports: dict[str, int]) -> None:
    """Raise naming the first port (and the setting it belongs to) that something listens on."""
    for setting, port in ports.items():
        if port_in_use(port):
            raise SetupError(
                f"port {port} ({setting}) is already in use",
                "stop what listens there (`ss -ltnp`), or choose another range with "
                "HPCTOOL_TWIN_PORT_BASE=<port>",
            )


def spawn(argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a process detached from our session; its output goes to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def run_quiet(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60,
              input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a helper command (install, client) to completion; raise TwinError with its output."""
    try:
        # errors="replace": a failing tool may print bytes that are not UTF-8 (slapadd does)
        result = subprocess.run(list(argv), env=env, input=input_text, capture_output=True,
                                text=True, errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TwinError(f"{argv[0]} did not finish within {timeout:.0f} s", "see the twin's logs") from exc
    if result.returncode != 0:
        raise TwinError(
            f"{' '.join(argv[:3])} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-800:]}",
            "see the output above",
        )
    return result


def wait_until(
    ready: Callable[[], bool],
    *,
    name: str,
    log_file: Path,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``ready`` until true; on time-out or death raise with the daemon's last log lines."""
    poll_until(ready, timeout=timeout, interval=interval,
               on_timeout=lambda: daemon_failed(name, log_file, f"was not ready within {timeout:.0f} s"),
               give_up=(lambda: not alive()) if alive is not None else None,
               on_give_up=lambda: daemon_failed(name, log_file, "exited during start-up"))


def daemon_failed(name: str, log_file: Path, what: str) -> TwinError:
    last = tail(log_file)
    body = f"\n--- last lines of {log_file} ---\n{last}" if last else f" (its log {log_file} is empty)"
    return TwinError(f"{name} {what}{body}", f"read the whole log: less {log_file}")


def runs_program(pid: int, program: str) -> bool:
    """True when process ``pid`` is ``program`` (a PID file may outlive its process, and the PID
    may since belong to something else, e.g. after a reboot)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    # `slurmd ...`, `python3 -I -S /path/script ...` and `python3 -m package.module ...`.
    # A daemon that renames itself ("sshd: /usr/sbin/sshd ... [listener]") keeps its name first.
    return any(Path(word).name.rstrip(":") == program for word in argv if word and not word.startswith("-"))


def stop_pid(pid: int | None, *, name: str, program: str | None = None, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when a process was stopped.

    ``program`` (default: the first word of ``name``, as in ``slurmd spot-st-x-1``) is the
    executable, script file name or ``-m`` module the process must run: a live PID running
    anything else is not ours and is left alone.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    if not runs_program(pid, program or name.split()[0]):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
