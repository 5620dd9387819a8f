"""`hpctool storage ...`: S3 and EFS lifecycle rules for genomics data, and what they save."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from hpctool.cli.output import print_json, print_table, progress
from hpctool.cost import prices, tiering
from hpctool.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    storage = subparsers.add_parser("storage", help="storage tiering: S3/EFS lifecycle rules and what they save")
    commands = storage.add_subparsers(dest="storage_command", metavar="COMMAND", required=True)

    life = commands.add_parser(
        "lifecycle", help="the S3 lifecycle rules per data class and the EFS lifecycle (--apply sets them)",
        description="FASTQ to Deep Archive after 30 days, BAM/CRAM to Intelligent-Tiering with archive tiers, "
                    "VCFs kept in Standard, scratch expiring after 7 days, incomplete uploads aborted; EFS to "
                    "Infrequent Access after 30 days (Archive after 90 with Elastic throughput). Without --apply "
                    "nothing is changed. The bucket's other lifecycle rules are kept.")
    _target(life)
    life.add_argument("--efs-id", help="also set this EFS file system's lifecycle (with --apply)")
    life.add_argument("--throughput-mode", choices=["bursting", "elastic", "provisioned"],
                      help="the EFS throughput mode (from --config, else bursting)")
    life.add_argument("--apply", action="store_true", help="set the rules in AWS")
    life.add_argument("--json", action="store_true", help="machine-readable output")
    life.set_defaults(handler=cmd_lifecycle)

    rep = commands.add_parser("report", help="monthly S3 cost now vs with the lifecycle rules, from a bucket listing")
    _target(rep)
    rep.add_argument("--as-of", help="project to this date (YYYY-MM-DD; today): objects are older by then")
    rep.add_argument("--prices", type=Path, help="a snapshot file instead of the current one")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(handler=cmd_report)


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a cluster config: its results bucket, prefix and EFS")
    parser.add_argument("--bucket", help="the bucket (the config's results bucket)")
    parser.add_argument("--prefix", help="the prefix the data classes live under (the config's results prefix)")
    parser.add_argument("--region", help="AWS region (the config's, else us-east-1)")


def _region(args: argparse.Namespace) -> str:
    if args.region:
        return args.region
    if args.config:
        from hpctool.cost.jobs import cluster_model

        return cluster_model(args.config).region
    return "us-east-1"


def cmd_lifecycle(args: argparse.Namespace) -> int:
    plan = tiering.plan(args.bucket, args.prefix, args.config, args.throughput_mode)
    if args.efs_id and not args.apply:
        progress("--efs-id is used with --apply only; showing the rules")
    applied = tiering.apply(plan, args.efs_id, _region(args)) if args.apply else None
    if args.json:
        print_json({**plan.to_dict(), "applied": applied})
        return 0
    print(f"s3://{plan.bucket}/{plan.base_prefix}")
    for rule in plan.rules:
        print(f"  {rule.rule['ID'] if rule.rule else '(no rule)':40} {rule.explanation}")
    tiers = ", ".join(f"{t['AccessTier']} after {t['Days']} days" for t in plan.intelligent_tiering["Tierings"])
    print(f"  {'intelligent-tiering: ' + tiering.IT_CONFIG_ID:40} {tiers}")
    print("EFS lifecycle: " + ", ".join(f"{k}={v}" for p in plan.efs_policies for k, v in p.items()))
    for why in plan.efs_explanations:
        print(f"  {why}")
    if applied is None:
        print("nothing changed: add --apply to set these rules")
    else:
        print(f"applied: {len(applied['rules'])} lifecycle rule(s) on s3://{plan.bucket}"
              + (f", EFS {args.efs_id} lifecycle" if "efs" in applied else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    plan = tiering.plan(args.bucket, args.prefix, args.config)
    try:
        as_of = datetime.strptime(args.as_of, "%Y-%m-%d").replace(tzinfo=UTC) if args.as_of else None
    except ValueError as exc:
        raise UsageError(f"--as-of {args.as_of!r} is not a date", "write it as YYYY-MM-DD") from exc
    region = _region(args)
    book = prices.load(args.prices)
    result = tiering.report_bucket(plan.bucket, plan.base_prefix, book, region, as_of)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"s3://{plan.bucket}/{plan.base_prefix} as of {result.as_of}, {region} prices as of {result.price_date}, "
          "USD per month (objects unread since written)")
    rows = [[c.data_class, str(c.objects), f"{c.gib:,.3f}", f"{c.now_monthly:,.4f}", f"{c.with_rules_monthly:,.4f}",
             f"{c.saving:,.4f}"] for c in result.classes]
    rows.append(["total", str(sum(c.objects for c in result.classes)), f"{sum(c.gib for c in result.classes):,.3f}",
                 f"{result.now_monthly:,.4f}", f"{result.with_rules_monthly:,.4f}",
                 f"{result.now_monthly - result.with_rules_monthly:,.4f}"])
    print_table(rows, ["CLASS", "OBJECTS", "GIB", "NOW", "WITH RULES", "SAVING"])
    once = sum(c.transitions_once for c in result.classes)
    print(f"lifecycle transitions, once: {once:,.4f}")
    return 0
