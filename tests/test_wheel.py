"""hpctool as a user installs it: a wheel built from this checkout, in a fresh venv outside it.

The wheel is built once per session (uv build), installed with the locked versions of every
dependency (``uv export`` as constraints, so uv installs from its cache), and its ``hpctool``
runs from a temporary folder, where no checkout is in sight: render and validate a config, upload
the bootstrap bundle (to moto, in the venv's own Python), run the germline workflow on local
cores, and bring a twin up and down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from hpctool import shipped
from hpctool.bootstrap_upload import bundle_digest, collect_bundle
from hpctool.errors import SetupError
from hpctool.twin import Twin
from hpctool.twin.core import port_base

REPO = Path(__file__).resolve().parents[1]
BUCKET = "hpctool-wheel-test"


def test_in_a_checkout_the_shipped_folders_are_the_repositorys_own() -> None:
    assert shipped.data_root() == REPO
    assert shipped.path("snakemake") == REPO / "snakemake"
    assert shipped.path("scripts/make_test_data.py") == REPO / "scripts" / "make_test_data.py"
    with pytest.raises(SetupError, match="not one of the folders hpctool ships"):
        shipped.path("scripts/demo.sh")  # in the checkout, but not in the wheel


def test_the_wheel_config_ships_what_resources_knows() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping == {name: f"hpctool/_data/{name}" for name in shipped.SHIPPED}
    for name in shipped.SHIPPED:
        assert (REPO / name).exists(), name


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:  # `make setup` installs uv; without it nothing here can be built
        pytest.fail("uv is not on PATH: run `make setup`")
    return uv


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (and moto, for the upload) at the locked versions."""
    uv = _uv()
    base = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NATIVE_TLS": "1"}
    env.pop("VIRTUAL_ENV", None)
    _run([uv, "build", "--wheel", "--quiet", "--out-dir", str(base / "dist"), str(REPO)], cwd=base, env=env)
    wheel = next((base / "dist").glob("hpctool-*.whl"))
    constraints = base / "constraints.txt"
    constraints.write_text(_run([uv, "export", "--frozen", "--all-groups", "--no-hashes", "--no-emit-project",
                                 "--no-header", "--project", str(REPO)], cwd=base, env=env))
    venv = base / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=base, env=env)
    _run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel), "moto[s3]",
          "-c", str(constraints)], cwd=base, env=env)
    return venv


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A working folder away from the checkout."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _env(venv: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return {**env, **extra}


def test_the_wheel_carries_the_data_and_finds_it_there(wheel_venv: Path, user_dir: Path) -> None:
    code = "import hpctool.shipped as r; print(r.data_root())"
    root = Path(_run([str(wheel_venv / "bin" / "python"), "-c", code], cwd=user_dir, env=_env(wheel_venv)).strip())
    assert root.name == "_data" and root.is_relative_to(wheel_venv), root
    for name in ("bootstrap/on-node-configured.sh", "envs/bwa.yaml", "snakemake/workflows/germline/Snakefile",
                 "snakemake/profiles/twin/config.yaml", "cluster-configs/templates/cluster.yaml.j2",
                 "cluster-configs/values/dev.yaml", "cluster-configs/stacks/accounting-database.yaml",
                 "scripts/make_test_data.py"):
        assert (root / name).is_file(), name
    assert os.access(root / "bootstrap" / "on-node-configured.sh", os.X_OK)


def test_config_render_and_validate_from_the_wheel(wheel_venv: Path, user_dir: Path) -> None:
    hpctool = str(wheel_venv / "bin" / "hpctool")
    env = _env(wheel_venv)
    _run([hpctool, "config", "render", "--values", "dev", "-o", "dev.yaml"], cwd=user_dir, env=env)
    rendered = (user_dir / "dev.yaml").read_text()
    checkout = _run([sys.executable, "-m", "hpctool.cli", "config", "render", "--values",
                     str(REPO / "cluster-configs" / "values" / "dev.yaml")], cwd=REPO)
    assert rendered == checkout
    report = json.loads(_run([hpctool, "config", "validate", "dev.yaml", "--json"], cwd=user_dir, env=env))
    assert report["valid"] is True and report["errors"] == 0 and len(report["checks_run"]) > 0, report


_UPLOAD = textwrap.dedent("""
    import contextlib, io, json, sys
    import boto3
    from moto import mock_aws
    from hpctool.cli import main

    def upload(*more):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["bootstrap", "upload", "--bucket", sys.argv[1], "--prefix", "hpctool", "--json",
                         "--region", "us-east-1", *more])
        return {"code": code, "report": json.loads(out.getvalue())}

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=sys.argv[1])
        runs = [upload("--dry-run"), upload(), upload("--dry-run")]
        listing = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=sys.argv[1])
        print(json.dumps({"runs": runs, "keys": sorted(o["Key"] for o in listing.get("Contents", []))}))
""")


def test_bootstrap_upload_from_the_wheel_sends_the_checkouts_bundle(wheel_venv: Path, user_dir: Path) -> None:
    env = _env(wheel_venv, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    (user_dir / "upload.py").write_text(_UPLOAD)
    result = json.loads(_run([str(wheel_venv / "bin" / "python"), "upload.py", BUCKET], cwd=user_dir, env=env))
    assert [run["code"] for run in result["runs"]] == [0, 0, 0]
    reports = [run["report"] for run in result["runs"]]
    files = collect_bundle(REPO)
    digest = bundle_digest(files)  # the checkout's bundle: the same content-addressed prefix
    dry, real, again = reports
    assert dry["digest"] == real["digest"] == digest
    assert dry["dry_run"] and sorted(dry["uploaded"]) == sorted(f.path for f in files)
    assert result["keys"] == sorted([f"hpctool/{digest}/{f.path}" for f in files] + [f"hpctool/{digest}/manifest.json"])
    assert again["uploaded"] == [] and len(again["unchanged"]) == len(files)


def test_run_germline_on_local_cores_from_the_wheel(wheel_venv: Path, user_dir: Path) -> None:
    _run([str(wheel_venv / "bin" / "hpctool"), "run", "germline", "out", "--cores", "2", "--test"],
         cwd=user_dir, env=_env(wheel_venv))
    out = user_dir / "out"
    samples = [line.split("\t")[0] for line in (out / "test-data" / "samples.tsv").read_text().splitlines()[1:]]
    assert len(samples) == 4
    for sample in samples:
        assert (out / "vcf" / f"{sample}.vcf.gz").stat().st_size > 0
    assert (out / "cohort" / "cohort.vcf.gz").stat().st_size > 0
    summary = (out / "qc" / "summary.tsv").read_text().splitlines()
    assert {row.split("\t")[0] for row in summary[1:]} == set(samples)


@pytest.mark.twin
def test_local_up_and_down_from_the_wheel(wheel_venv: Path, user_dir: Path, twin: Twin) -> None:
    """A second twin, the wheel's, beside the session's (whose lock this test holds through the
    ``twin`` fixture): its own home and ports; the session twin gets the system slurm.conf back."""
    home = user_dir / "twin-home"
    env = _env(wheel_venv, HPCTOOL_HOME=str(home), HPCTOOL_TWIN_PORT_BASE=str(port_base() + 700))
    hpctool = str(wheel_venv / "bin" / "hpctool")
    try:
        status = json.loads(_run([hpctool, "local", "up", "--nodes-per-queue", "1", "--json"], cwd=user_dir, env=env))
        assert status["up"] is True and status["home"] == str(home), status
        # The wheel's twin planned its partitions from the shipped default config.
        assert status["config"].endswith("hpctool/_data/cluster-configs/default.yaml"), status["config"]
        assert {q["name"] for q in status["queues"]} == {node.queue for node in twin.layout().nodes}
        again = json.loads(_run([hpctool, "local", "status", "--json"], cwd=user_dir, env=env))
        assert again["up"] is True
    finally:
        _run([hpctool, "local", "down"], cwd=user_dir, env=env)
        twin.up()  # the session twin takes /etc/slurm/slurm.conf back (its jobs read it)
    assert not Twin(home).is_up()
