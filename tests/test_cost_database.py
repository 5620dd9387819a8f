"""The Slurm accounting database in `hpctool cost estimate`: priced from the snapshot's RDS figures,
sized as the shipped stack deploys it unless told, absent when the config has no accounting."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from hpctool.cli import main as cli
from hpctool.cost import estimate, prices
from hpctool.errors import ConfigError
from support.prices import BOOK_DATA

pytestmark = pytest.mark.usefixtures("shipped_prices")  # the figures of the shipped snapshot (conftest)


@pytest.fixture
def book() -> prices.PriceBook:
    return prices.PriceBook(copy.deepcopy(BOOK_DATA), "test book")


@pytest.fixture
def default_config(repo: Path) -> Path:
    return repo / "cluster-configs" / "default.yaml"


def without_accounting(config: Path, tmp_path: Path) -> Path:
    data = yaml.safe_load(config.read_text())
    del data["Scheduling"]["SlurmSettings"]["Database"]
    out = tmp_path / "no-accounting.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_the_database_is_priced_by_hand(book, default_config) -> None:
    db = estimate.estimate(default_config, book).database
    assert (db.instance_class, db.gib, db.multi_az) == ("db.t4g.small", 20, False)  # the stack's defaults
    assert db.hourly == pytest.approx(0.05)
    assert db.monthly == pytest.approx(0.05 * 730 + 20 * 0.2 + 0.5)  # instance, gp3, the secret
    assert (db.price_date, db.note) == ("2026-10-01", "")


def test_multi_az_doubles_instance_and_storage_not_the_secret(book, default_config) -> None:
    size = estimate.DatabaseSize("db.t4g.medium", 50, multi_az=True)
    db = estimate.estimate(default_config, book, database=size).database
    assert db.hourly == pytest.approx(0.2)
    assert db.monthly == pytest.approx(0.2 * 730 + 2 * 50 * 0.2 + 0.5)


def test_no_accounting_no_database_line(book, default_config, tmp_path) -> None:
    with_db = estimate.estimate(default_config, book)
    without = estimate.estimate(without_accounting(default_config, tmp_path), book)
    assert without.database is None
    assert with_db.fixed_monthly - without.fixed_monthly == pytest.approx(with_db.database.monthly)


def test_a_region_without_rds_figures_takes_us_east_1s_and_says_so(book, default_config, tmp_path) -> None:
    data = copy.deepcopy(BOOK_DATA)
    data["regions"]["eu-west-2"] = {**copy.deepcopy(data["regions"]["us-east-1"]), "date": "2026-11-01"}
    del data["regions"]["eu-west-2"]["rds"]
    config = yaml.safe_load(default_config.read_text())
    config["Region"] = "eu-west-2"
    path = tmp_path / "eu.yaml"
    path.write_text(yaml.safe_dump(config))
    db = estimate.estimate(path, prices.PriceBook(data, "test book")).database
    assert db.hourly == pytest.approx(0.05) and "us-east-1's RDS prices (none for eu-west-2" in db.note


def test_an_unpriced_class_is_a_clear_error(book, default_config) -> None:
    with pytest.raises(ConfigError, match=r"no RDS for mysql price for db\.r7g\.large") as error:
        estimate.estimate(default_config, book, database=estimate.DatabaseSize("db.r7g.large", 20))
    assert "db.t4g.small" in error.value.hint


def test_the_shipped_snapshot_prices_every_class_the_stack_offers(repo) -> None:
    from hpctool.configs.database import load_template

    offered = load_template()["Parameters"]["InstanceClass"]["AllowedValues"]
    shipped = prices.PriceBook(prices.shipped_snapshot(), "shipped")
    for region in ("us-east-1", "us-west-2"):
        rds = shipped.regions[region]["rds"]
        assert rds["date"] and rds["source"]
        for instance_class in offered:
            assert shipped.database(instance_class, region).hourly > 0, (region, instance_class)


def test_estimate_cli_prints_the_database_and_takes_its_size(default_config, capsys) -> None:
    assert cli(["cost", "estimate", str(default_config)]) == 0
    out = capsys.readouterr().out
    assert "accounting database (RDS for MySQL db.t4g.small, 20 GiB gp3)" in out and "RDS prices as of" in out
    assert cli(["cost", "estimate", str(default_config), "--json", "--database-class", "db.t4g.medium",
                "--database-gib", "40", "--database-multi-az"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["database"]["instance_class"], data["database"]["gib"], data["database"]["multi_az"]) == (
        "db.t4g.medium", 40, True)
    parts = sum(r["monthly"] for r in data["storage"]) + data["head_node_monthly"] + data["database"]["monthly"]
    assert data["fixed_monthly"] == pytest.approx(parts, abs=1e-3)
