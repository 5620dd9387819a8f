"""The node image: how long a build from nothing takes, against the floor of any Debian 13 root
(`debootstrap --variant=minbase trixie` with no package of ours), in one run, into temporary
folders (the twin's own image is left alone). Needs root and Debian's archive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpctool.twin import image


def _minbase(folder: Path) -> float:
    mirror = image.debian_mirror()
    start = time.monotonic()
    subprocess.run(["debootstrap", "--variant=minbase", image.SUITE, str(folder)] + ([mirror] if mirror else []),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="hpctool-bench-image-", dir="/var/tmp"))
    try:
        floor = _minbase(scratch / "minbase")
        start = time.monotonic()
        info = image.NodeImage(scratch / "image").build(lambda m: print(f"  {m}", file=sys.stderr, flush=True))
        built = time.monotonic() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"""
## Node image

A build from nothing on this machine (Debian {image.SUITE}, {len(image.PACKAGES)} packages, Slurm {info['slurm']}):

| build | time | size |
| --- | --- | --- |
| `debootstrap --variant=minbase {image.SUITE}` alone (the floor) | {floor:.0f} s | |
| the node image (`hpctool local image build`) | {built:.0f} s | {info['size_mb']} MB |

The node image takes {built / floor:.1f}x the bare root: the rest is Slurm, MariaDB, OpenSSH and
the workflow tools. It is built once per machine (and when its package list changes), by
`make setup`. CPUs: {os.cpu_count()}.
""")


if __name__ == "__main__":
    main()
