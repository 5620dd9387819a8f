"""The node image: a Debian 13 root, built by hpctool from Debian's packages, that every host of
the twin (head node and compute nodes) runs from.

ParallelCluster 3.16 ships Slurm 25.11; no Debian release has it, and trixie's 24.11 is the
closest (sid moves too fast to pin). The image is the same on a Debian 12 and a Debian 13 machine,
so the twin never depends on the machine's own Slurm.

The image is built once with ``debootstrap`` into a new folder, checked, and only then moved into
place, so a half-built image is never used. ``image.json`` inside records the package list's
digest: a change of the list (a new hpctool) makes :meth:`NodeImage.ensure` rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpctool.atomic import write_atomic
from hpctool.errors import SetupError

SUITE = "trixie"
SLURM_LINE = "24.11"
# What every node of the twin needs: Slurm's daemons and clients, munge, the accounting database
# (only the head node starts it), Lmod and the workflow tools (the bootstrap's modules, the
# germline rules), sshd (hpctool local ssh, hpctool remote), the directory (OpenLDAP's slapd on the
# head node; sssd with its LDAP provider, NSS and PAM modules on every node, as ParallelCluster's
# DirectoryService sets up: hpctool.twin.directory), Node.js for the hub's configurable-http-proxy
# on the head node (bootstrap/head.d installs it there), curl and the AWS CLI that the node
# bootstrap calls (IMDS, S3; debootstrap resolves no virtual package, so awscli's cffi backend is
# named), and what the hosts run at boot.
PACKAGES = (
    "slurmctld", "slurmd", "slurmdbd", "slurm-client", "munge", "mariadb-server",
    "lmod", "openssh-server", "openssh-client", "rsync",
    "bwa", "samtools", "bcftools", "tabix",
    "slapd", "ldap-utils", "sssd-ldap", "sssd-tools", "libnss-sss", "libpam-sss",
    "python3", "procps", "iproute2", "libnss-extrausers", "sudo",
    "nodejs", "curl", "awscli", "python3-cffi-backend", "ca-certificates",
)
IMAGE_FORMAT = 2  # bump when the post-build steps change
DEFAULT_IMAGE_DIR = Path("/var/lib/hpctool/image")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

Progress = Callable[[str], None]


def image_dir() -> Path:
    env = os.environ.get("HPCTOOL_IMAGE_DIR")
    return Path(env) if env else DEFAULT_IMAGE_DIR


def packages_digest(packages: tuple[str, ...] = PACKAGES, suite: str = SUITE) -> str:
    text = json.dumps({"suite": suite, "packages": sorted(packages), "format": IMAGE_FORMAT})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def debian_mirror(sources: list[Path] | None = None) -> str | None:
    """The Debian archive this machine's apt is set up with (the first ``Types: deb`` source that
    is neither the security archive nor a third party's), so the image comes from the same place
    as the machine's own packages. None: debootstrap's default."""
    if sources is None:
        sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in _deb_uris(text, deb822=path.suffix == ".sources"):
            if "security" not in uri and re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return None


def _deb_uris(text: str, deb822: bool) -> list[str]:
    if not deb822:
        return [line.split()[1] if not line.split()[1].startswith("[") else line.split()[2]
                for line in text.splitlines() if line.startswith("deb ") and len(line.split()) > 2]
    uris = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            key, _, value = line.partition(":")
            if value and not line.startswith(("#", " ")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and "uris" in fields:
            uris += fields["uris"].split()
    return uris


@dataclass(frozen=True)
class NodeImage:
    """The image folder: ``root/`` (the Debian root) and ``root/image.json`` (what it holds)."""

    folder: Path

    @property
    def root(self) -> Path:
        return self.folder / "root"

    @property
    def stamp(self) -> Path:
        return self.root / "image.json"

    def info(self) -> dict[str, Any]:
        """What the image holds, or ``present: False``; ``current`` is False when it is outdated."""
        try:
            data = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return {"present": False, "root": str(self.root), "current": False}
        data.update(present=True, root=str(self.root), current=data.get("digest") == packages_digest())
        return data

    def require(self) -> Path:
        """The root, or a SetupError naming the one command that builds it."""
        info = self.info()
        if not info["present"]:
            raise SetupError(f"the twin's node image is not built ({self.root})",
                             "build it with `hpctool local image build` (or `make setup`), about two minutes")
        if not info["current"]:
            raise SetupError(f"the twin's node image at {self.root} is outdated (its package list changed)",
                             "rebuild it with `hpctool local image build` (the twin must be down)")
        return self.root

    def ensure(self, progress: Progress, in_use: bool = False) -> dict[str, Any]:
        """Build the image when it is missing or outdated; return :meth:`info`."""
        info = self.info()
        if info["present"] and info["current"]:
            return info
        if in_use:
            raise SetupError(f"the node image at {self.root} is outdated and a twin runs on it",
                             "stop it (`hpctool local down`), then `hpctool local image build`")
        return self.build(progress)

    def build(self, progress: Progress) -> dict[str, Any]:
        debootstrap = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if debootstrap is None:
            raise SetupError("debootstrap is not installed", "run `make setup` (or `apt-get install debootstrap`)")
        if os.geteuid() != 0:
            raise SetupError("building the node image needs root", "run `sudo hpctool local image build`")
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f"root.new-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        for leftover in self.folder.glob("root.new-*"):  # a build killed halfway
            shutil.rmtree(leftover, ignore_errors=True)
        began = time.monotonic()
        mirror = debian_mirror()
        progress(f"building the node image: Debian {SUITE} with Slurm {SLURM_LINE} ({len(PACKAGES)} packages)")
        argv = [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        if DEBIAN_KEYRING.exists():
            argv.append(f"--keyring={DEBIAN_KEYRING}")
        argv += [SUITE, str(staging)] + ([mirror] if mirror else [])
        log = self.folder / "build.log"
        with open(log, "w") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
            raise SetupError(f"debootstrap failed (exit {result.returncode}):\n{tail}",
                             f"see {log}; the machine must reach Debian's archive")
        slurm = _finish(staging, self.root)
        data = {"suite": SUITE, "debian": _read(staging / "etc/debian_version"), "slurm": slurm,
                "packages": list(PACKAGES), "digest": packages_digest(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - began, 1), "size_mb": _size_mb(staging)}
        write_atomic(staging / "image.json", json.dumps(data, indent=2) + "\n")
        old = self.folder / f"root.old-{os.getpid()}"
        if self.root.exists():
            self.root.rename(old)
        staging.rename(self.root)
        shutil.rmtree(old, ignore_errors=True)
        progress(f"node image built in {data['build_seconds']:.0f} s: Slurm {slurm}, {data['size_mb']} MB")
        return self.info()


def _finish(staging: Path, final_root: Path) -> str:
    """The post-build steps; returns the image's Slurm version (checked against the pinned line)."""
    slurm = _slurm_version(staging)
    if not slurm.startswith(SLURM_LINE):
        raise SetupError(f"the image has Slurm {slurm or 'unknown'}, not {SLURM_LINE}",
                         f"Debian {SUITE} changed its Slurm; pin the twin to the new line in hpctool")
    # The final root's own path, inside itself, leads to its top: a path under the image is then
    # valid both on the machine (where the host-side Slurm clients run from it) and in the nodes.
    inner = staging / str(final_root).lstrip("/")
    inner.parent.mkdir(parents=True, exist_ok=True)
    if not inner.is_symlink():
        inner.symlink_to("/")
    # Users and groups of the twin's people come from a folder the twin fills (libnss-extrausers),
    # as sssd serves them from the directory on a cluster.
    nsswitch = staging / "etc/nsswitch.conf"
    text = nsswitch.read_text()
    text = re.sub(r"^(passwd|group|shadow):\s+files.*$", lambda m: f"{m.group(1)}: files extrausers", text,
                  flags=re.MULTILINE)
    nsswitch.write_text(text)
    (staging / "var/lib/extrausers").mkdir(parents=True, exist_ok=True)
    (staging / "run/munge").mkdir(parents=True, exist_ok=True)
    # Nothing starts at install in a chroot; no daemon must start from the image on its own either.
    (staging / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    return slurm


def _slurm_version(root: Path) -> str:
    status = root / "var/lib/dpkg/status"
    try:
        text = status.read_text(errors="replace")
    except OSError:
        return ""
    match = re.search(r"^Package: slurm-client\n(?:[^\n]+\n)*?Version: (\S+)", text, flags=re.MULTILINE)
    return match.group(1) if match else ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _size_mb(root: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total // (1024 * 1024)


def image_user(root: Path, name: str) -> tuple[int, int]:
    """A system user's uid and gid in the node image (the machine may have no such user): the
    daemons that drop root in the hosts (munged, slapd) own their files by these numbers."""
    try:
        lines = (root / "etc/passwd").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split(":")
        if fields[0] == name and len(fields) > 3:
            return int(fields[2]), int(fields[3])
    raise SetupError(f"the node image has no {name} user", "rebuild it: `hpctool local image build`")


def default_image() -> NodeImage:
    return NodeImage(image_dir())
