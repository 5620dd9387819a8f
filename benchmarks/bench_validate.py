"""Time of `hpctool config validate` against baselines measured in the same run: ParallelCluster's bare
schema load (in-process) and a bare Python start.

Measured: the default config; the largest real config of the corpus; a generated large config (a
real one with 20,000 tags, ~0.9 MB); the alias bomb (refused); and `--deep` on one config and on the
whole corpus in one moto child.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "configs" / "real"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def _median_ms(func, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "hpctool.cli", *args], capture_output=True, check=False)


def main() -> None:
    from pcluster.schemas.cluster_schema import ClusterSchema
    from pcluster.utils import load_yaml_dict

    from hpctool.configs.schema import aws_region
    from hpctool.configs.validate import validate_config, validate_file, validate_files

    config = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
    validate_config(config)  # warm imports and moto's instance data once
    scratch = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    files = sorted(p for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml")
    largest = max(files, key=lambda p: p.stat().st_size)
    big = dict(yaml.safe_load(largest.read_text()))
    big["Tags"] = [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(20_000)]
    big_path = scratch / "big.yaml"
    big_path.write_text(yaml.safe_dump(big))
    bomb_path = scratch / "bomb.yaml"
    bomb_path.write_text(BOMB)

    def schema_of(path: Path):
        def run() -> None:
            # ParallelCluster's own path: its YAML loader, then ClusterSchema.load, offline
            with aws_region("us-east-1"):
                try:
                    ClusterSchema(cluster_name="bench").load(load_yaml_dict(str(path)))
                except Exception as error:  # noqa: BLE001 - the bomb and odd configs raise; only the time counts
                    del error
        return run

    default_path = DEFAULT_CLUSTER_CONFIG
    rows = []
    largest_label = f"largest corpus file ({largest.name}, {largest.stat().st_size // 1024} KB)"
    big_label = f"large config (20,000 tags, {big_path.stat().st_size // 1024} KB)"
    for label, path, runs in [("default config", default_path, 10), (largest_label, largest, 10),
                              (big_label, big_path, 3), ("alias bomb (10^9 nodes once expanded)", bomb_path, 5)]:
        schema_ms = _median_ms(schema_of(path), runs)
        validate_ms = _median_ms(lambda p=path: validate_file(p), runs)
        rows.append((label, schema_ms, validate_ms))
    python_ms = _median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=False), 5)
    cli_ms = _median_ms(lambda: _cli("config", "validate", str(DEFAULT_CLUSTER_CONFIG)), 5)
    deep_ms = _median_ms(lambda: _cli("config", "validate", "--deep", str(DEFAULT_CLUSTER_CONFIG)), 3)
    start = time.perf_counter()
    validate_files(files, deep=True)
    corpus_deep_s = time.perf_counter() - start
    start = time.perf_counter()
    validate_files(files)
    corpus_plain_s = time.perf_counter() - start

    print("## validate\n")
    print("In-process medians: `validate_file` (hpctool's YAML loader + legacy + schema + hpctool checks) against "
          "ParallelCluster's own YAML loader + `ClusterSchema.load` alone on the same file.\n")
    print("| file | baseline: pcluster load + schema | `validate_file` | ratio |")
    print("|---|---|---|---|")
    for label, schema_ms, validate_ms in rows:
        print(f"| {label} | {schema_ms:.1f} ms | {validate_ms:.1f} ms | {validate_ms / schema_ms:.2f}x |")
    print("\nWhole processes and the corpus:\n")
    print("| measure | time | ratio |")
    print("|---|---|---|")
    print(f"| baseline: `python -c pass` | {python_ms:.0f} ms | 1.0x |")
    print(f"| `hpctool config validate` default config (whole process) | {cli_ms:.0f} ms | "
          f"{cli_ms / python_ms:.1f}x python |")
    print(f"| `hpctool config validate --deep` default config (moto child) | {deep_ms:.0f} ms | "
          f"{deep_ms / cli_ms:.1f}x validate |")
    print(f"| corpus, {len(files)} files, plain (in-process) | {corpus_plain_s:.1f} s | 1.0x |")
    print(f"| corpus, {len(files)} files, `--deep` in one moto child | {corpus_deep_s:.1f} s | "
          f"{corpus_deep_s / corpus_plain_s:.1f}x plain |")


if __name__ == "__main__":
    main()
