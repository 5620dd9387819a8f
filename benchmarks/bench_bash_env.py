"""What ``BASH_ENV`` (set by the bootstrap's Lmod profile so batch scripts have ``module``) costs
every non-interactive bash: ``bash -c true`` with and without it, interleaved, median of many.

Every ``bash -c`` reads ``$BASH_ENV`` first: a job's script, each Snakemake rule's shell, every
``bash -c`` in a pipeline. Lmod's ``init/bash`` only defines shell functions when ``module`` is
not defined yet, so the cost is that file's parse per bash. Measured against Debian's Lmod, the
one the bats tests load; the baseline is the same bash without ``BASH_ENV`` in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
ROUNDS = 300


def _time_once(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-c", "true"], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    if not LMOD_INIT.is_file():
        print(f"bash_env: {LMOD_INIT} is missing (make setup installs Debian's lmod)", file=sys.stderr)
        return
    base = {k: v for k, v in os.environ.items() if k != "BASH_ENV" and not k.startswith(("LMOD", "__LMOD"))}
    cases = {
        "no BASH_ENV (baseline)": base,
        "BASH_ENV=Lmod init/bash": {**base, "BASH_ENV": str(LMOD_INIT), "MODULEPATH": "/nonexistent"},
    }
    # A job submitted from a login shell inherits what the profile exported (LMOD_*, the exported
    # `module` function) along with BASH_ENV: the usual case on the cluster.
    login = subprocess.run(["bash", "-c", f'. "{LMOD_INIT}"; env -0'], env=cases["BASH_ENV=Lmod init/bash"],
                           capture_output=True, check=True).stdout.decode()
    cases["BASH_ENV, login shell's env"] = dict(item.split("=", 1) for item in login.split("\0") if "=" in item)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):  # interleaved, so load on the machine hits every case alike
        for name, env in cases.items():
            samples[name].append(_time_once(env))
    baseline = statistics.median(samples["no BASH_ENV (baseline)"])
    print(f"bash -c true, median of {ROUNDS} runs each (interleaved):")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:28s} {median * 1000:6.2f} ms  x{median / baseline:.2f}  (+{(median - baseline) * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
