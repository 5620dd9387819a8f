"""Security checked by real checkers (docs/security.md): bandit over src/, checkov over the
CloudFormation stacks, ssh-audit against a real sshd running the twin's sshd settings, and the
least-privilege shape of the rendered configs' IAM."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hpctool.configs.render import VALUES_DIR, render
from hpctool.twin import access
from support.sshd_lab import SSHD, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"  # its own venv: scripts/setup.sh says why
STACKS = sorted((REPO / "cluster-configs" / "stacks").glob("*.yaml"))
# checkov findings that stand, with their reasons in the template (Metadata.checkov.skip).
CHECKOV_ACCEPTED = {"CKV_AWS_118", "CKV_AWS_157", "CKV_AWS_161"}


def _bandit(target: Path) -> dict:
    result = subprocess.run([str(BIN / "bandit"), "-q", "-c", str(REPO / "pyproject.toml"), "-r", str(target),
                             "-f", "json"], check=False, capture_output=True, text=True, timeout=300)
    return json.loads(result.stdout)


def test_bandit_finds_nothing_in_src() -> None:
    report = _bandit(REPO / "src")
    assert report["metrics"]["_totals"]["loc"] > 10_000  # it did read the package
    assert [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]] == []


def test_bandit_with_our_config_still_catches_a_shell(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import subprocess\n\ndef f(x):\n    subprocess.run(x, shell=True)\n")
    assert {r["test_id"] for r in _bandit(tmp_path)["results"]} == {"B602"}


def test_checkov_passes_the_cloudformation_stacks() -> None:
    assert STACKS and CHECKOV.exists(), "scripts/setup.sh installs checkov into .tools/checkov"
    result = subprocess.run([str(CHECKOV), "--compact", "--framework", "cloudformation", "--skip-download",
                             "-o", "json", *[a for stack in STACKS for a in ("-f", str(stack))]],
                            check=False, capture_output=True, text=True, timeout=600)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}" for r in reports for c in r["results"].get("failed_checks", [])]
    skipped = {c["check_id"] for r in reports for c in r["results"].get("skipped_checks", [])}
    assert failed == [] and result.returncode == 0
    assert skipped == CHECKOV_ACCEPTED  # each with its comment in the template
    assert sum(r["summary"]["passed"] for r in reports) >= 8 and all(r["summary"]["parsing_errors"] == 0
                                                                     for r in reports)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_ssh_audit_finds_no_failure_in_the_twins_sshd(tmp_path: Path) -> None:
    etc, port = tmp_path / "etc", free_port()
    access.ensure_keys(etc, lambda argv: subprocess.run(argv, check=True, capture_output=True))
    text = access.render_sshd_config(etc, "127.0.0.1")
    assert f"ListenAddress 127.0.0.1:{access.SSHD_PORT}" in text
    config = tmp_path / "sshd_config"
    config.write_text(text.replace(f"127.0.0.1:{access.SSHD_PORT}", f"127.0.0.1:{port}"))  # the twin's, on a free port
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.05)
        result = subprocess.run([str(BIN / "ssh-audit"), "-j", "-p", str(port), "127.0.0.1"],
                                check=False, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=10)
    audit = json.loads(result.stdout)
    assert audit["kex"] and audit["mac"] and audit["key"]  # it did talk to the server
    failures = [f"{kind} {entry['algorithm']}: {'; '.join(entry['notes']['fail'])}"
                for kind in ("kex", "key", "enc", "mac") for entry in audit.get(kind, [])
                if entry.get("notes", {}).get("fail")]
    assert failures == []
    assert not audit["recommendations"].get("critical")


def _s3_access(config: dict) -> list[dict]:
    groups = [config["HeadNode"], *config["Scheduling"]["SlurmQueues"]]
    return [entry for group in groups for entry in group["Iam"]["S3Access"]]


def test_rendered_iam_grants_prefixes_not_buckets() -> None:
    for values in ("dev.yaml", "prod.yaml"):
        config = yaml.safe_load(render(VALUES_DIR / values))
        entries = _s3_access(config)
        assert entries and all(e.get("KeyName") not in (None, "", "*") for e in entries), values
        writable = {(e["BucketName"], e["KeyName"]) for e in entries if e["EnableWriteAccess"]}
        assert len(writable) == 1, values  # one results prefix, nothing else writable
        for group in [config["HeadNode"], *config["Scheduling"]["SlurmQueues"]]:
            iam = group["Iam"]
            assert not iam.get("AdditionalIamPolicies") and not iam.get("InstanceRole"), values
