"""A write that fails half-way leaves the previous file as it was and no half file beside it:
`config render -o`, the config `bootstrap upload --write` rewrites, and the report page, each with
the write failing in the writer itself (a full disk after half the text), at fsync and at the rename."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from hpctool import report
from hpctool.aws import S3
from hpctool.bootstrap_upload import ENTRY_SCRIPT, upload_bundle
from hpctool.cli import main
from hpctool.errors import WriteError

REPO = Path(__file__).resolve().parents[1]
BUCKET = "hpctool-interrupted"
OLD_URI = f"s3://{BUCKET}/hpctool/0123456789ab/{ENTRY_SCRIPT}"


class Fault:
    """Makes the next atomic write fail at one point; records that a partial file was on disk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
        self.partial_seen = False
        self.monkeypatch = monkeypatch
        real_fdopen = os.fdopen
        fault = self

        class HalfWriter:
            def __init__(self, handle) -> None:
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                self.handle.close()

            def write(self, text: str) -> int:
                self.handle.write(text[: len(text) // 2])
                self.handle.flush()
                fault.partial_seen = os.fstat(self.handle.fileno()).st_size > 0
                raise OSError(errno.ENOSPC, "No space left on device")

        def fsync(fd: int) -> None:
            fault.partial_seen = os.fstat(fd).st_size > 0
            raise OSError(errno.EIO, "Input/output error")

        def replace(src, dst) -> None:
            fault.partial_seen = Path(src).stat().st_size > 0
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        if where == "writer":
            monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
        elif where == "fsync":
            monkeypatch.setattr(os, "fsync", fsync)
        else:
            monkeypatch.setattr(os, "replace", replace)

    def heal(self) -> None:
        self.monkeypatch.undo()


def assert_untouched(target: Path, before: bytes) -> None:
    assert target.read_bytes() == before
    assert not [p.name for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


WHERE = ["writer", "fsync", "rename"]


@pytest.mark.parametrize("where", WHERE)
def test_config_render_output(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    out = tmp_path / "cluster.yaml"
    assert main(["config", "render", "--values", "dev", "-o", str(out)]) == 0
    before = out.read_bytes()
    fault = Fault(monkeypatch, where)
    code = main(["config", "render", "--values", "dev", "--set", "queues.spot.max_count=7", "-o", str(out)])
    err = capsys.readouterr().err
    assert fault.partial_seen  # the fault did strike with a half (or whole, unrenamed) file on disk
    assert code == 2 and f"error: cannot write {out}" in err and "\nhint: " in err
    assert_untouched(out, before)
    fault.heal()
    assert main(["config", "render", "--values", "dev", "--set", "queues.spot.max_count=7", "-o", str(out)]) == 0
    assert out.read_bytes() != before and yaml.safe_load(out.read_text())["Region"]


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.mark.parametrize("where", WHERE)
def test_bootstrap_upload_config_rewrite(where: str, tmp_path: Path, s3, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(f"# keep me\nRegion: us-east-1\nHeadNode:\n  InstanceType: c7i.xlarge\n  CustomActions:\n"
                      f"    OnNodeConfigured:\n      Script: {OLD_URI}\n")
    before = config.read_bytes()
    store = S3(s3_client=s3)
    fault = Fault(monkeypatch, where)
    with pytest.raises(WriteError) as error:
        upload_bundle(BUCKET, "hpctool", s3=store, root=REPO, config=config, write=True)
    assert fault.partial_seen and error.value.hint
    assert_untouched(config, before)
    fault.heal()
    report_ = upload_bundle(BUCKET, "hpctool", s3=store, root=REPO, config=config, write=True)
    assert report_.config_ok and report_.entry_uri in config.read_text() and "# keep me" in config.read_text()


def _page(title: str) -> report.ReportData:
    return report.ReportData(title, "2026-12-01 00:00 UTC", "2026-11-01", [], [], [], 0, 0)


@pytest.mark.parametrize("where", WHERE)
def test_report_page(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = report.write(_page("first run"), tmp_path / "hpctool-report.html")
    before = page.read_bytes()
    fault = Fault(monkeypatch, where)
    write: Callable[[], Path] = lambda: report.write(_page("second run"), page)
    with pytest.raises(WriteError):
        write()
    assert fault.partial_seen
    assert_untouched(page, before)
    fault.heal()
    assert "second run" in write().read_text()
