"""What the twin needs of this machine, beside its hosts: the folders every host shares, the Slurm
clients of the node image run on the machine itself, and the machine anchor.

- Shared folders: what a cluster shares from its head node (``/home``, the admin's home, the
  folder hpctool runs from) is seen at the same path on every host.
- Slurm's clients on the machine: the image's Slurm 24.11 clients, run with the image's own
  dynamic loader and libraries, so a shell on the machine (``eval "$(hpctool local env)"``)
  drives the twin's Slurm with its own version; the machine's Slurm, if any, is never used.
- The anchor: a process in the machine's own namespaces; the Resume/Suspend programs that
  slurmctld runs on the head node enter them to boot and end hosts, as an EC2 call leaves the
  instance for the cloud's control plane.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from hpctool import shipped
from hpctool.atomic import write_atomic
from hpctool.errors import SetupError
from hpctool.twin import daemons

CLIENTS = ("sbatch", "squeue", "sacct", "sinfo", "scontrol", "scancel", "sacctmgr", "srun", "salloc",
           "sattach", "sreport", "sstat", "sprio", "sshare", "sdiag", "strigger", "sbcast")
# Machine folders never bound into a host (the image has its own).
SYSTEM = {"/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/var", "/proc", "/sys", "/dev", "/run", "/boot"}


def triplet() -> tuple[str, str]:
    """Debian's multiarch folder and the dynamic loader's path in the image."""
    machine = platform.machine()
    if machine in ("x86_64", "amd64"):
        return "x86_64-linux-gnu", "lib64/ld-linux-x86-64.so.2"
    if machine in ("aarch64", "arm64"):
        return "aarch64-linux-gnu", "lib/ld-linux-aarch64.so.1"
    raise SetupError(f"the twin's node image is not built for {machine}", "use an x86_64 or arm64 machine")


def plugin_dir(root: Path) -> str:
    return f"{root}/usr/lib/{triplet()[0]}/slurm-wlm"


def render_client(program: str, root: Path, slurm_conf: Path) -> str:
    """A machine-side wrapper of one of the image's Slurm clients. ``root`` leads to ``/`` inside
    the image (see :mod:`hpctool.twin.image`), so the same wrapper also works inside a host."""
    multiarch, loader = triplet()
    libraries = f"{root}/usr/lib/{multiarch}/slurm-wlm:{root}/usr/lib/{multiarch}"
    return (
        "#!/bin/sh\n"
        f"# Written by hpctool local up: Slurm's {program} from the twin's node image.\n"
        f': "${{SLURM_CONF:={slurm_conf}}}"\n'
        "export SLURM_CONF\n"
        f'exec {root}/{loader} --library-path {libraries} {root}/usr/bin/{program} "$@"\n'
    )


def write_clients(bin_dir: Path, root: Path, slurm_conf: Path) -> None:
    for program in CLIENTS:
        text = render_client(program, root, slurm_conf)
        target = bin_dir / program
        if not target.exists() or target.read_text() != text:
            write_atomic(target, text, mode=0o755)


def shared_folders(home: Path, extra: str | None = None) -> tuple[Path, ...]:
    """Folders every host sees at their own path: homes, the twin's folder, the Python and the
    checkout or install hpctool runs from (its jobs run it on the nodes), and
    ``HPCTOOL_TWIN_SHARE`` (colon-separated)."""
    candidates = [Path.home(), Path("/home"), home, Path(sys.prefix), Path(sys.base_prefix),
                  shipped.data_root()]
    extra = os.environ.get("HPCTOOL_TWIN_SHARE", "") if extra is None else extra
    candidates += [Path(p) for p in extra.split(":") if p]
    resolved: list[Path] = []
    for path in candidates:
        try:
            real = path.resolve()
        except OSError:
            continue
        if real.is_dir() and str(real) not in SYSTEM and len(real.parts) > 1:
            resolved.append(real)
    keep = []
    for path in sorted(set(resolved), key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(parent) for parent in keep):
            keep.append(path)
    return tuple(keep)


def anchor_alive(pid_file: Path) -> bool:
    pid = daemons.read_pid(pid_file)
    return bool(pid and daemons.pid_alive(pid) and daemons.runs_program(pid, "sleep"))


def start_anchor(pid_file: Path, log: Path) -> bool:
    if anchor_alive(pid_file):
        return False
    process = daemons.spawn(["sleep", "infinity"], log)
    write_atomic(pid_file, f"{process.pid}\n")
    return True


def stop_anchor(pid_file: Path) -> bool:
    stopped = daemons.stop_pid(daemons.read_pid(pid_file), name="sleep anchor", timeout=2)
    pid_file.unlink(missing_ok=True)
    return stopped


def people(passwd: str, group: str) -> tuple[str, str]:
    """The machine's people (uid 1000 and up, not ``nobody``) and their groups, in
    passwd/group format for the hosts' ``libnss-extrausers``: one user, one uid, one home on every
    host, as a cluster's directory gives. Pure."""
    users = []
    uids = set()
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[2].isdigit() and 1000 <= int(fields[2]) < 65534:
            users.append(":".join(fields[:1] + ["x"] + fields[2:]))
            uids.add(fields[0])
    groups = []
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) != 4 or not fields[2].isdigit():
            continue
        if 1000 <= int(fields[2]) < 65534:  # the image has its own system groups
            members = [m for m in fields[3].split(",") if m in uids]
            groups.append(":".join([fields[0], "x", fields[2], ",".join(members)]))
    return "\n".join(users) + ("\n" if users else ""), "\n".join(groups) + ("\n" if groups else "")


def write_people(folder: Path, passwd: Path = Path("/etc/passwd"), group: Path = Path("/etc/group")) -> None:
    users, groups = people(passwd.read_text(), group.read_text())
    for name, text in (("passwd", users), ("group", groups)):
        target = folder / name
        if not target.exists() or target.read_text() != text:
            write_atomic(target, text)


# What the machine itself needs: the rest comes from the node image.
REQUIRED_PROGRAMS = ["unshare", "nsenter", "chroot", "ip", "mount"]


def check_prerequisites(euid: int | None = None, path: str | None = None) -> None:
    """Root and the programs that make hosts, or a SetupError naming `make setup`."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SetupError(
            "the local twin must run as root (it makes network namespaces, a bridge and mounts)",
            "run it as root, e.g. `sudo hpctool local up`",
        )
    missing = [p for p in REQUIRED_PROGRAMS if daemons.find_program(p, path) is None]
    if missing:
        raise SetupError(
            f"programs the twin needs are not installed: {', '.join(missing)}",
            "run `make setup` (installs iproute2, util-linux, debootstrap, the node image and the venv)",
        )
