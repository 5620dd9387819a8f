"""ParallelCluster's node daemons (.tools/pcnode, installed by scripts/setup.sh) run by the tests
through ``support/pcnode_driver.py`` on that venv's own Python."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support import REPO

PCNODE_PYTHON = REPO / ".tools" / "pcnode" / "bin" / "python"
DRIVER = Path(__file__).with_name("pcnode_driver.py")


def aws_env(endpoint: str | None) -> dict[str, str]:
    """The environment for boto3 against the twin's moto: its endpoint, dummy credentials, a region,
    and none of the caller's AWS settings (a profile or real keys must never reach it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "hpctool-twin", "AWS_SECRET_ACCESS_KEY": "hpctool-twin",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def run_driver(*args: str, endpoint: str | None = None, timeout: float = 120,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one driver command (``env``: more variables); its JSON answer (the driver's log is in
    the assertion message)."""
    assert PCNODE_PYTHON.exists(), "scripts/setup.sh installs aws-parallelcluster-node into .tools/pcnode"
    result = subprocess.run([str(PCNODE_PYTHON), str(DRIVER), *args], env={**aws_env(endpoint), **(env or {})},
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"driver {args[0]} failed:\n{result.stderr[-4000:]}"
    answer = json.loads(result.stdout)
    answer["log"] = result.stderr
    return answer


# The twin every test of ParallelCluster's daemons renders for: the shipped config on a fixed
# network and machine size, at the suite's time scale (golden files depend on it).
def _suite_layout():
    from hpctool.cluster.queues import load_cluster
    from hpctool.twin.hosts import Network
    from hpctool.twin.layout import plan_layout

    cluster = load_cluster()
    network = Network(bridge="hpct-abcdef", subnet="10.210.7.0/24")
    layout = plan_layout(cluster.queues, "cluster-configs/default.yaml", base=16817, real_memory_mb=24000,
                         scaledown_idletime_min=cluster.scaledown_idletime_min, time_scale=0.02)
    return network, cluster, layout


NETWORK, CLUSTER, LAYOUT = _suite_layout()
