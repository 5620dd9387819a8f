"""`hpctool bootstrap upload` against moto's S3: keys, checksums, skipping, and the config's Scripts."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from hpctool.aws import S3
from hpctool.bootstrap_upload import ENTRY_SCRIPT, bundle_digest, collect_bundle, upload_bundle
from hpctool.cli import main
from hpctool.errors import AwsError, ConfigError, UsageError

REPO = Path(__file__).resolve().parents[1]
BUCKET = "hpctool-test-artifacts"
OLD_URI = f"s3://{BUCKET}/hpctool/0123456789ab/{ENTRY_SCRIPT}"


@pytest.fixture
def bundle_root(tmp_path: Path) -> Path:
    """A small checkout: the real bootstrap/ and two env files."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "bootstrap", root / "bootstrap", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "envs").mkdir()
    (root / "envs" / "bwa.yaml").write_text("# hpctool-module: bwa/0.7.18\nname: bwa\ndependencies:\n  - bwa=0.7.18\n")
    (root / "envs" / "samtools.yaml").write_text("name: samtools\ndependencies:\n  - samtools=1.21\n")
    return root


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def count_puts(store: S3) -> list[str]:
    keys: list[str] = []
    store.client.meta.events.register("provide-client-params.s3.PutObject",
                                      lambda params, **_: keys.append(params["Key"]))
    return keys


def cluster_config(path: Path, uri: str = OLD_URI) -> Path:
    path.write_text(f"""# the dev cluster: comments survive a rewrite
Region: us-east-1
HeadNode:
  InstanceType: c7i.xlarge
  CustomActions:
    OnNodeConfigured:
      Script: {uri}
      Args: [--envs, all]
Scheduling:
  Scheduler: slurm
  SlurmQueues:
    - Name: compute
      CustomActions:
        OnNodeConfigured:
          Script: "{uri}"   # quoted on purpose
      ComputeResources: [{{Name: c7i, InstanceType: c7i.4xlarge}}]
    - Name: fpga
      CustomActions:
        OnNodeConfigured:
          Sequence:
            - Script: s3://{BUCKET}/site/other-action.sh
            - Script: {uri}
      ComputeResources: [{{Name: f2, InstanceType: f2.6xlarge}}]
""")
    return path


def test_digest_covers_paths_and_contents(bundle_root: Path):
    files = collect_bundle(bundle_root)
    assert {f.path for f in files} >= {ENTRY_SCRIPT, "bootstrap/steps/conda.sh", "envs/bwa.yaml"}
    before = bundle_digest(files)
    assert len(before) == 12 and before == bundle_digest(list(reversed(files)))
    (bundle_root / "envs" / "bwa.yaml").write_text("name: bwa\n")
    assert bundle_digest(collect_bundle(bundle_root)) != before
    (bundle_root / "envs" / "bwa.yaml").rename(bundle_root / "envs" / "bwa2.yaml")
    assert bundle_digest(collect_bundle(bundle_root)) not in {before}


def test_upload_keys_and_checksums(bundle_root: Path, s3):
    store = S3(s3_client=s3)
    sent: dict[str, str] = {}  # moto stores no ChecksumSHA256, so the request itself is checked
    store.client.meta.events.register("provide-client-params.s3.PutObject",
                                      lambda params, **_: sent.__setitem__(params["Key"], params["ChecksumSHA256"]))
    report = upload_bundle(BUCKET, "team/hpctool/", s3=store, root=bundle_root)
    files = collect_bundle(bundle_root)
    prefix = f"team/hpctool/{bundle_digest(files)}"
    assert report.entry_uri == f"s3://{BUCKET}/{prefix}/{ENTRY_SCRIPT}"
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert set(listed) == {f"{prefix}/{f.path}" for f in files} | {f"{prefix}/manifest.json"}
    for item in files:
        head = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{item.path}")
        assert head["ETag"].strip('"') == hashlib.md5(item.data).hexdigest()
        body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{item.path}")["Body"].read()
        assert body == item.data
        assert sent[f"{prefix}/{item.path}"] == base64.b64encode(hashlib.sha256(item.data).digest()).decode()
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json")["Body"].read())
    assert manifest["files"] == {f.path: f.sha256 for f in files}
    assert sorted(report.uploaded) == sorted(f.path for f in files) and report.unchanged == []


def test_a_second_unchanged_upload_sends_nothing(bundle_root: Path, s3):
    upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    store = S3(s3_client=s3)
    puts = count_puts(store)
    report = upload_bundle(BUCKET, "hpctool", s3=store, root=bundle_root)
    assert puts == []
    assert report.uploaded == [] and len(report.unchanged) == report.files


def test_an_interrupted_upload_resumes_with_only_the_missing_files(bundle_root: Path, s3):
    first = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    s3.delete_object(Bucket=BUCKET, Key=f"{first.key_prefix}/manifest.json")
    s3.delete_object(Bucket=BUCKET, Key=f"{first.key_prefix}/envs/bwa.yaml")
    store = S3(s3_client=s3)
    puts = count_puts(store)
    upload_bundle(BUCKET, "hpctool", s3=store, root=bundle_root)
    assert puts == [f"{first.key_prefix}/envs/bwa.yaml", f"{first.key_prefix}/manifest.json"]


def test_a_changed_file_gets_a_new_prefix(bundle_root: Path, s3):
    first = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    (bundle_root / "envs" / "bwa.yaml").write_text("# hpctool-module: bwa/0.7.19\nname: bwa\n")
    second = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    assert second.digest != first.digest
    # the old bundle stays whole for nodes that booted from it
    assert s3.head_object(Bucket=BUCKET, Key=f"{first.key_prefix}/manifest.json")


def test_dry_run_sends_and_writes_nothing(bundle_root: Path, s3, tmp_path: Path):
    config = cluster_config(tmp_path / "cluster.yaml")
    before = config.read_text()
    store = S3(s3_client=s3)
    puts = count_puts(store)
    report = upload_bundle(BUCKET, "hpctool", s3=store, root=bundle_root, config=config, write=True, dry_run=True)
    assert puts == [] and len(report.uploaded) == report.files
    assert config.read_text() == before
    assert not report.config_ok


def test_config_check_names_every_stale_script(bundle_root: Path, s3, tmp_path: Path):
    config = cluster_config(tmp_path / "cluster.yaml")
    report = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root, config=config)
    assert not report.config_ok
    assert {c.yaml_path: c.found for c in report.scripts} == {
        "HeadNode.CustomActions.OnNodeConfigured.Script": OLD_URI,
        "Scheduling.SlurmQueues[compute].CustomActions.OnNodeConfigured.Script": OLD_URI,
        "Scheduling.SlurmQueues[fpga].CustomActions.OnNodeConfigured.Sequence[1].Script": OLD_URI,
    }


def test_write_rewrites_the_scripts_and_keeps_comments(bundle_root: Path, s3, tmp_path: Path):
    config = cluster_config(tmp_path / "cluster.yaml")
    report = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root, config=config, write=True)
    assert report.config_ok and len(report.rewritten) == 3
    text = config.read_text()
    assert "# the dev cluster: comments survive a rewrite" in text and "# quoted on purpose" in text
    parsed = yaml.safe_load(text)
    assert parsed["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Script"] == report.entry_uri
    sequence = parsed["Scheduling"]["SlurmQueues"][1]["CustomActions"]["OnNodeConfigured"]["Sequence"]
    assert sequence[0]["Script"] == f"s3://{BUCKET}/site/other-action.sh"  # not ours: untouched
    # checking again finds nothing to change
    again = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root, config=config, write=True)
    assert again.config_ok and again.rewritten == []


def test_a_node_group_without_the_script_is_reported(bundle_root: Path, s3, tmp_path: Path):
    config = cluster_config(tmp_path / "cluster.yaml")
    data = yaml.safe_load(config.read_text())
    del data["Scheduling"]["SlurmQueues"][0]["CustomActions"]
    config.write_text(yaml.safe_dump(data))
    report = upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root, config=config, write=True)
    missing = [c.yaml_path for c in report.scripts if c.found is None]
    assert missing == ["Scheduling.SlurmQueues[compute].CustomActions.OnNodeConfigured.Script"]
    assert not report.config_ok


def test_the_cli_uploads_checks_and_prints_json(bundle_root: Path, s3, tmp_path: Path, capsys, monkeypatch):
    config = cluster_config(tmp_path / "cluster.yaml")
    # the CLI reads the repository it runs from; point it at the small checkout
    from hpctool import bootstrap_upload

    real = bootstrap_upload.upload_bundle
    monkeypatch.setattr("hpctool.cli.bootstrap.upload_bundle", lambda *a, **k: real(*a, root=bundle_root, **k))
    code = main(["bootstrap", "upload", "--bucket", BUCKET, "--prefix", "hpctool", "--config", str(config), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["config_ok"] is False and len(out["uploaded"]) == out["files"]
    code = main(["bootstrap", "upload", "--bucket", BUCKET, "--prefix", "hpctool", "--config", str(config), "--write"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "uploaded 0," in captured.out and "rewrote HeadNode.CustomActions.OnNodeConfigured.Script" in captured.out


def test_bad_input_gets_clear_errors(bundle_root: Path, s3, tmp_path: Path):
    with pytest.raises(UsageError, match="not an S3 bucket name"):
        upload_bundle("s3://x", "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    with pytest.raises(UsageError, match="no such file"):  # a missing file is a usage error (exit 2)
        upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=bundle_root, config=tmp_path / "nope.yaml")
    with pytest.raises(AwsError, match="s3://no-such-bucket-here/"):
        upload_bundle("no-such-bucket-here", "hpctool", s3=S3(s3_client=s3), root=bundle_root)
    with pytest.raises(ConfigError, match="bootstrap/on-node-configured.sh: no such file"):
        upload_bundle(BUCKET, "hpctool", s3=S3(s3_client=s3), root=tmp_path)
