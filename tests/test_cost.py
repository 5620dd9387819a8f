"""Prices, cluster estimates and per-job cost, against hand-computed cases (no twin: pure functions,
botocore's Stubber for the Price List API, moto for the spot price history)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hpctool.cli import main as cli
from hpctool.cluster.queues import load_queues
from hpctool.cost import estimate, jobcost, prices
from hpctool.errors import ConfigError
from support.prices import BOOK_DATA, SLURM_NODES

DATA = Path(__file__).parent / "data"

# A small price book with round numbers, so every expected figure below can be worked by hand.

pytestmark = pytest.mark.usefixtures("shipped_prices")  # the figures of the shipped snapshot (conftest)



@pytest.fixture
def book() -> prices.PriceBook:
    return prices.PriceBook(copy.deepcopy(BOOK_DATA), "test book")


# -- the snapshot --------------------------------------------------------------------------------
def test_the_shipped_snapshot_prices_every_instance_type_of_the_shipped_configs(repo):
    book = prices.load()
    assert book.origin == "shipped snapshot" and book.date == "2026-11-01"
    for config in [repo / "cluster-configs" / "default.yaml"]:
        for queue in load_queues(config):
            for resource in queue.compute_resources:
                for instance_type in resource.instance_types:
                    price = book.instance(instance_type, "us-east-1")
                    assert price.on_demand > 0
                    if queue.is_spot:
                        assert 0 < price.spot_at() < price.on_demand
    prod_types = ["c7i.8xlarge", "c6i.8xlarge", "c6a.8xlarge", "c7a.8xlarge", "f2.12xlarge", "i4i.8xlarge"]
    assert all(book.instance(t, "us-east-1").on_demand > 0 for t in prod_types)
    assert {"us-east-1", "us-west-2", "eu-west-2", "eu-central-1"} <= set(book.regions)
    for region in book.regions:  # storage per GB-month everywhere
        assert book.storage("s3", "DEEP_ARCHIVE", region) < book.storage("s3", "STANDARD", region)
        assert book.storage("fsx_lustre", "PERSISTENT_2/125", region) > 0 and book.storage("efs", "standard", region)


def test_spot_price_at_a_time_and_interruption_rate(book):
    price = book.instance("c7i.4xlarge", "us-east-1")
    assert price.spot_at(datetime(2026, 9, 1, tzinfo=UTC)) == 0.3  # before the first point: the first
    assert price.spot_at(datetime(2026, 10, 10, tzinfo=UTC)) == 0.3
    assert price.spot_at(datetime(2026, 10, 15, tzinfo=UTC)) == 0.4
    assert price.spot_at() == 0.4
    assert book.instance("f2.6xlarge", "us-east-1").spot_at() is None
    with pytest.raises(ConfigError, match="no spot price"):
        book.instance("f2.6xlarge", "us-east-1").hourly(spot=True)
    # 7.5 % a month: -ln(0.925) / 730 per hour
    assert book.interruption_rate_per_hour("c7i.4xlarge", "us-east-1") == pytest.approx(0.00010680, rel=1e-3)
    with pytest.raises(ConfigError, match="--refresh --region ap-south-1"):
        book.instance("c7i.4xlarge", "ap-south-1")
    with pytest.raises(ConfigError, match="no price for x9.huge"):
        book.instance("x9.huge", "us-east-1")


def test_a_broken_or_missing_snapshot_file_is_a_clear_error(tmp_path):
    broken = tmp_path / "prices.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable price snapshot"):
        prices.load(broken)
    with pytest.raises(ConfigError, match="no such price snapshot"):
        prices.load(tmp_path / "absent.json")


def _pricing_response(instance_type: str) -> dict:
    recorded = json.loads((DATA / "aws" / "pricing-get-products-c7i.4xlarge.json").read_text())
    product = recorded["PriceList"][0]
    if instance_type != "c7i.4xlarge":  # same shape, other type: 0.68 USD/h
        text = json.dumps(product).replace("c7i.4xlarge", instance_type).replace("0.7140000000", "0.6800000000")
        product = json.loads(text)
    return {"FormatVersion": "aws_v1", "PriceList": [json.dumps(product)]}


def test_refresh_reads_the_price_list_and_spot_history(book, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTOOL_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    pricing = boto3.session.Session(region_name="us-east-1").client("pricing")
    with Stubber(pricing) as stub, mock_aws():
        for instance_type in ["c7i.4xlarge", "c6i.4xlarge"]:
            stub.add_response("get_products", _pricing_response(instance_type), {
                "ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1",
                "Filters": prices.on_demand_filters(instance_type, "us-east-1")})
        ec2 = boto3.client("ec2", region_name="us-east-1")
        path = prices.refresh_from_aws("us-east-1", ["c7i.4xlarge", "c6i.4xlarge"], book,
                                       pricing_client=pricing, ec2_client=ec2)
        stub.assert_no_pending_responses()
    assert path == tmp_path / "prices.json"
    fresh = prices.load()  # the refreshed file now wins over the shipped snapshot
    assert fresh.origin == str(path)
    c7i = fresh.instance("c7i.4xlarge", "us-east-1")
    assert (c7i.on_demand, c7i.vcpus, c7i.memory_gib) == (0.714, 16, 32.0)
    assert fresh.instance("c6i.4xlarge", "us-east-1").on_demand == 0.68
    # moto answers the spot history with its canned price (0.00001 in every zone)
    assert c7i.spot_at() == pytest.approx(0.00001)
    assert fresh.region_date("us-east-1") == datetime.now(UTC).strftime("%Y-%m-%d")
    assert fresh.instance("f2.6xlarge", "us-east-1").on_demand == 2.0  # untouched types stay


def test_daily_spot_points_take_each_zones_last_price_and_the_median():
    day = datetime(2026, 11, 2, tzinfo=UTC)
    records = [
        {"az": "a", "instance_type": "t", "price": 0.5, "timestamp": day.replace(hour=1)},
        {"az": "a", "instance_type": "t", "price": 0.3, "timestamp": day.replace(hour=9)},
        {"az": "b", "instance_type": "t", "price": 0.4, "timestamp": day.replace(hour=3)},
        {"az": "c", "instance_type": "t", "price": 0.9, "timestamp": day.replace(hour=3)},
        {"az": "a", "instance_type": "t", "price": 0.2, "timestamp": day.replace(day=3)},
    ]
    assert prices.spot_points(records) == [["2026-11-02T00:00:00Z", 0.4], ["2026-11-03T00:00:00Z", 0.2]]


def test_a_price_list_record_without_an_hourly_price_is_refused():
    product = json.loads((DATA / "aws" / "pricing-get-products-c7i.4xlarge.json").read_text())["PriceList"][0]
    del product["terms"]["OnDemand"]
    with pytest.raises(ConfigError, match="no hourly on-demand price"):
        prices.on_demand_from_product(product)


# -- cluster estimate --------------------------------------------------------------------------------
def test_estimate_of_the_default_config_by_hand(book, repo):
    result = estimate.estimate(repo / "cluster-configs" / "default.yaml", book, efs_gib=50)
    rows = {(r.queue, r.resource): r for r in result.resources}
    assert (rows["compute", "c7i4xl"].node_hourly, rows["compute", "c7i4xl"].max_hourly) == (0.8, pytest.approx(16.0))
    spot = rows["spot", "mixed16"]  # c7i, c6i, c6a: on-demand 0.5..0.8, latest spot 0.2..0.4; pays spot, dearest type
    assert (spot.on_demand_low, spot.on_demand_high, spot.spot_low, spot.spot_high) == (0.5, 0.8, 0.2, 0.4)
    assert spot.node_hourly == 0.4 and spot.max_hourly == pytest.approx(20.0)  # 50 x 0.4
    fallback = rows["spot", "mixed16m"]  # m7i, m6i, m6a: on-demand 0.7..0.9, spot 0.3..0.45
    assert (fallback.on_demand_low, fallback.on_demand_high, fallback.spot_low, fallback.spot_high) == (
        0.7, 0.9, 0.3, 0.45)
    assert fallback.max_hourly == pytest.approx(50 * 0.45)
    rows = {r.queue: r for r in result.resources}
    assert rows["fpga"].spot_low is None and rows["fpga"].max_hourly == pytest.approx(8.0)
    assert rows["storage"].max_hourly == pytest.approx(9.6)
    assert result.head_node_monthly == pytest.approx(0.2 * 730 + 100 * 0.1)  # c7i.xlarge + 100 GiB gp3
    storage = {s.name: s.monthly for s in result.storage}
    assert storage == {"home": pytest.approx(15.0), "fsx": pytest.approx(1200 * 0.15)}
    assert result.database.monthly == pytest.approx(0.05 * 730 + 20 * 0.2 + 0.5)  # the shipped stack's size
    assert result.fixed_monthly == pytest.approx(156 + 15 + 180 + 41)
    assert result.max_hourly == pytest.approx(16 + 20 + 22.5 + 8 + 9.6)
    assert result.price_date == "2026-11-01"


def test_estimate_cli_prints_the_price_date_and_json(repo, capsys):
    assert cli(["cost", "estimate", str(repo / "cluster-configs" / "default.yaml")]) == 0
    out = capsys.readouterr().out
    assert "prices as of 2026-11-01 (shipped snapshot)" in out and "spot" in out
    assert cli(["cost", "estimate", str(repo / "cluster-configs" / "default.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["price_date"] == "2026-11-01" and len(data["resources"]) == 5  # spot has two resources
    assert data["compute_max_hourly"] == pytest.approx(sum(r["max_hourly"] for r in data["resources"]), abs=1e-3)


def test_estimate_errors_are_clear(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("Region: us-east-1\nHeadNode: {InstanceType: c7i.xlarge}\nScheduling:\n  SlurmQueues:\n"
                      "    - Name: q\n      CapacityType: SPOT\n      ComputeResources:\n"
                      "        - {Name: f, InstanceType: f2.6xlarge}\n")
    assert cli(["cost", "estimate", str(config)]) == 1
    err = capsys.readouterr().err
    assert "queue q: no spot price for f2.6xlarge" in err and "hint:" in err and "Traceback" not in err
    assert cli(["cost", "estimate", str(tmp_path / "none.yaml")]) == 2  # a usage error, as for validate
    assert "no such file" in capsys.readouterr().err


def test_prices_cli_lists_the_region(capsys):
    assert cli(["cost", "prices", "--region", "eu-west-2", "--type", "c7i.4xlarge", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["date"] == "2026-11-01" and data["instances"][0]["instance_type"] == "c7i.4xlarge"
    assert data["instances"][0]["spot"] < data["instances"][0]["on_demand"]


# -- per-job cost ---------------------------------------------------------------------------------


def _catalog(book: prices.PriceBook, repo: Path, nodes=SLURM_NODES) -> jobcost.NodeCatalog:
    return jobcost.NodeCatalog(load_queues(repo / "cluster-configs" / "default.yaml"), book, "us-east-1", nodes)


def test_job_cost_by_hand(book, repo):
    text = (DATA / "cost" / "sacct-cost-handmade.txt").read_text()
    runs = jobcost.parse_cost_records(text)
    assert [r.job_id for r in runs if not r.final] == ["13"]
    items = {(c.job_id, c.lost): c for c in jobcost.costs(runs, _catalog(book, repo))}
    # 10: 1 of 4 CPUs, 500 of 1000 MB for 1 h on-demand c7i.4xlarge: memory share 0.5 x 0.8
    assert items["10", False].share == 0.5 and items["10", False].cost == pytest.approx(0.4)
    # 11: --exclusive gets all 4 CPUs: the whole node for 30 min
    assert items["11", False].share == 1.0 and items["11", False].cost == pytest.approx(0.4)
    # 12: two nodes, 2 CPUs and 1000M in all: 1 CPU (0.25) and 500M (0.5) each, for 2 h: 2 x 2 x 0.5 x 0.8
    assert items["12", False].nodes == 2 and items["12", False].cost == pytest.approx(1.6)
    # 13: spot (a c6i.4xlarge node at 0.2/h), 2 CPUs of 4: the requeued 20 min run is lost work,
    # the 1 h final run the job's cost
    assert items["13", True].cost == pytest.approx(20 / 60 * 0.5 * 0.2)
    assert items["13", False].cost == pytest.approx(0.5 * 0.2) and items["13", False].instance_type == "c6i.4xlarge"
    # 14 never started (pending): no cost. 15: a node the controller no longer knows (only the config):
    # c7i.4xlarge from the config and the snapshot, 16 vCPUs and 32 GiB: 8 CPUs -> half, 90 min
    assert ("14", False) not in items
    assert items["15", False].share == 0.5 and items["15", False].cost == pytest.approx(1.5 * 0.5 * 0.8)
    # 16 ran on spot before the price rose on 2026-10-15: 0.3/h, the whole node (exclusive), 10 h.
    assert items["16", False].cost == pytest.approx(10 * 0.3)

    by_user = jobcost.summarise(items.values(), "user")
    groups = {g.key: (g.jobs, round(g.cost, 6)) for g in by_user.groups}
    assert groups == {"alice": (3, 0.4 + 0.4 + 0.1), "bob": (1, 1.6), "carol": (2, 0.6 + 3.0)}
    assert (by_user.lost_runs, by_user.lost_cost) == (1, pytest.approx(1 / 30))
    assert by_user.total == pytest.approx(0.9 + 1.6 + 3.6 + 1 / 30)
    by_queue = {g.key: g.cost for g in jobcost.summarise(items.values(), "queue").groups}
    assert by_queue == {"compute": pytest.approx(0.4 + 0.4 + 1.6 + 0.6), "spot": pytest.approx(0.1 + 3.0)}
    # a job that ran two rules splits its cost between them
    by_rule = jobcost.summarise(items.values(), "rule", {"10": ["align"], "12": ["call", "qc"]})
    rules = {g.key: g.cost for g in by_rule.groups}
    assert rules["align"] == pytest.approx(0.4) and rules["call"] == rules["qc"] == pytest.approx(0.8)
    assert rules["(not in a run)"] == pytest.approx(0.4 + 0.1 + 0.6 + 3.0)
    assert by_rule.jobs == by_user.jobs == 6  # job 12 counted once, though in two rules


def test_a_node_of_no_queue_and_a_broken_row_are_clear_errors(book, repo):
    catalog = _catalog(book, repo)
    with pytest.raises(ConfigError, match="belongs to no queue"):
        catalog.spec("gpu-st-g5-1", "gpu")
    with pytest.raises(ConfigError, match="fields where 14 were asked"):
        jobcost.parse_cost_records("1|root|root|compute\n")


def test_a_run_on_a_removed_queue_is_left_out_and_listed(book, repo):
    """A queue removed by an update: its runs stay in accounting, but no instance type prices them."""
    catalog = _catalog(book, repo)
    run = jobcost.parse_cost_records((DATA / "cost" / "sacct-cost-handmade.txt").read_text())[0]
    gone = run._replace(job_id="999", node_list="gpu-st-g5-1", partition="gpu")
    priced = jobcost.costs([run, gone], catalog)
    assert [c.job_id for c in priced] == [run.job_id] and catalog.unpriced == ["999"]


def test_tres_memory_units():
    assert jobcost.tres_mem_mb("billing=1,cpu=1,mem=500M,node=1") == 500
    assert jobcost.tres_mem_mb("cpu=4,mem=2G,node=1") == 2048
    assert jobcost.tres_mem_mb("cpu=4,mem=1.5T") == 1.5 * 1024 * 1024
    assert jobcost.tres_mem_mb("cpu=4,node=1") == 0


def test_real_twin_accounting_with_a_requeued_job(book, repo):
    """sacct and scontrol output pasted from the twin: job 1 (spot, 2 of 4 CPUs) was requeued after
    3 s and then ran 8 s; job 2 was --exclusive (all 4 CPUs); job 3 ran on two nodes."""
    from hpctool.slurm.parse import parse_scontrol_records

    nodes = parse_scontrol_records((DATA / "cost" / "scontrol-nodes-twin.txt").read_text())
    runs = jobcost.parse_cost_records((DATA / "cost" / "sacct-cost-twin.txt").read_text())
    assert [(r.job_id, r.state, r.final) for r in runs] == [
        ("1", "REQUEUED", False), ("2", "COMPLETED", True), ("3", "COMPLETED", True), ("1", "COMPLETED", True)]
    items = jobcost.costs(runs, _catalog(book, repo, nodes))
    cost = {(i.job_id, i.lost): i for i in items}
    # the spot node's features say c7i.4xlarge; spot 0.4/h since 2026-10-15; 2 of 4 CPUs (500 of 1807 MB)
    assert cost["1", True].cost == pytest.approx(3 / 3600 * 0.5 * 0.4)
    assert cost["1", False].cost == pytest.approx(8 / 3600 * 0.5 * 0.4) and cost["1", False].spot
    assert cost["2", False].share == 1.0 and cost["2", False].cost == pytest.approx(2 / 3600 * 0.8)
    assert cost["3", False].share == 0.25 and cost["3", False].cost == pytest.approx(2 * 2 / 3600 * 0.25 * 0.8)
