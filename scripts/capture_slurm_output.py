"""Capture the Slurm output the parser tests read (tests/data/slurm/<version>/) from the twin.

Run as root with the twin up and idle (`sudo .venv/bin/python scripts/capture_slurm_output.py`):
it submits a few short jobs, drains and requeues, and writes what Slurm printed, unedited, so
the pasted output comes from the Slurm the twin runs (the node image's) and can be made again.
A twin up from a config without accounting (no SlurmSettings.Database) gives the output of a
cluster without slurmdbd instead, into <version>/no-accounting/. With the argument
`associations`, only the accounting tree (two group accounts, a user in each) into
<version>/associations/.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hpctool.slurm.associations import ASSOC_FIELDS, SSHARE_FIELDS
from hpctool.slurm.client import KNOWN_JOBS
from hpctool.slurm.parse import SACCT_FIELDS, SINFO_NODE_FORMAT
from hpctool.twin import Twin

REPO = Path(__file__).resolve().parents[1]
HANDLER_ROW = "JobID:|,Requeue:|,State:|,RestartCnt:|,ReqNodes:|,Name:"


def main() -> int:
    twin = Twin()
    if not twin.is_up():
        print("the twin is not up: `sudo hpctool local up` first", file=sys.stderr)
        return 2
    env = twin.env()
    version = subprocess.run(["sinfo", "-V"], env=env, capture_output=True, text=True, check=True).stdout.split()[1]
    out = REPO / "tests" / "data" / "slurm" / ".".join(version.split(".")[:2])
    out.mkdir(parents=True, exist_ok=True)

    def slurm(*argv: str, check: bool = True) -> str:
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, check=check).stdout

    def save(name: str, text: str) -> None:
        (out / name).write_text(text)
        print(f"{out / name}: {len(text.splitlines())} lines")

    def wait_state(job: str, states: set[str], timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            state = slurm("squeue", "-h", "-t", "all", "-j", job, "-o", "%T", check=False).strip()
            if state in states:
                return
            time.sleep(0.3)
        raise SystemExit(f"job {job} never reached {states}")

    layout = twin.layout()
    assert layout is not None
    if sys.argv[1:] == ["associations"]:
        out = out / "associations"
        out.mkdir(exist_ok=True)
        return capture_associations(slurm, save)
    if not layout.accounting:
        out = out / "no-accounting"
        out.mkdir(exist_ok=True)
        return capture_without_accounting(slurm, save, wait_state, str(twin.home))
    spot = next(n.name for n in layout.static_nodes() if n.spot)
    other = next(n.name for n in layout.static_nodes() if n.spot and n.name != spot)
    cwd = str(twin.home)
    sbatch = ["sbatch", "--parsable", f"--chdir={cwd}", "--output=/dev/null"]

    # A running job with a requeue flag and a name of two words; one without requeue.
    elsewhere = ",".join(n.name for n in layout.nodes if n.spot and n.name != spot)
    keep = slurm(*sbatch, "-p", "spot", "-w", spot, "--requeue", "-J", "keep me|really", "--wrap", "sleep 60").strip()
    plain = slurm(*sbatch, "-p", "spot", f"--exclude={elsewhere}", "--no-requeue", "--wrap", "sleep 60").strip()
    wait_state(keep, {"RUNNING"})
    wait_state(plain, {"RUNNING"})
    save("scontrol-job-running.txt", slurm("scontrol", "-o", "show", "job", keep))
    save("squeue-jobs-on-node.txt", slurm("squeue", "-h", "-w", spot, "-t", "RUNNING", "-O", HANDLER_ROW))
    slurm("scontrol", "requeue", keep)
    save("squeue-jobs-after-requeue.txt", slurm("squeue", "-h", "-t", "all", "-j", f"{keep},{plain}",
                                                 "-O", HANDLER_ROW))
    slurm("scancel", keep, plain)

    # A job requeued once and then completed; a cancelled one; one whose name holds a '|'.
    twice = slurm(*sbatch, "-p", "spot", "-w", other, "--requeue", "-J", "align", "--wrap", "sleep 3").strip()
    wait_state(twice, {"RUNNING"})
    slurm("scontrol", "requeue", twice)
    wait_state(twice, {"COMPLETED"}, timeout=180)
    piped = slurm(*sbatch, "-p", "spot", "-w", other, "-J", "a|b", "--wrap", "true").strip()
    wait_state(piped, {"COMPLETED"})
    time.sleep(2)  # slurmdbd records the end
    fields = ",".join(SACCT_FIELDS)
    save("sacct-requeued.txt", slurm("sacct", "-X", "-D", "--parsable2", "--noheader", "-o", fields,
                                     "-j", f"{twice},{keep},{plain}"))
    save("sacct-pipe-in-name.txt", slurm("sacct", "-X", "-D", "--parsable2", "--noheader", "-o", fields,
                                         "-j", piped))

    # A node drained by the spot handler's reason; then its slurmd stops answering (Slurm appends).
    slurm("scontrol", "update", f"nodename={other}", "state=drain",
          "reason=spot-interruption 2026-12-07T10:40:00Z")
    save("scontrol-node-drained.txt", slurm("scontrol", "-o", "show", "node", other))
    save("scontrol-node-idle.txt", slurm("scontrol", "-o", "show", "node", spot))
    save("sinfo-nodes.txt", slurm("sinfo", "-h", "-N", "-o", "%N|%T"))
    save("sinfo-queue-nodes.txt", slurm("sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT))
    save("scontrol-show-config.txt", slurm("scontrol", "show", "config"))
    slurm("scontrol", "update", f"nodename={other}", "state=resume")
    return 0


def capture_without_accounting(slurm, save, wait_state, cwd: str) -> int:
    """What a cluster without slurmdbd prints: sacct's refusal, the config, and the jobs slurmctld
    knows (a finished, a failed, a running job and an array with pending tasks)."""
    sbatch = ["sbatch", "--parsable", f"--chdir={cwd}", "--output=/dev/null", "-p", "compute"]
    done = slurm(*sbatch, "-J", "done", "--wrap", "true").strip()
    failed = slurm(*sbatch, "-J", "fails", "--wrap", "exit 3").strip()
    wait_state(done, {"COMPLETED"})
    wait_state(failed, {"FAILED"})
    running = slurm(*sbatch, "-J", "runs", "--wrap", "sleep 60").strip()
    wait_state(running, {"RUNNING"})
    array = slurm(*sbatch, "-J", "tasks", "--array=0-5", "--wrap", "sleep 60").strip()
    time.sleep(2)
    refused = subprocess.run(["sacct", "-j", done], env=Twin().env(), capture_output=True, text=True, check=False)
    save("sacct-disabled.txt", f"exit {refused.returncode}\n{refused.stderr}{refused.stdout}")
    save("scontrol-show-config.txt", slurm("scontrol", "show", "config"))
    form, _ = KNOWN_JOBS
    save("squeue-known-jobs.txt", slurm("squeue", "-h", "--states=all", "--array", "-o", form))
    save("scontrol-show-jobs.txt", slurm("scontrol", "-o", "show", "job"))
    slurm("scancel", running, array)
    return 0


def capture_associations(slurm, save) -> int:
    """Two group accounts under root, a user in each (one with 2 shares), then removed again."""
    slurm("sacctmgr", "-i", "add", "account", "genomics,imaging", "parent=root", "Description=group",
          "Organization=hpctool")
    slurm("sacctmgr", "-i", "add", "user", "alice", "account=genomics", "DefaultAccount=genomics")
    slurm("sacctmgr", "-i", "add", "user", "bob", "account=imaging", "DefaultAccount=imaging", "Fairshare=2")
    try:
        save("sacctmgr-show-assoc.txt", slurm("sacctmgr", "-n", "-P", "show", "assoc", f"format={','.join(ASSOC_FIELDS)}"))
        save("sshare.txt", slurm("sshare", "-a", "-n", "-P", "-o", ",".join(SSHARE_FIELDS)))
    finally:
        slurm("sacctmgr", "-i", "delete", "user", "name=alice,bob", check=False)
        slurm("sacctmgr", "-i", "delete", "account", "name=genomics,imaging", check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

