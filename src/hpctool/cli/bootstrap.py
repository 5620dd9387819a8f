"""`hpctool bootstrap ...`: the node bootstrap bundle."""

from __future__ import annotations

import argparse
import sys

from hpctool.bootstrap_upload import upload_bundle
from hpctool.cli.output import print_json, progress
from hpctool.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("bootstrap", help="the node bootstrap (OnNodeConfigured) bundle")
    commands = group.add_subparsers(dest="bootstrap_command", metavar="ACTION", required=True)

    upload = commands.add_parser(
        "upload", help="upload bootstrap/ and envs/ under a content-addressed S3 prefix",
        description="Upload bootstrap/ and envs/ to s3://BUCKET/PREFIX/<sha256-12>/, skipping what is "
                    "already there, and check that the config's OnNodeConfigured Scripts name the entry script.")
    upload.add_argument("--bucket", required=True, help="S3 bucket (name only)")
    upload.add_argument("--prefix", required=True, help="key prefix, e.g. hpctool")
    upload.add_argument("--config", metavar="CLUSTER.yaml", help="ParallelCluster config whose Scripts to check")
    upload.add_argument("--write", action="store_true", help="rewrite the config's stale Script URIs (atomically)")
    upload.add_argument("--dry-run", action="store_true", help="show what would be sent; upload and write nothing")
    upload.add_argument("--region", help="AWS region (default: from your AWS configuration)")
    upload.add_argument("--json", action="store_true", help="machine-readable output")
    upload.set_defaults(handler=cmd_upload)


def cmd_upload(args: argparse.Namespace) -> int:
    if args.write and not args.config:
        raise UsageError("--write needs --config CLUSTER.yaml", "name the config whose Scripts to rewrite")
    report = upload_bundle(args.bucket, args.prefix, config=args.config, write=args.write,
                           dry_run=args.dry_run, region=args.region, progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        verb = "would upload" if report.dry_run else "uploaded"
        print(f"bundle {report.digest}: {report.files} files, {verb} {len(report.uploaded)}, "
              f"{len(report.unchanged)} unchanged")
        print(f"entry script: {report.entry_uri}")
        for path in report.rewritten:
            print(f"rewrote {path}")
        for check in report.scripts:
            state = "ok" if check.ok(report.entry_uri) else ("missing" if check.found is None else f"stale: {check.found}")
            print(f"  {check.yaml_path}: {state}")
    if report.config and not report.config_ok:
        hint = ("add CustomActions.OnNodeConfigured to that node group (hpctool config render does)"
                if any(c.found is None for c in report.scripts)
                else f"rerun with --write, or set bootstrap.script_uri to {report.entry_uri} and render again")
        print(f"error: {report.config}: some OnNodeConfigured Scripts do not name {report.entry_uri}",
              file=sys.stderr)
        print(f"hint: {hint}", file=sys.stderr)
        return 1
    return 0
