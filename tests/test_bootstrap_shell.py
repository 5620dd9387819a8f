"""The node bootstrap's shell: shellcheck over bootstrap/, and each bats file as one pytest test,
so `make test` counts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BATS_FILES = sorted((REPO / "tests" / "bats").glob("*.bats"))


def _shell_scripts() -> list[Path]:
    scripts = []
    for path in sorted((REPO / "bootstrap").rglob("*")):
        if not path.is_file():
            continue
        first = path.read_text(errors="replace").split("\n", 1)[0]
        if path.suffix == ".sh" or first.startswith("#!") and first.rstrip().endswith(("sh", "bash")):
            scripts.append(path)
    return scripts


def test_the_bundle_has_every_step():
    steps = {p.stem for p in (REPO / "bootstrap" / "steps").glob("*.sh")}
    assert steps == {"lmod", "conda", "scratch", "spot", "fpga", "head"}


def test_shellcheck_is_clean_over_bootstrap():
    scripts = _shell_scripts()
    assert len(scripts) >= 11, scripts  # entry, 6 steps, 2 libraries, 3 Slurm hooks
    result = subprocess.run(
        ["shellcheck", "-x", "--severity=style", *[str(p.relative_to(REPO)) for p in scripts]],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_also_covers_the_bats_helpers():
    helpers = [REPO / "tests" / "bats" / "helpers.bash", REPO / "tests" / "bats" / "fake-node.sh"]
    result = subprocess.run(["shellcheck", "-x", *map(str, helpers)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("bats_file", BATS_FILES, ids=[p.stem for p in BATS_FILES])
def test_bats(bats_file: Path):
    result = subprocess.run(["bats", "--tap", str(bats_file)], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    failed = [line for line in result.stdout.splitlines() if line.startswith("not ok")]
    assert result.returncode == 0 and not failed, result.stdout[-6000:] + result.stderr[-2000:]
    assert any(line.startswith("ok ") for line in result.stdout.splitlines()), "bats ran no test"


def test_shellcheck_also_covers_setup_and_the_demo():
    scripts = sorted((REPO / "scripts").glob("*.sh")) + sorted((REPO / "scripts" / "demo.d").glob("*.sh"))
    assert len(scripts) >= 4, scripts  # setup, demo, and its parts
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
