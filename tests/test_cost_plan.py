"""`hpctool cost plan`: the Monte Carlo against cases worked by hand and by formula, and its seed."""

from __future__ import annotations

import json
import math

import pytest

from hpctool.cli import main as cli
from hpctool.cluster.queues import load_queues
from hpctool.cost import plan
from hpctool.errors import UsageError

pytestmark = pytest.mark.usefixtures("shipped_prices")  # the figures of the shipped snapshot (conftest)



def test_without_interruptions_every_figure_is_exact():
    cohort = plan.Cohort(samples=48, steps=(("align", 2.5), ("call", 1.0)), deadline_h=17.5, nodes=10)
    market = plan.Market(on_demand=0.8, spot=0.3, interruptions_per_hour=0.0)
    outcomes = {o.strategy: o for o in plan.compare(cohort, market, trials=20)}
    # 48 samples x 3.5 h = 168 node-hours; 10 nodes: 5 rounds of 3.5 h = 17.5 h, just in time
    assert outcomes["on-demand"].mean_cost == pytest.approx(168 * 0.8)
    assert outcomes["spot"].mean_cost == pytest.approx(168 * 0.3) == outcomes["spot+checkpoint"].mean_cost
    assert all(o.mean_makespan_h == pytest.approx(17.5) and o.miss_probability == 0 for o in outcomes.values())
    assert all(o.stdev_cost == pytest.approx(0) and o.mean_interruptions == 0 for o in outcomes.values())
    late = plan.simulate(plan.Cohort(48, (("align", 2.5), ("call", 1.0)), 17.0, 10), market, "on-demand", trials=5)
    assert late.miss_probability == 1.0


def test_spot_without_checkpoints_matches_the_restart_formula():
    """A step of w hours restarted from nothing on each interruption (rate r, no restart time) bills
    (e^(r w) - 1) / r hours on average, after e^(r w) - 1 interruptions."""
    cohort = plan.Cohort(samples=1, steps=(("wgs", 2.0),), deadline_h=100, nodes=1)
    market = plan.Market(on_demand=1.0, spot=1.0, interruptions_per_hour=0.5, restart_minutes=0)
    result = plan.simulate(cohort, market, "spot", trials=4000, seed=3)
    assert result.mean_cost == pytest.approx((math.e - 1) / 0.5, rel=0.04)
    assert result.mean_interruptions == pytest.approx(math.e - 1, rel=0.05)


def test_checkpoint_on_notice_loses_only_restarts():
    """Checkpointed on the notice, a w-hour step sees r w interruptions on average, each a restart of
    R hours: it bills w + r w R hours."""
    cohort = plan.Cohort(samples=1, steps=(("wgs", 2.0),), deadline_h=100, nodes=1)
    market = plan.Market(on_demand=1.0, spot=0.5, interruptions_per_hour=0.5, restart_minutes=6)
    result = plan.simulate(cohort, market, "spot+checkpoint", trials=4000, seed=3)
    assert result.mean_interruptions == pytest.approx(1.0, rel=0.05)
    assert result.mean_cost == pytest.approx((2.0 + 1.0 * 0.1) * 0.5, rel=0.01)
    assert result.mean_lost_hours == pytest.approx(0.1, rel=0.06)
    # hourly checkpoints: an interruption also loses the work since the last full hour
    hourly = plan.simulate(cohort, plan.Market(1.0, 0.5, 0.5, checkpoint_minutes=60, restart_minutes=6),
                           "spot+checkpoint", trials=4000, seed=3)
    assert hourly.mean_lost_hours > result.mean_lost_hours + 0.2


def test_the_mix_finishes_an_interrupted_step_on_demand():
    cohort = plan.Cohort(samples=1, steps=(("wgs", 2.0),), deadline_h=100, nodes=1)
    market = plan.Market(on_demand=1.0, spot=0.25, interruptions_per_hour=50.0, restart_minutes=0)
    result = plan.simulate(cohort, market, "spot->on-demand", trials=200)
    # at 50 interruptions an hour the first comes almost at once: nearly 2 h on demand, one interruption
    assert result.mean_interruptions == 1.0
    assert result.mean_cost == pytest.approx(2.0, rel=0.03)


def test_same_seed_same_figures_other_seed_other_figures():
    cohort = plan.Cohort(samples=20, steps=(("a", 3.0),), deadline_h=12, nodes=5)
    market = plan.Market(on_demand=0.7, spot=0.3, interruptions_per_hour=0.2)
    assert plan.compare(cohort, market, trials=50, seed=7) == plan.compare(cohort, market, trials=50, seed=7)
    assert plan.simulate(cohort, market, "spot", 50, seed=7) != plan.simulate(cohort, market, "spot", 50, seed=8)


def test_recommendation_and_queues(repo):
    outcome = plan.Outcome
    cheap_risky = outcome("spot", 10, 9, 11, 1, 10, 12, 0.3, 2, 1)
    safe = outcome("spot+checkpoint", 12, 11, 13, 1, 9, 10, 0.01, 2, 0.2)
    dear = outcome("on-demand", 30, 30, 30, 0, 8, 8, 0.0, 0, 0)
    best, why = plan.recommend([cheap_risky, safe, dear], risk=0.05)
    assert best is safe and "cheapest" in why
    best, why = plan.recommend([cheap_risky], risk=0.05)
    assert best is cheap_risky and "add nodes or time" in why
    queues = load_queues(repo / "cluster-configs" / "default.yaml")
    assert plan.queues_for("spot", queues, "c6i.4xlarge") == ["spot"]
    assert plan.queues_for("on-demand", queues, "c7i.4xlarge") == ["compute"]
    assert plan.queues_for("spot->on-demand", queues, "c7i.4xlarge") == ["spot", "compute"]


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="NAME=HOURS"):
        plan.parse_steps(["align"])
    with pytest.raises(UsageError, match="positive"):
        plan.Cohort(1, (("a", 1.0),), 0, 1)
    assert plan.parse_steps(["align=2.5", "call=1"]) == (("align", 2.5), ("call", 1.0))


def test_plan_cli_is_reproducible_and_recommends(capsys):
    argv = ["cost", "plan", "--samples", "12", "--step", "align=2", "--step", "call=1", "--deadline", "10",
            "--nodes", "4", "--interruptions-per-hour", "0.1", "--trials", "100", "--json"]
    assert cli(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert cli(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    by = {s["strategy"]: s for s in first["strategies"]}
    assert by["on-demand"]["mean_cost"] == pytest.approx(12 * 3 * first["on_demand"])
    assert first["price_date"] == "2026-11-01" and first["instance_type"] == "c7i.4xlarge"
    assert first["recommendation"]["strategy"] in plan.STRATEGIES and first["recommendation"]["queues"]
    assert cli([*argv[:-1]]) == 0
    assert "recommended:" in capsys.readouterr().out
    assert cli(["cost", "plan", "--samples", "1", "--step", "x", "--deadline", "1"]) == 2
    assert "NAME=HOURS" in capsys.readouterr().err
