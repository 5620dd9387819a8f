"""`hpctool remote`'s connection layer and its faults, against real OpenSSH servers this module
starts on 127.0.0.1 (no Slurm needed): aliases, ProxyJump through a bastion, host key refusal,
authentication failures, dropped connections, an interrupted and resumed fetch, and no secret
ever in the output."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpctool.errors import RemoteError, SlurmError, UsageError
from hpctool.remote.connection import Remote, SshSettings
from hpctool.remote.manifest import Manifest, RemoteRun, Submission
from hpctool.remote.session import RemoteSession
from support.sshd_lab import SshLab, free_port, keygen

PASSPHRASE = "correct-horse-battery-staple-42"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, slurm_clients) -> SshLab:
    lab = SshLab(tmp_path_factory.mktemp("sshlab"))
    # A head node has Slurm's clients (the node image's); no controller answers them here.
    head = lab.start("head", set_env={"PATH": f"{slurm_clients}:/usr/local/bin:/usr/bin:/bin"})
    bastion = lab.start("bastion")
    # A host whose PATH has the basics but no Slurm: a machine that is not a head node.
    bare = lab.root / "bare-bin"
    bare.mkdir()
    for tool in ("sh", "bash", "mkdir", "cd", "pwd", "find", "rm", "mv", "cat", "test", "ls", "tail", "env"):
        for where in ("/usr/bin", "/bin"):
            if Path(where, tool).exists():
                (bare / tool).symlink_to(Path(where, tool))
                break
    noslurm = lab.start("noslurm", set_env={"PATH": str(bare)})
    for server in (head, bastion, noslurm):
        lab.trust(server)
    lab.alias("head", head)
    lab.alias("bastion", bastion)
    lab.alias("inner", head, proxy_jump="bastion")
    lab.alias("noslurm", noslurm)
    # The SSM transport is a ProxyCommand; the same mechanism, with OpenSSH's -W through the bastion:
    jump = f"ssh -F {lab.client_config} -o UserKnownHostsFile={lab.known_hosts} -o BatchMode=yes -W %h:%p bastion"
    lab.alias("head-via-command", head, extra={"ProxyCommand": jump})
    lab.alias("refused", head, port=free_port())  # nothing listens there
    stranger = keygen(lab.root / "id_stranger")
    lab.alias("stranger", head, identity=stranger)
    locked = keygen(lab.root / "id_locked", passphrase=PASSPHRASE)
    lab.alias("locked", head, identity=locked)
    yield lab
    lab.stop()


def settings(lab: SshLab, **kwargs) -> SshSettings:
    return SshSettings(config=lab.client_config, known_hosts=kwargs.pop("known_hosts", lab.known_hosts), **kwargs)


def cli(lab: SshLab, *args: str, home: Path, known_hosts: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HPCTOOL_SSH_CONFIG=str(lab.client_config), HPCTOOL_KNOWN_HOSTS=str(known_hosts or lab.known_hosts),
               HPCTOOL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "hpctool.cli", "remote", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def assert_clean_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "\nhint: " in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_a_command_runs_on_the_alias_host(lab):
    with Remote("head", settings(lab)) as remote:
        result = remote.run("echo out; echo err >&2; exit 3")
        assert (result.code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        assert remote.run(["printf", "%s", "two words"]).stdout == "two words"


def test_proxyjump_goes_through_the_bastion(lab):
    log = lab.servers["bastion"].log
    before = log.read_text().count("Accepted publickey")
    with Remote("inner", settings(lab)) as remote:
        assert remote.run("echo $SSH_CONNECTION").stdout.split()[2] == "127.0.0.1"
    assert log.read_text().count("Accepted publickey") == before + 1


def test_proxycommand_transport_like_ssm(lab, tmp_path):
    log = lab.servers["bastion"].log
    before = log.read_text().count("Accepted publickey")
    with Remote("head-via-command", settings(lab)) as remote:
        assert remote.run("echo through").stdout == "through\n"
    assert log.read_text().count("Accepted publickey") == before + 1
    known = tmp_path / "known_hosts"  # the head node's own key is still checked at the end of the pipe
    known.write_text(lab.servers["bastion"].known_hosts_line())
    with pytest.raises(RemoteError, match="host key of head-via-command .* is unknown"):
        Remote("head-via-command", settings(lab, known_hosts=known))


def test_unknown_alias_is_a_clear_error(lab, tmp_path):
    result = cli(lab, "no-such-alias", "status", home=tmp_path)
    assert_clean_error(result, "unknown host alias 'no-such-alias'", "Host no-such-alias")


def test_refused_connection_is_a_clear_error(lab, tmp_path):
    assert_clean_error(cli(lab, "refused", "status", home=tmp_path), "refused", "sshd running")


def test_authentication_failure_names_the_key_and_agent(lab, tmp_path):
    result = cli(lab, "stranger", "status", home=tmp_path)
    assert_clean_error(result, "authentication to stranger", "id_stranger", "no ssh-agent")
    assert Path(lab.root / "id_stranger").read_text().splitlines()[1] not in result.stderr


def test_an_encrypted_key_never_shows_its_passphrase(lab, tmp_path):
    with pytest.raises(RemoteError) as caught:
        Remote("locked", settings(lab))
    text = str(caught.value)
    assert "id_locked" in text and PASSPHRASE not in text
    result = cli(lab, "locked", "status", home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    private = (lab.root / "id_locked").read_text()
    for line in private.splitlines()[1:-1]:
        assert line not in result.stderr + result.stdout


def test_unknown_host_key_is_refused_unless_accept_new(lab, tmp_path):
    known = tmp_path / "known_hosts"
    result = cli(lab, "inner", "status", home=tmp_path, known_hosts=known)
    assert_clean_error(result, "host key of bastion", "is unknown", "--accept-new")  # the first hop is checked
    assert not known.exists()
    with Remote("inner", settings(lab, known_hosts=known, accept_new=True)) as remote:
        assert remote.run("true").ok
    recorded = known.read_text()
    for name in ("bastion", "head"):
        assert lab.servers[name].known_hosts_line().split()[2] in recorded
    with Remote("inner", settings(lab, known_hosts=known)) as remote:  # now known: no flag needed
        assert remote.run("true").ok


def test_a_changed_host_key_is_always_refused(lab, tmp_path):
    known = tmp_path / "known_hosts"
    head = lab.servers["head"]
    impostor = Path(f"{keygen(tmp_path / 'other_host_key')}.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{head.port} {impostor[0]} {impostor[1]}\n")
    for accept_new in (False, True):
        with pytest.raises(RemoteError) as caught:
            Remote("head", settings(lab, known_hosts=known, accept_new=accept_new))
        assert "CHANGED" in caught.value.message and "ssh-keygen -R" in caught.value.hint
    assert known.read_text().count("\n") == 1  # nothing was added or replaced


def test_slurm_missing_on_the_host(lab, tmp_path):
    with Remote("noslurm", settings(lab)) as remote:
        session = RemoteSession(remote, Manifest(tmp_path / "runs.json"), root=str(tmp_path / "runs"))
        with pytest.raises(SlurmError, match="Slurm is not installed on noslurm"):
            session.status()
        script = tmp_path / "job.sh"
        script.write_text("#!/bin/sh\necho hi\n")
        with pytest.raises(SlurmError, match="not installed"):
            session.submit(Submission(script))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert Manifest(tmp_path / "runs.json").load() == {}


def test_a_failed_upload_leaves_no_run_folder(lab, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    root = tmp_path / "runs"
    with Remote("head", settings(lab)) as remote:
        session = RemoteSession(remote, Manifest(tmp_path / "runs.json"), root=str(root))
        with pytest.raises(UsageError, match="does not exist"):
            session.submit(Submission(script, inputs=(tmp_path / "missing.fastq",)))
    assert list(root.iterdir()) == []  # neither a run folder nor a hidden partial one
    assert Manifest(tmp_path / "runs.json").load() == {}


def test_a_dropped_connection_mid_command_is_a_clear_error(lab):
    with Remote("head", settings(lab)) as remote:
        threading.Timer(0.5, lab.servers["head"].drop_connections).start()
        with pytest.raises(RemoteError, match="dropped|failed"):
            remote.run("sleep 10")


def _make_run(tmp_path: Path, files: dict[str, int]) -> tuple[Path, Manifest, RemoteRun]:
    folder = tmp_path / "remote-runs" / "run1"
    folder.mkdir(parents=True)
    for name, size in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    manifest = Manifest(tmp_path / "runs.json")
    run = RemoteRun("run1", "head", str(folder), "batch", ["1"])
    manifest.add(run)
    return folder, manifest, run


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_interrupted_then_resumed_never_leaves_a_half_file(lab, tmp_path):
    size = 24 * 1024 * 1024
    folder, manifest, _ = _make_run(tmp_path, {"big.bam": size, "small/a.txt": 100, "small/b.txt": 200})
    dest = tmp_path / "laptop" / "run1"
    errors: list[RemoteError] = []

    def slow_fetch() -> None:
        with Remote("head", settings(lab)) as remote:
            try:
                RemoteSession(remote, manifest).fetch("run1", dest, bwlimit_kbps=4000)
            except RemoteError as error:
                errors.append(error)

    worker = threading.Thread(target=slow_fetch)
    worker.start()
    partial = dest / ".rsync-partial"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) < size // 8:
        time.sleep(0.1)
    lab.servers["head"].drop_connections()  # the link drops mid-transfer
    worker.join(30)
    assert errors and "interrupted" in errors[0].message and "again" in errors[0].hint
    assert not (dest / "big.bam").exists()  # never a half-written file at its final name
    kept = [p for p in partial.rglob("*") if p.is_file()] if partial.exists() else []
    assert kept, "the partial data waits for the resume"
    with Remote("head", settings(lab)) as remote:
        result = RemoteSession(remote, manifest).fetch("run1", dest)
    assert _digest(dest / "big.bam") == _digest(folder / "big.bam")
    assert (dest / "small" / "b.txt").read_bytes() == (folder / "small" / "b.txt").read_bytes()
    assert result.literal_bytes < size  # the partial file was reused, not sent again
    assert not partial.exists()
    with Remote("head", settings(lab)) as remote:  # nothing changed: nothing sent
        again = RemoteSession(remote, manifest).fetch("run1", dest)
    assert again.files_transferred == 0


def test_fetch_of_a_missing_remote_folder(lab, tmp_path):
    folder, manifest, _ = _make_run(tmp_path, {"x": 10})
    (folder / "x").unlink()
    folder.rmdir()
    with Remote("head", settings(lab)) as remote, pytest.raises(RemoteError, match="is missing on head"):
        RemoteSession(remote, manifest).fetch("run1", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_tokens_are_blanked_in_remote_text():
    from hpctool.remote.manifest import redact

    line = "    http://10.0.0.5:8888/lab?token=0a1b2c3d4e5f&x=1 or http://x:1/?token=ffff"
    assert redact(line) == "    http://10.0.0.5:8888/lab?token=<hidden>&x=1 or http://x:1/?token=<hidden>"


def test_a_broken_manifest_is_a_usage_error_and_is_left_alone(tmp_path):
    path = tmp_path / "remote-runs.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        Manifest(path).load()
    assert path.read_text() == "{not json"
