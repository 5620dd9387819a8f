"""The accounting check: a cluster without Slurm accounting is warned, and SlurmSettings.Database is
checked value by value (tables of good and bad values, each with the finding's level and text)."""

from __future__ import annotations

import copy

import pytest
import yaml

from hpctool.configs.checks.registry import Config
from hpctool.configs.checks.run import run_check
from hpctool.configs.render import VALUES_DIR, apply_overrides, render_values
from hpctool.configs.validate import validate_config

GOOD = {
    "Uri": "acct.c0a1b2c3d4e5.us-east-1.rds.amazonaws.com:3306",
    "UserName": "slurmadmin",
    "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:acct-AbCdEf",
    "DatabaseName": "slurm_acct_db",
}


def config_with(database: dict | None = None, region: str = "us-east-1", **settings: object) -> dict:
    slurm_settings: dict = dict(settings)
    if database is not None:
        slurm_settings["Database"] = database
    return {"Region": region, "Scheduling": {"Scheduler": "slurm", "SlurmSettings": slurm_settings,
                                             "SlurmQueues": []}}


def findings(config: dict) -> list[tuple[str, str, str]]:
    found, _ = run_check("accounting", Config(config, None))
    return [(str(f.level), f.path.removeprefix("Scheduling.SlurmSettings.Database"), f.message) for f in found]


def test_the_good_database_has_no_finding_and_says_what_it_could_not_check() -> None:
    found, not_checked = run_check("accounting", Config(config_with(dict(GOOD)), None))
    assert found == []
    assert [n.check for n in not_checked] == ["hpctool:accounting"]
    assert "head node" in not_checked[0].reason and not_checked[0].kind == "account"


def test_a_cluster_without_accounting_is_warned_with_what_breaks_and_the_fix() -> None:
    found, _ = run_check("accounting", Config(config_with(None), None))
    assert len(found) == 1
    warning = found[0]
    assert (str(warning.level), warning.path) == ("warning", "Scheduling.SlurmSettings.Database")
    for broken in ("Slurm accounting storage is disabled", "hpctool cost jobs", "report --since", "submit --wait",
                   "hpctool jobs", "Snakemake profile's job status", "fall back to squeue", "MinJobAge"):
        assert broken in warning.message, broken
    assert "database-template" in warning.hint and "accounting.database_uri" in warning.hint


def test_external_slurmdbd_counts_as_accounting_and_awsbatch_is_not_asked() -> None:
    assert findings(config_with(None, ExternalSlurmdbd={"Host": "dbd.internal"})) == []
    batch = config_with(None)
    batch["Scheduling"]["Scheduler"] = "awsbatch"
    assert findings(batch) == []


GOOD_VALUES = [
    ("Uri", "db.internal:3306"),
    ("Uri", "10.0.3.17:3306"),
    ("Uri", "[fd00::17]:3306"),
    ("Uri", "acct.c0a1b2c3d4e5.eu-west-2.rds.amazonaws.com:13306"),
    ("UserName", "slurm"),
    ("UserName", "a" * 32),
    ("PasswordSecretArn", "arn:aws:secretsmanager:us-east-1:000000000000:secret:x"),
    ("DatabaseName", "slurm_acct_db"),
    ("DatabaseName", "a" * 64),
    ("DatabaseName", "0"),
]


@pytest.mark.parametrize(("key", "value"), GOOD_VALUES)
def test_good_values(key: str, value: str) -> None:
    assert findings(config_with({**GOOD, key: value})) == []


# (key, value or None to remove it, level, path end, text in the message)
BAD_VALUES = [
    ("Uri", None, "error", ".Uri", "Uri is missing"),
    ("Uri", "", "error", ".Uri", "Uri is missing"),
    ("Uri", "mysql://db.internal:3306", "error", ".Uri", "has a scheme (mysql://)"),
    ("Uri", "/db.internal:3306", "error", ".Uri", "starts with '/'"),
    ("Uri", "db.internal:3306/slurm", "error", ".Uri", "is not host:port"),
    ("Uri", "admin@db.internal:3306", "error", ".Uri", "is not host:port"),
    ("Uri", "db.internal:mysql", "error", ".Uri", "port 'mysql' is not a number"),
    ("Uri", "db.internal:70000", "error", ".Uri", "port '70000' is not a number from 1 to 65535"),
    ("Uri", "db.internal:", "info", ".Uri", "has no port: ParallelCluster assumes 3306"),
    ("Uri", "db.internal", "info", ".Uri", "has no port: ParallelCluster assumes 3306"),
    ("Uri", "-db-.internal:3306", "error", ".Uri", "is not a host name or IP address"),
    ("Uri", "10.0.0.300:3306", "error", ".Uri", "is not a host name or IP address"),
    ("UserName", None, "error", ".UserName", "UserName is missing"),
    ("UserName", "a" * 33, "error", ".UserName", "is 33 characters; MySQL allows 32"),
    ("PasswordSecretArn", None, "error", ".PasswordSecretArn", "PasswordSecretArn is missing"),
    ("PasswordSecretArn", "my-secret", "error", ".PasswordSecretArn", "is not an ARN"),
    ("PasswordSecretArn", "arn:aws:ssm:us-east-1:123456789012:parameter/slurm-db", "error", ".PasswordSecretArn",
     "is not a Secrets Manager secret"),
    ("PasswordSecretArn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:", "error", ".PasswordSecretArn",
     "is not a Secrets Manager secret"),
    ("PasswordSecretArn", "arn:aws:secretsmanager:us-east-1:1234:secret:acct", "error", ".PasswordSecretArn",
     "account '1234' is not 12 digits"),
    ("PasswordSecretArn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acct", "error",
     ".PasswordSecretArn", "is in eu-west-1, the cluster in us-east-1"),
    ("DatabaseName", None, "info", ".DatabaseName", "names the database after the cluster"),
    ("DatabaseName", "Slurm", "error", ".DatabaseName", "must be 1 to 64 lowercase letters, digits or underscores"),
    ("DatabaseName", "slurm-acct", "error", ".DatabaseName", "must be 1 to 64 lowercase letters"),
    ("DatabaseName", "", "error", ".DatabaseName", "must be 1 to 64 lowercase letters"),
    ("DatabaseName", "a" * 65, "error", ".DatabaseName", "must be 1 to 64 lowercase letters"),
    ("DatabaseName", 7, "error", ".DatabaseName", "must be 1 to 64 lowercase letters"),
]


@pytest.mark.parametrize(("key", "value", "level", "path", "text"), BAD_VALUES,
                         ids=[f"{k}={v!r}"[:40] for k, v, *_ in BAD_VALUES])
def test_bad_values(key: str, value: object, level: str, path: str, text: str) -> None:
    database = dict(GOOD)
    if value is None:
        del database[key]
    else:
        database[key] = value
    found = findings(config_with(database))
    assert [(lvl, where) for lvl, where, _ in found] == [(level, path)], found
    assert text in found[0][2], found[0][2]


def test_database_and_external_slurmdbd_together_are_an_error() -> None:
    found = findings(config_with(dict(GOOD), ExternalSlurmdbd={"Host": "dbd.internal"}))
    assert [(lvl, where) for lvl, where, _ in found] == [("error", "")]
    assert "both set" in found[0][2]


def test_a_database_that_is_no_mapping_is_an_error() -> None:
    assert findings(config_with("db.internal:3306")) == [("error", "", "Database is not a mapping")]  # type: ignore[arg-type]


def test_the_region_comes_from_the_config() -> None:
    eu = {**GOOD, "PasswordSecretArn": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:acct"}
    assert findings(config_with(eu, region="eu-west-2")) == []
    assert [lvl for lvl, _, _ in findings(config_with(eu, region="us-east-1"))] == ["error"]


# -- the shipped configs --------------------------------------------------------------------------
def shipped(name: str, *overrides: str) -> dict:
    values = apply_overrides(yaml.safe_load((VALUES_DIR / f"{name}.yaml").read_text()), list(overrides))
    return yaml.safe_load(render_values(values, f"{name}.yaml"))


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_the_shipped_values_render_accounting_and_validate_without_its_warning(name: str) -> None:
    config = shipped(name)
    database = config["Scheduling"]["SlurmSettings"]["Database"]
    assert set(database) == {"Uri", "UserName", "PasswordSecretArn", "DatabaseName"}
    assert database["DatabaseName"] == "slurm_acct_db"
    # the head node joins the security group the database admits
    assert config["HeadNode"]["Networking"]["AdditionalSecurityGroups"][0].startswith("sg-")
    report = validate_config(copy.deepcopy(config), name)
    assert report.valid, report.errors
    assert [f for f in report.findings if f.check == "hpctool:accounting"] == []


def test_a_config_without_accounting_gets_exactly_that_warning() -> None:
    with_it = validate_config(shipped("dev"), "dev")
    without = validate_config(shipped("dev", "accounting.database_uri=''"), "dev-without")
    added = [f for f in without.findings if f not in with_it.findings]
    assert [(f.check, str(f.level), f.path) for f in added] == [
        ("hpctool:accounting", "warning", "Scheduling.SlurmSettings.Database")]
    assert without.valid and len(without.warnings) == len(with_it.warnings) + 1


def test_an_hpctool_error_replaces_the_schemas_generic_one_unless_suppressed() -> None:
    config = shipped("dev", "accounting.database_name=Slurm-DB")
    report = validate_config(copy.deepcopy(config), "bad-name")
    at = [f for f in report.errors if f.path.endswith("DatabaseName")]
    assert [f.check for f in at] == ["hpctool:accounting"] and "lowercase" in at[0].message
    suppressed = validate_config(copy.deepcopy(config), "bad-name", suppress=["accounting"])
    assert [f.check for f in suppressed.errors if f.path.endswith("DatabaseName")] == ["schema"]
    assert not suppressed.valid  # the error stays reported
