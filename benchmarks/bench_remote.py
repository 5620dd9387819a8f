"""`hpctool remote` against the tools people use by hand, through a real sshd on 127.0.0.1
(the head node) in one run:

- fetch of a run folder (hundreds of files, a few hundred MB): ``hpctool remote fetch`` vs plain
  ``rsync -e ssh`` vs ``scp -r``, first copy and an unchanged second copy;
- submit (upload a script + sbatch): ``RemoteSession.submit`` vs ``scp`` + ``ssh HOST sbatch``;
- connection reuse: 20 Slurm queries over one connection vs 20 ``ssh HOST squeue`` processes.

The twin's queue is drained during the submit part, so only submission is timed; every job is
cancelled afterwards. Loopback has no latency: on a real link every saved handshake saves more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import twin_up
from hpctool.remote.connection import Remote, SshSettings
from hpctool.remote.manifest import Manifest, RemoteRun, Submission
from hpctool.remote.session import RemoteSession
from hpctool.twin import Twin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.sshd_lab import SshLab

FILES = 300
SMALL = 256 * 1024  # 300 x 256 KiB = 75 MiB of small files ...
BIG = [64 * 1024 * 1024] * 3  # ... + 3 x 64 MiB "BAMs": ~267 MiB in all
SUBMITS = 10
QUERIES = 20


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _timed(argv: list[str] | None = None, fn=None) -> float:
    start = time.monotonic()
    if argv is not None:
        subprocess.run(argv, check=True, capture_output=True)
    else:
        fn()
    return time.monotonic() - start


def _make_run_folder(folder: Path) -> int:
    total = 0
    for i in range(FILES):
        path = folder / f"sample{i // 30}" / f"part{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(SMALL))
        total += SMALL
    for i, size in enumerate(BIG):
        with open(folder / f"aligned{i}.bam", "wb") as handle:
            handle.writelines(os.urandom(1 << 20) for _ in range(size // (1 << 20)))
        total += size
    return total


def main() -> None:
    twin = Twin(progress=_progress)
    with tempfile.TemporaryDirectory(prefix="hpctool-bench-remote-") as tmp, twin.exclusive_use():
        root = Path(tmp)
        twin_up(twin)
        lab = SshLab(root / "lab")
        head = lab.start("head", set_env={"SLURM_CONF": str(twin.slurm_conf)})
        lab.trust(head)
        lab.alias("head", head)
        settings = SshSettings(config=lab.client_config, known_hosts=lab.known_hosts)
        ssh = ["ssh", "-F", str(lab.client_config), "-o", f"UserKnownHostsFile={lab.known_hosts}"]
        try:
            # -- fetch -------------------------------------------------------------------------
            folder = root / "cluster" / "run1"
            total = _make_run_folder(folder)
            manifest = Manifest(root / "runs.json")
            manifest.add(RemoteRun("run1", "head", str(folder), "batch", []))
            _progress(f"run folder: {FILES + len(BIG)} files, {total / 2**20:.0f} MiB")

            def hpctool_fetch(dest: Path) -> None:
                with Remote("head", settings) as remote:
                    RemoteSession(remote, manifest).fetch("run1", dest)

            cases = {
                "hpctool remote fetch": lambda d: _timed(fn=lambda: hpctool_fetch(d)),
                "rsync -a -e ssh": lambda d: _timed(["rsync", "-a", "-e", " ".join(ssh), f"head:{folder}/", f"{d}/"]),
                "scp -r": lambda d: _timed(["scp", "-q", "-r", "-F", str(lab.client_config), "-o",
                                            f"UserKnownHostsFile={lab.known_hosts}", f"head:{folder}", str(d)]),
            }
            fetch = {}
            for name, case in cases.items():
                dest = root / "laptop" / name.replace(" ", "_")
                first = case(dest)
                second = case(dest)  # nothing changed
                fetch[name] = (first, second)
                shutil.rmtree(dest, ignore_errors=True)
                _progress(f"{name}: {first:.2f} s, unchanged again {second:.2f} s")
            shutil.rmtree(folder)

            # -- submit ------------------------------------------------------------------------
            queue = twin.layout().queues[0]["name"]
            for node in twin.layout().queues[0]["nodes"]:
                twin.slurm.update_node(node, "drain", reason="bench: submission only")
            script = root / "job.sh"
            script.write_text("#!/bin/bash\necho hello\n")
            remote_root = root / "cluster-runs"
            try:
                start = time.monotonic()
                with Remote("head", settings) as remote:
                    session = RemoteSession(remote, Manifest(root / "runs2.json"), root=str(remote_root))
                    for _ in range(SUBMITS):
                        session.submit(Submission(script, queue=queue, name="bench-remote"))
                ours = (time.monotonic() - start) / SUBMITS
                start = time.monotonic()
                for i in range(SUBMITS):
                    target = remote_root / f"byhand{i}"
                    subprocess.run([*ssh, "head", "mkdir", "-p", str(target)], check=True, capture_output=True)
                    subprocess.run(["scp", "-q", "-F", str(lab.client_config), "-o",
                                    f"UserKnownHostsFile={lab.known_hosts}", str(script), f"head:{target}/"],
                                   check=True, capture_output=True)
                    subprocess.run([*ssh, "head", "sbatch", "--parsable", f"--partition={queue}",
                                    "--job-name=bench-remote", f"--chdir={target}", f"{target}/job.sh"],
                                   check=True, capture_output=True)
                by_hand = (time.monotonic() - start) / SUBMITS
                sbatch_only_start = time.monotonic()
                for _ in range(SUBMITS):
                    subprocess.run([*ssh, "head", "sbatch", "--parsable", f"--partition={queue}",
                                    "--job-name=bench-remote", "--wrap", "'echo hello'"], check=True, capture_output=True)
                sbatch_only = (time.monotonic() - sbatch_only_start) / SUBMITS
            finally:
                twin.slurm.run(["scancel", "-n", "bench-remote"])
                for node in twin.layout().queues[0]["nodes"]:
                    twin.slurm.update_node(node, "resume")
            _progress(f"submit: hpctool {ours:.3f} s, scp+ssh sbatch {by_hand:.3f} s, ssh sbatch --wrap {sbatch_only:.3f} s")

            # -- connection reuse --------------------------------------------------------------
            start = time.monotonic()
            with Remote("head", settings) as remote:
                for _ in range(QUERIES):
                    remote.run(["squeue", "-h", "-o", "%i"], check=True)
            reuse = time.monotonic() - start
            start = time.monotonic()
            for _ in range(QUERIES):
                subprocess.run([*ssh, "head", "squeue", "-h", "-o", "%i"], check=True, capture_output=True)
            processes = time.monotonic() - start
            start = time.monotonic()
            for _ in range(QUERIES):
                with Remote("head", settings) as remote:
                    remote.run(["squeue", "-h", "-o", "%i"], check=True)
            reconnect = time.monotonic() - start
            _progress(f"{QUERIES} queries: one connection {reuse:.2f} s, ssh each {processes:.2f} s, "
                      f"new fabric connection each {reconnect:.2f} s")
        finally:
            lab.stop()

    base_first, base_second = fetch["rsync -a -e ssh"]
    print(f"\n## remote (hpctool remote over sshd on 127.0.0.1)\n\nfetch of a run folder: {FILES + len(BIG)} "
          f"files, {total / 2**20:.0f} MiB\n")
    print("| how | first copy | ratio to rsync | unchanged, again | ratio to rsync |\n|---|---|---|---|---|")
    for name, (first, second) in fetch.items():
        print(f"| {name} | {first:.2f} s | {first / base_first:.2f}x | {second:.2f} s | {second / base_second:.2f}x |")
    print(f"\nsubmit (upload a script, sbatch it), mean of {SUBMITS}:\n")
    print("| how | per submit | ratio |\n|---|---|---|")
    print(f"| `RemoteSession.submit` (one connection: run folder, SFTP upload, sbatch) | {ours:.3f} s | 1.00x |")
    print(f"| `ssh mkdir` + `scp` + `ssh sbatch` | {by_hand:.3f} s | {by_hand / ours:.2f}x |")
    print(f"| `ssh HOST sbatch --wrap` (no upload, no run folder) | {sbatch_only:.3f} s | {sbatch_only / ours:.2f}x |")
    print(f"\nconnection reuse, {QUERIES} `squeue` calls:\n")
    print("| how | total | ratio |\n|---|---|---|")
    print(f"| one fabric connection | {reuse:.2f} s | 1.00x |")
    print(f"| `ssh HOST squeue` each | {processes:.2f} s | {processes / reuse:.2f}x |")
    print(f"| a new fabric connection each | {reconnect:.2f} s | {reconnect / reuse:.2f}x |")
