"""`hpctool config ...`: render cluster configs from templates and validate them offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpctool.cli.output import print_json, progress


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="render, validate and diff ParallelCluster cluster configs")
    commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    render = commands.add_parser("render", help="render cluster-configs/templates/cluster.yaml.j2 with a values file")
    render.add_argument("--values", required=True, metavar="FILE",
                        help="values file, or the name of a shipped one: dev, prod")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one value (dotted key, YAML value), e.g. --set queues.spot.max_count=10")
    render.add_argument("-o", "--output", metavar="OUT", help="write the config here (default: stdout)")
    render.set_defaults(handler=cmd_render)

    validate = commands.add_parser(
        "validate", help="validate a config offline: exit 0 valid, 1 invalid, 2 usage, 3 incomplete (--deep)",
        description="Validate a ParallelCluster config offline: never calls AWS or the network. Exit codes: "
                    "0 valid (warnings allowed), 1 invalid (an error), 2 usage (no such file, a directory, an "
                    "unknown --suppress), 3 incomplete (no error found, but ParallelCluster's validators could not "
                    "all run under --deep: the config is not reported valid).")
    validate.add_argument("file", metavar="FILE", help="ParallelCluster cluster config (YAML)")
    validate.add_argument("--deep", action="store_true",
                          help="also run ParallelCluster's full validators against moto (no AWS account)")
    validate.add_argument("--region", metavar="REGION",
                          help="region for a config without Region: (else AWS_DEFAULT_REGION, else us-east-1)")
    validate.add_argument("--suppress", action="append", default=[], metavar="CHECK",
                          help="drop the findings of one check (e.g. ssh, spot-failover, or pcluster:VALIDATOR "
                               "with --deep), like pcluster's --suppress-validators; repeatable")
    validate.add_argument("--json", action="store_true", help="machine-readable report")
    validate.set_defaults(handler=cmd_validate)
    _register_database(commands)

    diff = commands.add_parser(
        "diff", help="what an update from OLD to NEW needs, per ParallelCluster's update policies (offline)",
        description="Compare the config a cluster runs (OLD) with the one you want (NEW), offline: every change "
                    "with its YAML path, ParallelCluster's update policy and what it means, and the steps to apply "
                    "it. Exit codes: 0 the update can be applied (in the stated fleet state), 1 ParallelCluster "
                    "would refuse it, 2 usage or input errors (a missing, unreadable or invalid file, another "
                    "scheduler).")
    diff.add_argument("old", metavar="OLD", help="the config the cluster runs (pcluster describe-cluster's "
                                                 "clusterConfiguration)")
    diff.add_argument("new", metavar="NEW", help="the config to update it to")
    diff.add_argument("--fleet", choices=["running", "stopped"], default="running",
                      help="the compute fleet's state as you know it (default running: the safe assumption); "
                           "ParallelCluster's check depends on it")
    diff.add_argument("--region", metavar="REGION",
                      help="region for configs without Region: (else AWS_DEFAULT_REGION, else us-east-1)")
    diff.add_argument("--cluster-name", default="CLUSTER", metavar="NAME",
                      help="the cluster's name, for the pcluster commands of the steps")
    diff.add_argument("--json", action="store_true", help="machine-readable report")
    diff.set_defaults(handler=cmd_diff)


def cmd_render(args: argparse.Namespace) -> int:
    from hpctool.atomic import write_atomic
    from hpctool.configs.render import render

    text = render(args.values, args.overrides)
    if args.output:
        write_atomic(Path(args.output), text)
        progress(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hpctool.configs.validate import format_report, validate_file

    if args.deep:
        progress("running ParallelCluster's validators against moto (a few seconds)")
    report = validate_file(args.file, deep=args.deep, region=args.region, suppress=args.suppress)
    if args.json:
        print_json(report.to_dict())
    else:
        print(format_report(report))
    return report.exit_code


def cmd_diff(args: argparse.Namespace) -> int:
    from hpctool.configs.diff import diff_files
    from hpctool.configs.update_plan import format_diff

    diff = diff_files(args.old, args.new, fleet=args.fleet, region=args.region, cluster=args.cluster_name)
    if args.json:
        print_json(diff.to_dict())
    else:
        print(format_diff(diff))
    return diff.exit_code


# -- the Slurm accounting database (docs/accounting.md) ---------------------------------------
def _register_database(commands: argparse._SubParsersAction) -> None:
    template = commands.add_parser(
        "database-template", help="the CloudFormation template of the Slurm accounting database",
        description="Print (or write) the CloudFormation template of the Slurm accounting database (RDS for "
                    "MySQL in the cluster's private subnets) for `aws cloudformation deploy`; see docs/accounting.md.")
    template.add_argument("-o", "--out", metavar="FILE", help="write the template here (default: stdout)")
    template.set_defaults(handler=cmd_database_template)
    values = commands.add_parser(
        "database-values", help="the accounting values of a deployed database stack (from describe-stacks JSON)",
        description="Read `aws cloudformation describe-stacks --stack-name NAME` output (offline) and print the "
                    "accounting: block of a values file.")
    values.add_argument("file", metavar="FILE", help="saved describe-stacks JSON, or - for stdin")
    values.set_defaults(handler=cmd_database_values)


def cmd_database_template(args: argparse.Namespace) -> int:
    from hpctool.configs.database import template_text, write_template

    if args.out:
        write_template(Path(args.out))
        progress(f"wrote {args.out}")
    else:
        sys.stdout.write(template_text())
    return 0


def cmd_database_values(args: argparse.Namespace) -> int:
    from hpctool.configs.database import values_from_describe_stacks, values_snippet
    from hpctool.errors import UsageError

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error.strerror
        raise UsageError(f"cannot read {args.file}: {reason}", "give the saved describe-stacks JSON") from error
    sys.stdout.write(values_snippet(values_from_describe_stacks(text, args.file)))
    return 0
