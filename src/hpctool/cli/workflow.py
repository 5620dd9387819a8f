"""`hpctool run ...`, `hpctool concordance ...`, `hpctool recall ...`: workflows and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpctool.cli.output import print_json, print_table, progress
from hpctool.slurm.client import Slurm
from hpctool.vcf import concordance, reading, recall
from hpctool.workflow import launch, rules


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a Snakemake workflow of this repository (on the twin or a cluster)")
    flows = run.add_subparsers(dest="workflow", metavar="WORKFLOW", required=True)
    germline = flows.add_parser(
        "germline", help="FASTQ -> bwa mem -> sort/markdup -> bcftools -> per-sample and cohort VCFs, QC",
        description="Runs snakemake/workflows/germline with a Snakemake profile (or --cores here).")
    germline.add_argument("out", type=Path, help="the run folder (Snakemake's --directory)")
    target = germline.add_mutually_exclusive_group()
    target.add_argument("--profile", default="twin",
                        help="twin (the local Slurm twin, default), slurm (a ParallelCluster cluster) or a folder")
    target.add_argument("--cores", type=int, metavar="N", help="no Slurm: run here on N cores")
    data = germline.add_mutually_exclusive_group(required=True)
    data.add_argument("--configfile", type=Path, help="your config (samples, reference, ...)")
    data.add_argument("--test", action="store_true",
                      help="the seeded 4-sample test data, made in OUT/test-data (config/test.yaml)")
    germline.add_argument("--snakemake", action="append", default=[], metavar="ARG",
                          help="pass ARG on to snakemake (repeat it), e.g. --snakemake=--dry-run")
    germline.set_defaults(handler=cmd_run_germline)

    compare = subparsers.add_parser(
        "concordance", help="compare the variants of two VCFs (exit 0 concordant, 1 discordant, 2 unreadable)",
        description="Matches records on CHROM, POS, REF, ALT and compares every sample's GT and the --fields; "
                    "header lines with dates or command lines are ignored.")
    compare.add_argument("a", type=Path, help="VCF (plain or bgzipped)")
    compare.add_argument("b", type=Path, help="VCF (plain or bgzipped)")
    compare.add_argument("--fields", default="", metavar="LIST",
                         help="more to compare, e.g. QUAL,FILTER,INFO/DP,FORMAT/AD (GT always)")
    compare.add_argument("--show", type=int, default=10, metavar="N", help="differences to print (10)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(handler=cmd_concordance)

    recall = subparsers.add_parser("recall", help="share of a truth set's variants a VCF recalls, per sample")
    recall.add_argument("truth", type=Path, help="truth VCF (e.g. OUT/test-data/truth.vcf)")
    recall.add_argument("calls", type=Path, nargs="+", help="called VCFs: one cohort VCF or one per sample")
    recall.add_argument("--json", action="store_true", help="machine-readable output")
    recall.set_defaults(handler=cmd_recall)


def cmd_run_germline(args: argparse.Namespace) -> int:
    profile = None if args.cores is not None else args.profile
    code = launch.run("germline", args.out, profile=profile, configfile=args.configfile, test=args.test,
                        cores=args.cores, extra=args.snakemake, progress=progress)
    if profile is not None:
        _print_rule_jobs(args.out)
    return code


def _print_rule_jobs(out: Path) -> None:
    """Where each rule's Slurm job ran (accounting, or slurmctld without it): the routing, checked after the fact."""
    records = rules.rule_jobs(Slurm(), out)
    if not records:
        return
    rows = [["+".join(r.rules), r.wildcards or "-", r.acct.job_id, r.acct.partition, r.acct.node_list,
             r.acct.state, str(r.acct.restarts), f"{r.acct.elapsed_seconds} s"] for r in records]
    print(f"\nSlurm jobs of {out} (sacct, or slurmctld on a cluster without accounting):")
    print_table(rows, ["RULE", "WILDCARDS", "JOBID", "PARTITION", "NODE", "STATE", "RESTARTS", "ELAPSED"])


def cmd_concordance(args: argparse.Namespace) -> int:
    fields = concordance.parse_fields(args.fields)
    result = concordance.compare_files(args.a, args.b, fields=fields, keep=args.show)
    if args.json:
        print_json(result.to_dict())
    else:
        verdict = "concordant" if result.concordant else "DISCORDANT"
        print(f"{verdict}: {result.identical} identical, {result.discordant} discordant "
              f"({result.records_a} records in A, {result.records_b} in B; compared GT"
              f"{', ' + ', '.join(result.fields) if result.fields else ''})")
        if result.by_kind:
            print("  " + ", ".join(f"{kind}: {count}" for kind, count in sorted(result.by_kind.items())))
        if not result.samples_match:
            print(f"  samples differ: A has {', '.join(result.samples_a)}; B has {', '.join(result.samples_b)}")
        for difference in result.differences:
            print(f"  {difference}")
        if result.header_differences:
            print(f"  note: {len(result.header_differences)} header line(s) differ (not counted):")
            for line in result.header_differences[: args.show]:
                print(f"    {line}")
    return 0 if result.concordant else 1


def cmd_recall(args: argparse.Namespace) -> int:
    truth = reading.load_vcf(args.truth)
    results = recall.cohort_recall(truth, [reading.load_vcf(path) for path in args.calls])
    planted = sum(r.planted for r in results)
    found = sum(r.found for r in results)
    if args.json:
        print_json({"planted": planted, "found": found, "recall": found / planted if planted else 1.0,
                    "samples": [{**vars(r), "recall": r.fraction} for r in results]})
        return 0
    rows = [[r.sample, str(r.planted), str(r.found), f"{100 * r.fraction:.1f} %", str(r.genotype_matches)]
            for r in results]
    print_table(rows, ["SAMPLE", "PLANTED", "FOUND", "RECALL", "GT_MATCH"])
    print(f"recall: {found}/{planted} = {100 * found / planted if planted else 100:.1f} %")
    for r in results:
        for missed in r.missed:
            print(f"  missed in {r.sample}: {missed}")
    return 0
