"""Rendering cluster configs: golden files, the default config, values errors, --set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpctool.cli import main
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG, load_queues
from hpctool.configs.render import (
    SPEC_FILE,
    VALUES_DIR,
    apply_overrides,
    load_spec,
    render,
    render_values,
)
from hpctool.errors import ConfigError
from support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "configs"
VALUES_FILES = sorted(VALUES_DIR.glob("*.yaml"))


def test_values_files_exist() -> None:
    assert {p.stem for p in VALUES_FILES} >= {"dev", "prod"}


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.stem)
def test_render_matches_golden(values_file: Path) -> None:
    assert_golden(render(values_file), GOLDEN / f"{values_file.stem}.yaml")


def test_default_config_is_the_dev_rendering() -> None:
    assert_golden(render(VALUES_DIR / "dev.yaml"), DEFAULT_CLUSTER_CONFIG)


def test_default_config_keeps_the_twin_queues() -> None:
    queues = {q.name: q for q in load_queues()}
    assert list(queues) == ["compute", "spot", "fpga", "storage"]
    assert queues["compute"].capacity_type == "ONDEMAND"
    assert queues["spot"].is_spot and len(queues["spot"].compute_resources[0].instance_types) >= 2
    assert queues["fpga"].compute_resources[0].instance_types == ("f2.6xlarge",)
    assert queues["storage"].compute_resources[0].instance_types[0].startswith("i4i.")
    for queue in queues.values():
        assert {"project", "cost-centre", "hpctool-queue"} <= set(queue.tags)
        assert all(len(r.name) <= 10 for r in queue.compute_resources)


def test_prod_declares_a_second_fpga_queue_with_its_own_ami() -> None:
    config = yaml.safe_load(render(VALUES_DIR / "prod.yaml"))
    fpga = [q for q in config["Scheduling"]["SlurmQueues"] if q["Name"].startswith("fpga")]
    assert len(fpga) == 2
    assert len({q["Image"]["CustomAmi"] for q in fpga}) == 2


def test_security_defaults_in_every_rendering() -> None:
    for values_file in VALUES_FILES:
        config = yaml.safe_load(render(values_file))
        assert config["Imds"]["ImdsSupport"] == "v2.0"
        assert config["HeadNode"]["Imds"]["Secured"] is True
        assert config["HeadNode"]["Ssh"]["AllowedIps"] != "0.0.0.0/0"
        efs = next(s for s in config["SharedStorage"] if s["StorageType"] == "Efs")
        assert efs["EfsSettings"]["Encrypted"] is True
        for place in [config["HeadNode"], *config["Scheduling"]["SlurmQueues"]]:
            writes = [a for a in place["Iam"]["S3Access"] if a["EnableWriteAccess"]]
            assert len(writes) == 1 and writes[0]["KeyName"].endswith("/*")
            assert place["CustomActions"]["OnNodeConfigured"]["Script"].startswith("s3://")


def dev_values() -> dict:
    return yaml.safe_load((VALUES_DIR / "dev.yaml").read_text())


def test_missing_value_names_key_and_file() -> None:
    values = dev_values()
    del values["data"]["results_bucket"]
    with pytest.raises(ConfigError) as error:
        render_values(values, "my-values.yaml")
    assert "data.results_bucket" in error.value.message and "my-values.yaml" in error.value.message


def test_missing_list_item_value_names_the_item() -> None:
    values = dev_values()
    del values["queues"]["fpga"][0]["name"]
    with pytest.raises(ConfigError, match=r"queues\.fpga\[0\].*queues\.fpga\[\]\.name"):
        render_values(values, "v.yaml")


def test_unknown_value_names_key_and_file(tmp_path: Path) -> None:
    values_file = tmp_path / "typo.yaml"
    values = dev_values()
    values["head_node"]["ssh_alowed_cidr"] = "10.0.0.0/8"
    values_file.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError) as error:
        render(values_file)
    assert "head_node.ssh_alowed_cidr" in error.value.message and str(values_file) in error.value.message
    assert "ssh_allowed_cidr" in error.value.hint


def test_wrong_type_is_an_error() -> None:
    values = dev_values()
    values["queues"]["spot"]["max_count"] = "fifty"
    with pytest.raises(ConfigError, match=r"queues\.spot\.max_count.*must be int"):
        render_values(values, "v.yaml")


def test_set_overrides_values_and_reads_yaml() -> None:
    overrides = ["queues.spot.max_count=7", "queues.spot.instance_types=[c7i.4xlarge, c6i.4xlarge]",
                 "queues.fpga[0].max_count=1"]
    values = apply_overrides(dev_values(), overrides)
    config = yaml.safe_load(render_values(values, "v.yaml"))
    spot = config["Scheduling"]["SlurmQueues"][1]
    assert spot["ComputeResources"][0]["MaxCount"] == 7
    assert [i["InstanceType"] for i in spot["ComputeResources"][0]["Instances"]] == ["c7i.4xlarge", "c6i.4xlarge"]
    assert config["Scheduling"]["SlurmQueues"][2]["ComputeResources"][0]["MaxCount"] == 1


@pytest.mark.parametrize("override, match", [
    ("queues.spot.maxcount=3", "unknown value `queues.spot.maxcount`"),
    ("no-equals-sign", "not KEY=VALUE"),
    ("queues.fpga[5].max_count=1", "has no item 5"),
])
def test_bad_set_is_an_error(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(dev_values(), [override])


def test_values_that_look_like_yaml_stay_strings() -> None:
    values = apply_overrides(dev_values(), ["tags.cost_centre='yes'", "tags.project='1.10'"])
    config = yaml.safe_load(render_values(values, "v.yaml"))
    assert config["Tags"][0]["Value"] == "1.10" and config["Tags"][1]["Value"] == "yes"


def test_every_value_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "cluster-configs.md").read_text()
    missing = [key for key in load_spec() if f"`{key}`" not in docs]
    assert not missing, f"keys of {SPEC_FILE.name} without a row in docs/cluster-configs.md: {missing}"


def test_cli_render_writes_file_and_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cluster.yaml"
    assert main(["config", "render", "--values", str(VALUES_DIR / "dev.yaml"), "--set",
                 "queues.compute.max_count=3", "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] == 3
    assert main(["config", "render", "--values", str(tmp_path / "absent.yaml")]) == 2  # usage: no such file
    assert "absent.yaml" in capsys.readouterr().err
