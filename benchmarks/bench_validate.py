"""Time of `hpctool config validate` and `validate --deep` on the default config, against baselines
measured in the same run: ParallelCluster's bare schema load (in-process) and a bare Python start."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import yaml

from hpctool.cluster import DEFAULT_CLUSTER_CONFIG


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

    from hpctool.configs.schema import aws_region
    from hpctool.configs.validate import validate_config

    config = yaml.safe_load(DEFAULT_CLUSTER_CONFIG.read_text())
    validate_config(config)  # warm imports and moto's instance data once

    def bare_schema() -> None:
        with aws_region("us-east-1"):
            ClusterSchema(cluster_name="bench").load(config)

    schema_ms = _median_ms(bare_schema, 20)
    validate_ms = _median_ms(lambda: validate_config(config), 20)
    python_ms = _median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=False), 5)
    cli_ms = _median_ms(lambda: _cli("config", "validate", str(DEFAULT_CLUSTER_CONFIG)), 5)
    deep_ms = _median_ms(lambda: _cli("config", "validate", "--deep", str(DEFAULT_CLUSTER_CONFIG)), 3)
    print("## validate\n")
    print(f"`cluster-configs/default.yaml` ({len(config['Scheduling']['SlurmQueues'])} queues), medians.\n")
    print("| measure | time | ratio |")
    print("|---|---|---|")
    print(f"| baseline: pcluster `ClusterSchema.load` alone, in-process | {schema_ms:.1f} ms | 1.0x |")
    print(f"| `validate_config` (legacy + schema + hpctool checks), in-process | {validate_ms:.1f} ms | "
          f"{validate_ms / schema_ms:.1f}x schema |")
    print(f"| baseline: `python -c pass` | {python_ms:.0f} ms | 1.0x |")
    print(f"| `hpctool config validate` (whole process) | {cli_ms:.0f} ms | {cli_ms / python_ms:.1f}x python |")
    print(f"| `hpctool config validate --deep` (whole process, moto child) | {deep_ms:.0f} ms | "
          f"{deep_ms / cli_ms:.1f}x validate |")


if __name__ == "__main__":
    main()
