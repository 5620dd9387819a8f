"""The notebook module without Slurm: the rendered jupyterhub_config.py and sudoers (golden files),
the settings' rules, the form and its checks, the squeue parser on real output, and a real
JupyterHub refusing to start without PAM and an allow rule."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hpctool.cli import main
from hpctool.cluster.queues import load_queues, slurm_queues
from hpctool.errors import ConfigError
from hpctool.notebook import config
from hpctool.notebook.spawner import (
    JobState,
    check_options,
    describe_end,
    fatal_reason,
    options_form_html,
    parse_job_state,
)
from support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "notebook"
REPO = Path(__file__).resolve().parents[1]


def test_cluster_config_matches_golden() -> None:
    text = config.render_config(load_queues(), config.cluster_settings())
    assert_golden(text, GOLDEN / "jupyterhub_config.cluster.py")
    compile(text, "jupyterhub_config.py", "exec")  # it is Python


def test_twin_config_matches_golden() -> None:
    settings = config.twin_settings(Path("/repo"), Path("/twin/hub"), job_python="/repo/.venv/bin/python",
                                    slurm_conf="/twin/etc/slurm.conf", port_base=16817,
                                    slurm_bin="/twin/bin/slurm", hub_ip="10.200.1.1", hosts_file="/twin/etc/hosts")
    text = config.render_config(load_queues(), settings, node_limits=(4, 1))
    assert_golden(text, GOLDEN / "jupyterhub_config.twin.py")


def test_sudoers_matches_golden_and_visudo_accepts_it(tmp_path: Path) -> None:
    text = config.render_sudoers(config.cluster_settings())
    assert_golden(text, GOLDEN / "sudoers")
    rule = tmp_path / "hpctool-jupyterhub"
    rule.write_text(text)
    rule.chmod(0o440)
    visudo = shutil.which("visudo") or "/usr/sbin/visudo"
    result = subprocess.run([visudo, "-c", "-f", str(rule)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # Least privilege: three commands, absolute, only as the allowed group.
    assert "ALL=(%hpctool-notebook) NOPASSWD:SETENV: HPCTOOL_NOTEBOOK_SLURM" in text
    assert "/opt/slurm/bin/sbatch, /opt/slurm/bin/squeue, /opt/slurm/bin/scancel\n" in text


def test_form_limits_come_from_instance_types() -> None:
    choices = {c.name: c for c in config.queue_choices(load_queues())}
    assert choices["compute"].cpus == 16 and choices["compute"].memory_gb == int(32 * 0.95)
    # spot mixes c7i/c6i/c6a.4xlarge: a request must fit the smallest
    assert choices["spot"].spot and choices["spot"].instance_type.endswith("(+5 more)")
    assert choices["fpga"].cpus == 24


def test_unknown_instance_type_is_a_clear_error() -> None:
    queues = slurm_queues({"Scheduling": {"SlurmQueues": [
        {"Name": "odd", "ComputeResources": [{"Name": "x", "InstanceType": "z9.huge"}]}]}})
    with pytest.raises(ConfigError, match="z9.huge") as error:
        config.queue_choices(queues)
    assert "INSTANCE_SPECS" in error.value.hint


@pytest.mark.parametrize(("overrides", "message"), [
    ({"allowed_groups": (), "allowed_users": ()}, "no allow rule"),
    ({"bind_ip": "0.0.0.0"}, "not on loopback"),
    ({"slurm_bin": "opt/slurm/bin"}, "not an absolute path"),
    ({"allowed_groups": ("Bad Group",)}, "not a Unix user or group"),
    ({"cull_timeout": 0}, "culler"),
])
def test_settings_rules(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.render_config(load_queues(), config.cluster_settings(**overrides))


def _hub_config(tmp_path: Path, extra: tuple[str, ...]) -> Path:
    settings = config.cluster_settings(config_dir=str(tmp_path), state_dir=str(tmp_path), extra_lines=extra)
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(config.render_config(load_queues(), settings))
    (tmp_path / "hpctool_spawner.py").write_text(config.spawner_source())
    return path


def test_real_jupyterhub_refuses_to_start_without_an_allow_rule(tmp_path: Path) -> None:
    """The generated file itself checks, so a hand edit cannot open the hub."""
    path = _hub_config(tmp_path, ("c.PAMAuthenticator.allowed_groups = []",))
    result = subprocess.run([str(REPO / ".venv" / "bin" / "jupyterhub"), "-f", str(path)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "hpctool: refusing to start JupyterHub: no allow rule" in result.stderr
    assert not (tmp_path / "jupyterhub.sqlite").exists()  # it stopped before opening anything


@pytest.mark.parametrize(("extra", "why"), [
    (('c.JupyterHub.authenticator_class = "null"',), "is not PAM"),
    (('c.JupyterHub.authenticator_class = "dummy"',), "is not PAM"),
    (("c.Authenticator.allow_all = True",), "allow_all"),
    (("c.PAMAuthenticator.allowed_groups = []",), "no allow rule"),
])
def test_generated_config_refuses_other_authenticators(tmp_path: Path, extra, why) -> None:
    """The same file through traitlets' loader, as JupyterHub reads it (in-process: fast)."""
    from traitlets.config.loader import PyFileConfigLoader

    path = _hub_config(tmp_path, extra)
    with pytest.raises(SystemExit, match=f"refusing to start JupyterHub: .*{why}"):
        PyFileConfigLoader(path.name, str(tmp_path)).load_config()


def test_generated_config_loads_as_is(tmp_path: Path) -> None:
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("jupyterhub_config.py", str(_hub_config(tmp_path, ()).parent)).load_config()
    assert loaded.JupyterHub.spawner_class == "hpctool_spawner.HpctoolSlurmSpawner"
    assert loaded.PAMAuthenticator.allowed_groups == ["hpctool-notebook"]


# Real output of `squeue -h -j ID --states=all -o '%T|%B|%r'` on the twin (Slurm 22.05).
@pytest.mark.parametrize(("line", "expected"), [
    ("RUNNING|compute-st-c7i4xl-1|None", JobState("RUNNING", "compute-st-c7i4xl-1", "")),
    ("PENDING|n/a|Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions",
     JobState("PENDING", "", "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher "
                             "priority partitions")),
    ("FAILED|compute-st-c7i4xl-1|NonZeroExitCode", JobState("FAILED", "compute-st-c7i4xl-1", "NonZeroExitCode")),
    ("slurm_load_jobs error: Invalid job id specified", None),
    ("", None),
])
def test_parse_job_state(line: str, expected: JobState | None) -> None:
    assert parse_job_state(line) == expected


def test_fatal_reasons() -> None:
    assert fatal_reason("BadConstraints")
    assert fatal_reason("ReqNodeNotAvail, UnavailableNodes:compute-dy-c7i-1")
    assert fatal_reason("Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority "
                        "partitions")
    assert not fatal_reason("Resources") and not fatal_reason("Priority") and not fatal_reason("")


def test_describe_end_names_a_spot_reclaim() -> None:
    text = describe_end("7", JobState("NODE_FAIL", "spot-st-mixed16-1", "None"), "spot-reclaimed")
    assert "NODE_FAIL" in text and "spot-st-mixed16-1" in text and "reclaimed by EC2" in text


QUEUES = [c.to_dict() for c in config.queue_choices(load_queues())]


def test_options_are_checked_against_the_queue() -> None:
    ok = check_options({"queue": ["compute"], "cpus": ["2"], "memory_gb": ["4"], "hours": ["3"]}, QUEUES, 24)
    assert ok["partition"] == "compute" and ok["nprocs"] == "2" and ok["memory"] == "4G"
    assert ok["runtime"] == "3:00:00"
    with pytest.raises(ValueError, match="CPUs must be from 1 to 16 on queue compute"):
        check_options({"queue": ["compute"], "cpus": ["64"], "memory_gb": ["1"], "hours": ["1"]}, QUEUES, 24)
    with pytest.raises(ValueError, match="unknown queue"):
        check_options({"queue": ["gpu"], "cpus": ["1"], "memory_gb": ["1"], "hours": ["1"]}, QUEUES, 24)
    with pytest.raises(ValueError, match="whole number"):
        check_options({"queue": ["compute"], "cpus": ["1; rm -rf"], "memory_gb": ["1"], "hours": ["1"]},
                      QUEUES, 24)


def test_form_lists_queues_and_marks_spot() -> None:
    form = options_form_html(QUEUES, 24, 4, notice="Slurm job 3 ended: <TIMEOUT>")
    for q in QUEUES:
        assert f'value="{q["name"]}"' in form
    assert form.count("may be reclaimed with 2 minutes' notice") == 1
    assert "&lt;TIMEOUT&gt;" in form  # Slurm's text is escaped


def test_render_command_writes_head_node_files(tmp_path: Path) -> None:
    assert main(["notebook", "render", "--out-dir", str(tmp_path), "--cull-timeout", "1800"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["allowed-groups", "chp-version", "hpctool_spawner.py", "jupyterhub_config.py",
                     "requirements.txt", "sudoers"]
    assert "--timeout=1800" in (tmp_path / "jupyterhub_config.py").read_text()
    assert "jupyterhub==6." in (tmp_path / "requirements.txt").read_text()
    assert (tmp_path / "sudoers").stat().st_mode & 0o077 == 0


def test_pinned_jupyterhub_major_is_the_one_installed() -> None:
    from importlib.metadata import version

    pinned = next(r for r in config.HUB_REQUIREMENTS if r.startswith("jupyterhub=="))
    assert version("jupyterhub") == pinned.split("==")[1]
    assert version("batchspawner") == "1.3.0"


def test_settings_replace_keeps_rules() -> None:
    settings = replace(config.cluster_settings(), allowed_users=("alice",), allowed_groups=())
    assert "alice" in config.render_config(load_queues(), settings)


def test_local_hub_without_a_twin_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HPCTOOL_HOME", str(tmp_path / "home"))
    assert main(["local", "hub", "status"]) == 1
    out = capsys.readouterr().out
    assert "jupyterhub: not running" in out and "log in: a Unix account in group hpctool-notebook" in out
    assert main(["local", "hub", "up"]) == 1
    assert "error: the twin is not running\nhint: start it first: hpctool local up" in capsys.readouterr().err


def test_setup_installs_the_proxy_version_the_head_node_gets() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert f"CHP_VERSION={config.CHP_VERSION}\n" in setup
