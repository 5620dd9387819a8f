"""`hpctool storage lifecycle` and `storage report` against moto's S3 and EFS, figures by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from hpctool.cli import main as cli
from hpctool.cost import prices, tiering
from hpctool.errors import UsageError

BUCKET = "hpctool-dev-results"
KIB, MIB = 1024, 1024 * 1024

pytestmark = pytest.mark.usefixtures("shipped_prices")  # the figures of the shipped snapshot (conftest)



@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def test_rules_from_the_default_config(repo):
    plan = tiering.plan(config=repo / "cluster-configs" / "default.yaml")
    assert (plan.bucket, plan.base_prefix) == (BUCKET, "results/")
    rules = {r["ID"]: r for r in plan.s3_rules}
    assert rules["hpctool-fastq-fastq"]["Filter"] == {"Prefix": "results/fastq/"}
    assert rules["hpctool-fastq-fastq"]["Transitions"] == [{"Days": 30, "StorageClass": "DEEP_ARCHIVE"}]
    assert rules["hpctool-alignments-cram"]["Transitions"] == [{"Days": 0, "StorageClass": "INTELLIGENT_TIERING"}]
    assert rules["hpctool-scratch-tmp"]["Expiration"] == {"Days": 7}
    assert rules["hpctool-abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert not any("vcf" in r["Filter"]["Prefix"] for r in plan.s3_rules)  # VCFs stay hot
    assert all(r.explanation for r in plan.rules)
    # the default config's EFS is bursting: no Archive tier, and the reason says so
    assert {"TransitionToArchive": "AFTER_90_DAYS"} not in plan.efs_policies
    assert any("Elastic" in why for why in plan.efs_explanations)
    elastic = tiering.plan(config=repo / "cluster-configs" / "default.yaml", throughput_mode="elastic")
    assert {"TransitionToArchive": "AFTER_90_DAYS"} in elastic.efs_policies
    with pytest.raises(UsageError, match="no bucket"):
        tiering.plan()


def test_apply_sets_the_rules_keeps_other_rules_and_is_idempotent(aws, repo, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    mine = {"ID": "team-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 90}}
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [mine]})
    efs = boto3.client("efs", region_name="us-east-1")
    fs_id = efs.create_file_system(CreationToken="home", Encrypted=True)["FileSystemId"]
    argv = ["storage", "lifecycle", "--config", str(repo / "cluster-configs" / "default.yaml"), "--efs-id", fs_id,
            "--apply", "--json"]
    for _ in range(2):
        assert cli(argv) == 0
        capsys.readouterr()
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    ids = [r["ID"] for r in rules]
    assert ids.count("team-logs") == 1 and ids.count("hpctool-fastq-fastq") == 1
    assert len(ids) == 1 + len(tiering.plan(config=repo / "cluster-configs" / "default.yaml").s3_rules)
    policies = efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"]
    assert {"TransitionToIA": "AFTER_30_DAYS"} in policies


def test_without_apply_nothing_changes(aws, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="other-bucket")
    assert cli(["storage", "lifecycle", "--bucket", "other-bucket"]) == 0
    assert "add --apply" in capsys.readouterr().out
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_lifecycle_configuration(Bucket="other-bucket")
    assert cli(["storage", "lifecycle", "--bucket", "missing-bucket", "--apply"]) == 1
    err = capsys.readouterr().err
    assert "s3://missing-bucket" in err and "Traceback" not in err


def test_report_by_hand(aws, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    objects = {"results/fastq/S1_R1.fastq.gz": MIB, "results/bam/S1.bam": 256 * KIB,
               "results/vcf/S1.vcf.gz": 10 * KIB, "results/scratch/S1.tmp": 64 * KIB, "results/README": KIB}
    for key, size in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * size)
    as_of = datetime.now(UTC) + timedelta(days=100)  # every object is 100 days old by then
    book = prices.PriceBook(prices.shipped_snapshot(), "shipped")
    result = tiering.report_bucket(BUCKET, "results/", book, "us-east-1", as_of)
    rows = {c.data_class: c for c in result.classes}
    gib = 1024**3
    standard, deep, it_archive, monitor = 0.023, 0.00099, 0.0036, 0.0025 / 1000  # us-east-1, snapshot
    assert rows["fastq"].now_monthly == pytest.approx(MIB / gib * standard)
    assert rows["fastq"].with_rules_monthly == pytest.approx(MIB / gib * deep)  # past 30 days: Deep Archive
    # 256 KiB is monitored: 100 days unread is the Archive Access tier, plus the monitoring fee
    assert rows["alignments"].with_rules_monthly == pytest.approx(256 * KIB / gib * it_archive + monitor)
    assert rows["variants"].with_rules_monthly == rows["variants"].now_monthly == pytest.approx(10 * KIB / gib * standard)
    assert rows["scratch"].with_rules_monthly == 0  # expired after 7 days
    assert rows["other"].objects == 1 and rows["other"].saving == 0
    assert result.with_rules_monthly < result.now_monthly
    # one transition each to Deep Archive (0.05/1000) and Intelligent-Tiering (0.01/1000)
    assert sum(c.transitions_once for c in result.classes) == pytest.approx(0.05 / 1000 + 0.01 / 1000)

    assert cli(["storage", "report", "--bucket", BUCKET, "--prefix", "results/", "--as-of",
                as_of.strftime("%Y-%m-%d"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["price_date"] == "2026-11-01" and len(data["classes"]) == 5
    assert data["saving"] == pytest.approx(result.now_monthly - result.with_rules_monthly, rel=1e-3)
    # today nothing is old enough yet: only the transition to Intelligent-Tiering (day 0) applies
    today = tiering.report_bucket(BUCKET, "results/", book, "us-east-1")
    assert {c.data_class for c in today.classes if c.saving} <= {"alignments"}
    assert cli(["storage", "report", "--bucket", BUCKET, "--prefix", "results/"]) == 0
    out = capsys.readouterr().out
    assert "prices as of 2026-11-01" in out and "alignments" in out and "lifecycle transitions, once" in out
    assert cli(["storage", "report", "--bucket", BUCKET, "--as-of", "tomorrow"]) == 2
