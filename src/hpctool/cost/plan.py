"""`hpctool cost plan`: what a cohort will cost under each buying strategy, by seeded Monte Carlo.

A cohort is ``samples`` samples, each running the same steps one after another (hours per sample
per step) on one node; ``nodes`` nodes work in parallel, each taking the next sample when free.
On spot, interruptions arrive as a Poisson process per node-hour (the rate of the instance type's
Spot Instance Advisor band, or a given rate). Each interruption costs a restart (requeue and a new
node, billed) and the work since the last checkpoint:

- ``on-demand``: never interrupted, on-demand price;
- ``spot+checkpoint``: checkpoints every ``checkpoint_minutes`` (0: on the 2-minute notice, as
  hpctool's spot handler does), so an interruption loses only the work since then;
- ``spot``: no checkpoint, an interrupted step starts again from nothing;
- ``spot->on-demand``: spot with checkpoints until a step's first interruption, then that step
  finishes on on-demand (the usual mix: spot first, guaranteed capacity for the retry).

Same seed, same figures: each strategy draws from its own ``random.Random(seed, strategy)``.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from hpctool.cluster.queues import Queue
from hpctool.cost.prices import PriceBook
from hpctool.errors import UsageError

STRATEGIES = ("on-demand", "spot+checkpoint", "spot", "spot->on-demand")


@dataclass(frozen=True)
class Cohort:
    samples: int
    steps: tuple[tuple[str, float], ...]  # (step, hours per sample)
    deadline_h: float
    nodes: int

    def __post_init__(self) -> None:
        if self.samples < 1 or self.nodes < 1:
            raise UsageError("samples and nodes must be 1 or more", "e.g. --samples 48 --nodes 10")
        if not self.steps or any(h <= 0 for _, h in self.steps):
            raise UsageError("every step needs a positive number of hours", "e.g. --step align=2.5 --step call=1")
        if self.deadline_h <= 0:
            raise UsageError("the deadline must be positive", "give it in hours, e.g. --deadline 24")


@dataclass(frozen=True)
class Market:
    on_demand: float  # USD per node-hour
    spot: float
    interruptions_per_hour: float
    checkpoint_minutes: float = 0.0
    restart_minutes: float = 10.0  # requeue, a new node, the job starting again


@dataclass(frozen=True)
class Outcome:
    strategy: str
    mean_cost: float
    p5_cost: float
    p95_cost: float
    stdev_cost: float
    mean_makespan_h: float
    p95_makespan_h: float
    miss_probability: float
    mean_interruptions: float
    mean_lost_hours: float  # billed hours that bought no progress (lost work and restarts)

    def to_dict(self) -> dict[str, object]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def parse_steps(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``align=2.5`` items -> (("align", 2.5), ...)."""
    steps = []
    for item in items:
        name, sep, hours = item.partition("=")
        try:
            value = float(hours)
        except ValueError:
            value = -1.0
        if not sep or not name or value <= 0:
            raise UsageError(f"--step {item!r} is not NAME=HOURS", "e.g. --step align=2.5 (hours per sample)")
        steps.append((name, value))
    return tuple(steps)


def _step(rng: random.Random, hours: float, strategy: str, market: Market) -> tuple[float, float, float, int]:
    """One sample's step: (wall hours, spot hours billed, on-demand hours billed, interruptions)."""
    if strategy == "on-demand" or market.interruptions_per_hour <= 0:
        return (hours, 0.0, hours, 0) if strategy == "on-demand" else (hours, hours, 0.0, 0)
    rate = market.interruptions_per_hour
    restart = market.restart_minutes / 60
    interval = market.checkpoint_minutes / 60
    remaining, wall, spot_h, od_h, interruptions = hours, 0.0, 0.0, 0.0, 0
    while remaining > 1e-12:
        until = rng.expovariate(rate)
        if until >= remaining:
            wall += remaining
            spot_h += remaining
            break
        interruptions += 1
        wall += until + restart
        spot_h += until
        if strategy == "spot":
            saved = 0.0
        elif interval <= 0:
            saved = until  # checkpointed on the notice
        else:
            saved = math.floor(until / interval) * interval
        remaining -= saved
        if strategy == "spot->on-demand":
            od_h += restart + remaining
            wall += remaining
            break
        spot_h += restart
    return wall, spot_h, od_h, interruptions


def simulate(cohort: Cohort, market: Market, strategy: str, trials: int = 500, seed: int = 1) -> Outcome:
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}", f"strategies: {', '.join(STRATEGIES)}")
    if trials < 1:
        raise UsageError("--trials must be 1 or more", "500 gives stable figures in about a second")
    # B311: a seeded Monte Carlo, no secret drawn from it
    rng = random.Random(f"{seed}/{strategy}")  # nosec B311
    costs, makespans, interruptions, lost = [], [], [], []
    for _ in range(trials):
        free = [0.0] * cohort.nodes  # when each node is next free
        cost = lost_h = 0.0
        count = 0
        for _sample in range(cohort.samples):
            start = heapq.heappop(free)
            wall = 0.0
            for _name, hours in cohort.steps:
                step_wall, spot_h, od_h, n = _step(rng, hours, strategy, market)
                wall += step_wall
                cost += spot_h * market.spot + od_h * market.on_demand
                lost_h += spot_h + od_h - hours
                count += n
            heapq.heappush(free, start + wall)
        costs.append(cost)
        makespans.append(max(free))
        interruptions.append(count)
        lost.append(lost_h)
    ordered, spans = sorted(costs), sorted(makespans)
    return Outcome(
        strategy, statistics.fmean(costs), _quantile(ordered, 0.05), _quantile(ordered, 0.95),
        statistics.pstdev(costs), statistics.fmean(makespans), _quantile(spans, 0.95),
        sum(m > cohort.deadline_h + 1e-9 for m in makespans) / trials,
        statistics.fmean(interruptions), statistics.fmean(lost))


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile (simple to check by hand)."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def compare(cohort: Cohort, market: Market, trials: int = 500, seed: int = 1) -> list[Outcome]:
    return [simulate(cohort, market, s, trials, seed) for s in STRATEGIES]


def recommend(outcomes: list[Outcome], risk: float = 0.05) -> tuple[Outcome, str]:
    """The cheapest strategy whose chance of missing the deadline is at most ``risk``; when none is,
    the one most likely to make it."""
    safe = [o for o in outcomes if o.miss_probability <= risk]
    if safe:
        best = min(safe, key=lambda o: (o.mean_cost, o.miss_probability))
        return best, f"cheapest with at most {risk:.0%} chance of missing the deadline"
    best = min(outcomes, key=lambda o: (o.miss_probability, o.mean_cost))
    return best, f"no strategy keeps the risk of missing the deadline under {risk:.0%}: add nodes or time"


def market(book: PriceBook, region: str, instance_type: str, interruptions_per_hour: float | None = None,
           checkpoint_minutes: float = 0.0, restart_minutes: float = 10.0) -> Market:
    """Prices and the interruption rate of one instance type (the snapshot's band unless given)."""
    price = book.instance(instance_type, region)
    spot = price.spot_at()
    if spot is None:
        raise UsageError(f"{instance_type} has no spot price in {region}", "plan with a type offered as spot")
    rate = book.interruption_rate_per_hour(instance_type, region) if interruptions_per_hour is None \
        else interruptions_per_hour
    return Market(price.on_demand, spot, rate, checkpoint_minutes, restart_minutes)


def queues_for(strategy: str, queues: Sequence[Queue], instance_type: str) -> list[str]:
    """The config's queues that serve a strategy: spot queues for spot, on-demand queues for
    on-demand, both for the mix; those offering the instance type first."""
    def pick(spot: bool) -> list[str]:
        matching = [q for q in queues if q.is_spot == spot]
        with_type = [q.name for q in matching
                     if any(instance_type in r.instance_types for r in q.compute_resources)]
        return with_type or [q.name for q in matching][:1]
    if strategy == "on-demand":
        return pick(False)
    if strategy == "spot->on-demand":
        return pick(True) + pick(False)
    return pick(True)
