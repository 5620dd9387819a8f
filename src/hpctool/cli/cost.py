"""`hpctool cost ...`: prices, what a cluster config costs, what jobs cost, what a cohort will cost."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpctool.cli.output import print_json, print_table, progress
from hpctool.cost import estimate as estimate_mod
from hpctool.cost import jobs as cost_jobs
from hpctool.cost import plan as plan_mod
from hpctool.cost import prices


def register(subparsers: argparse._SubParsersAction) -> None:
    cost = subparsers.add_parser("cost", help="what a cluster, jobs, a workflow run or a cohort cost (offline prices)")
    commands = cost.add_subparsers(dest="cost_command", metavar="COMMAND", required=True)

    show = commands.add_parser("prices", help="the dated price snapshot (or refresh it from AWS)",
                               description="Shows the snapshot's prices for a region. --refresh fetches that "
                                           "region's on-demand (Price List API) and spot prices (EC2 spot price "
                                           "history) and keeps them in $HPCTOOL_HOME/prices.json.")
    show.add_argument("--region", default="us-east-1", help="region (us-east-1)")
    show.add_argument("--refresh", action="store_true", help="fetch the region's prices from AWS")
    show.add_argument("--type", dest="types", action="append", metavar="INSTANCE_TYPE",
                      help="only this instance type (repeat it)")
    show.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=cmd_prices)

    est = commands.add_parser("estimate", help="hourly cost per queue, head node and storage of a cluster config")
    est.add_argument("config", type=Path, metavar="CLUSTER.yaml", help="a ParallelCluster 3 config")
    est.add_argument("--efs-gib", type=float, default=estimate_mod.DEFAULT_EFS_GIB,
                     help=f"data stored on EFS, GiB ({estimate_mod.DEFAULT_EFS_GIB}; EFS bills what is stored)")
    est.add_argument("--database-class", metavar="CLASS",
                     help="RDS instance class of the accounting database (default: the shipped stack's)")
    est.add_argument("--database-gib", type=float, metavar="GIB", help="its gp3 storage (default: the stack's)")
    est.add_argument("--database-multi-az", action="store_true", help="it runs with a Multi-AZ standby")
    est.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    est.add_argument("--json", action="store_true", help="machine-readable output")
    est.set_defaults(handler=cmd_estimate)

    jobs = commands.add_parser(
        "jobs", help="cost per user, account, queue, rule, sample or run, from accounting (sacct)",
        description="Each job pays for its share of every node it ran on (the larger of its CPU and memory "
                    "share; exclusive jobs the whole node) for its elapsed time, at the spot or on-demand "
                    "price of its queue. Runs of requeued jobs lost to interruptions are on their own line.")
    jobs.add_argument("--since", default="now-7days", help="start of the window (sacct -S; now-7days)")
    jobs.add_argument("--until", help="end of the window (sacct -E; now)")
    jobs.add_argument("--by", default="user", choices=[*cost_jobs.BY_FIELD, *cost_jobs.BY_RUN],
                      help="group by (user); rule, sample and run need --run")
    jobs.add_argument("--run", dest="runs", type=Path, action="append", default=[], metavar="RUN_DIR",
                      help="a Snakemake run folder: only its jobs count (repeat it)")
    jobs.add_argument("--config", type=Path, help="the cluster's config (the shipped default config, as the twin)")
    jobs.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(handler=cmd_jobs)

    plan = commands.add_parser(
        "plan", help="a cohort's cost and deadline risk on-demand, on spot (with and without checkpoints), mixed",
        description="Seeded Monte Carlo: each sample runs the steps in order on one node, NODES at a time; "
                    "spot interruptions arrive at the instance type's rate (its Spot Instance Advisor band, "
                    "or --interruptions-per-hour) and cost a restart plus the work since the last checkpoint.")
    plan.add_argument("--samples", type=int, required=True, help="samples in the cohort")
    plan.add_argument("--step", dest="steps", action="append", required=True, metavar="NAME=HOURS",
                      help="a step and its hours per sample on one node (repeat it, in order)")
    plan.add_argument("--deadline", type=float, required=True, metavar="HOURS", help="hours until the results are due")
    plan.add_argument("--nodes", type=int, default=10, help="nodes working at once (10)")
    plan.add_argument("--instance-type", default=None, help="the node type (the config's spot queue's first type)")
    plan.add_argument("--interruptions-per-hour", type=float, default=None, metavar="RATE",
                      help="spot interruptions per node-hour (default: from the snapshot's advisor band)")
    plan.add_argument("--checkpoint-minutes", type=float, default=0.0,
                      help="checkpoint interval; 0 = on the 2-minute notice, as hpctool's spot handler does (0)")
    plan.add_argument("--restart-minutes", type=float, default=10.0, help="requeue and new node, billed (10)")
    plan.add_argument("--risk", type=float, default=0.05, help="acceptable chance of missing the deadline (0.05)")
    plan.add_argument("--trials", type=int, default=500, help="Monte Carlo trials (500)")
    plan.add_argument("--seed", type=int, default=1, help="random seed: same seed, same figures (1)")
    plan.add_argument("--config", type=Path, help="the cluster's config: its region and queues (the default config)")
    plan.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=cmd_plan)


def _book(args: argparse.Namespace) -> prices.PriceBook:
    return prices.load(args.prices)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}" if value < 10 else f"{value:,.2f}"


def cmd_prices(args: argparse.Namespace) -> int:
    book = _book(args)
    if args.refresh:
        path = prices.refresh_from_aws(args.region, args.types, book, progress=progress)
        progress(f"saved {path}")
        book = prices.load(path)
    types = args.types or book.instance_types(args.region)
    rows = [book.instance(t, args.region) for t in types]
    storage = book.regions[args.region]["storage"]
    if args.json:
        print_json({"region": args.region, "date": book.region_date(args.region), "origin": book.origin,
                    "instances": [{"instance_type": p.instance_type, "vcpus": p.vcpus, "memory_gib": p.memory_gib,
                                   "on_demand": p.on_demand, "spot": p.spot_at(),
                                   "interruption_band": p.interruption_band} for p in rows],
                    "storage_per_gb_month": storage})
        return 0
    print(f"prices in {args.region} as of {book.region_date(args.region)} ({book.origin}), USD")
    print_table([[p.instance_type, str(p.vcpus), f"{p.memory_gib:g}", _usd(p.on_demand), _usd(p.spot_at()),
                  p.interruption_band or "-"] for p in rows],
                ["TYPE", "VCPU", "GIB", "ON-DEMAND/H", "SPOT/H", "INTERRUPTIONS/MONTH"])
    print()
    print_table([[kind, cls, f"{price:g}"] for kind, table in sorted(storage.items()) for cls, price in table.items()],
                ["STORAGE", "CLASS", "PER GB-MONTH"])
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    shipped = estimate_mod.DatabaseSize.shipped()
    size = estimate_mod.DatabaseSize(args.database_class or shipped.instance_class,
                                     args.database_gib if args.database_gib is not None else shipped.gib,
                                     args.database_multi_az or shipped.multi_az)
    result = estimate_mod.estimate(args.config, _book(args), efs_gib=args.efs_gib, database=size)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"{result.source} in {result.region}, prices as of {result.price_date} ({result.price_origin}), USD")
    rows = []
    for r in result.resources:
        spot = "-" if r.spot_low is None else (_usd(r.spot_low) if r.spot_low == r.spot_high
                                                else f"{_usd(r.spot_low)}-{_usd(r.spot_high)}")
        on_demand = _usd(r.on_demand_low) if r.on_demand_low == r.on_demand_high else \
            f"{_usd(r.on_demand_low)}-{_usd(r.on_demand_high)}"
        rows.append([r.queue, r.resource, r.capacity_type, ",".join(r.instance_types), on_demand, spot,
                     _usd(r.node_hourly), str(r.max_count), _usd(r.max_hourly)])
    print_table(rows, ["QUEUE", "RESOURCE", "CAPACITY", "TYPES", "ON-DEMAND/H", "SPOT/H", "NODE/H", "MAX", "AT MAX/H"])
    print()
    print(f"head node {result.head_node_type}: {_usd(result.head_node_hourly)}/h, "
          f"{_usd(result.head_node_monthly)}/month with its root volume")
    for s in result.storage:
        print(f"storage {s.name} ({s.kind}, {s.detail}): {s.gib:g} GiB x {s.per_gib_month:g}/GB-month "
              f"= {_usd(s.monthly)}/month")
    if result.database:
        d = result.database
        print(f"accounting database (RDS for MySQL {d.instance_class}{', Multi-AZ' if d.multi_az else ''}, "
              f"{d.gib:g} GiB gp3): {_usd(d.hourly)}/h, {_usd(d.monthly)}/month; RDS prices as of {d.price_date}"
              + (f" ({d.note})" if d.note else ""))
    print(f"always on: {_usd(result.fixed_monthly)}/month; compute at every queue's MaxCount: "
          f"{_usd(result.max_hourly)}/h")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    book = _book(args)
    summary, items = cost_jobs.summary(args.by, config=args.config, since=args.since, until=args.until,
                                       run_dirs=args.runs, book=book, progress=progress)
    if args.json:
        print_json({**summary.to_dict(), "jobs": [i.to_dict() for i in items]})
        return 0
    print(f"cost by {args.by}, prices as of {', '.join(summary.price_dates) or book.date} ({book.origin}), USD")
    rows = [[g.key, str(g.jobs), f"{g.hours:.3f}", _usd(g.cost)] for g in summary.groups]
    rows.append(["lost to spot interruptions", str(summary.lost_runs), f"{summary.lost_hours:.3f}",
                 _usd(summary.lost_cost)])
    rows.append(["total", str(summary.jobs), "", _usd(summary.total)])
    print_table(rows, [args.by.upper(), "JOBS", "NODE-HOURS", "COST"])
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    book = _book(args)
    model = cost_jobs.cluster_model(args.config)
    instance_type = args.instance_type or next(
        (q.compute_resources[0].instance_types[0] for q in model.queues if q.is_spot),
        model.queues[0].compute_resources[0].instance_types[0])
    cohort = plan_mod.Cohort(args.samples, plan_mod.parse_steps(args.steps), args.deadline, args.nodes)
    market = plan_mod.market(book, model.region, instance_type, args.interruptions_per_hour,
                             args.checkpoint_minutes, args.restart_minutes)
    outcomes = plan_mod.compare(cohort, market, args.trials, args.seed)
    best, why = plan_mod.recommend(outcomes, args.risk)
    queues = plan_mod.queues_for(best.strategy, model.queues, instance_type)
    if args.json:
        print_json({"instance_type": instance_type, "region": model.region,
                    "price_date": book.region_date(model.region), "on_demand": market.on_demand,
                    "spot": market.spot, "interruptions_per_hour": market.interruptions_per_hour,
                    "trials": args.trials, "seed": args.seed,
                    "strategies": [o.to_dict() for o in outcomes],
                    "recommendation": {"strategy": best.strategy, "why": why, "queues": queues}})
        return 0
    print(f"{args.samples} samples x {', '.join(f'{n} {h:g} h' for n, h in cohort.steps)} on {args.nodes} "
          f"{instance_type} nodes, deadline {args.deadline:g} h; {model.region} prices as of "
          f"{book.region_date(model.region)}: on-demand {_usd(market.on_demand)}/h, spot {_usd(market.spot)}/h, "
          f"{market.interruptions_per_hour:.5f} interruptions per node-hour; {args.trials} trials, seed {args.seed}")
    print_table([[o.strategy, _usd(o.mean_cost), f"{_usd(o.p5_cost)}-{_usd(o.p95_cost)}",
                  f"{o.mean_makespan_h:.1f}", f"{o.miss_probability:.1%}", f"{o.mean_interruptions:.1f}",
                  f"{o.mean_lost_hours:.1f}"] for o in outcomes],
                ["STRATEGY", "MEAN COST", "5-95%", "MAKESPAN H", "P(MISS)", "INTERRUPTIONS", "LOST H"])
    print(f"recommended: {best.strategy} on queue(s) {', '.join(queues) or '-'} ({why})")
    return 0
