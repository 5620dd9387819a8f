"""The rendered cluster configs and the node bootstrap agree: the script, its arguments and the
Slurm hooks a config names are the ones bootstrap/ provides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpctool.cluster.queues import load_yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "tests" / "golden" / "configs").glob("*.yaml")) + [REPO / "cluster-configs" / "default.yaml"]


def _custom_actions(config: dict) -> list[dict]:
    actions = [config["HeadNode"]["CustomActions"]["OnNodeConfigured"]]
    actions += [q["CustomActions"]["OnNodeConfigured"] for q in config["Scheduling"]["SlurmQueues"]]
    return actions


def _env_modules() -> set[str]:
    names = set()
    for env in (REPO / "envs").glob("*.yaml"):
        match = re.match(r"# hpctool-module: ([^/\s]+)/", env.read_text())
        names.add(match.group(1) if match else env.stem)
    return names


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_every_node_runs_the_repos_entry_script_with_known_arguments(config_path):
    config = load_yaml(config_path)
    options = set(re.findall(r"--[a-z][a-z-]+", (REPO / "bootstrap" / "on-node-configured.sh").read_text()))
    for action in _custom_actions(config):
        assert action["Script"].endswith("/bootstrap/on-node-configured.sh")
        args = action.get("Args", [])
        flags = [a for a in args if str(a).startswith("--")]
        assert set(flags) <= options, f"{config_path.name}: unknown bootstrap option(s) {set(flags) - options}"
        if "--envs" in args:
            wanted = args[args.index("--envs") + 1]
            assert wanted == "all" or set(wanted.split(",")) <= _env_modules()


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_slurm_hooks_named_in_the_config_are_installed_by_the_bootstrap(config_path):
    config = load_yaml(config_path)
    bootstrap_text = "\n".join(p.read_text() for p in (REPO / "bootstrap").rglob("*.sh"))
    for setting in config["Scheduling"]["SlurmSettings"].get("CustomSlurmSettings", []):
        for key, value in setting.items():
            if key in {"TaskProlog", "TaskEpilog", "Prolog", "Epilog"}:
                assert Path(value).name in bootstrap_text, f"{key}={value} is not installed by bootstrap/"
