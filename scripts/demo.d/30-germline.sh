#!/usr/bin/env bash
# demo: Snakemake germline workflow on the twin: 4 samples, per-rule partitions (sacct), recall, concordance
set -euo pipefail
: "${HPCTOOL_DEMO_DIR:=$HOME/hpctool-demo}"; mkdir -p "$HPCTOOL_DEMO_DIR"
out=$(mktemp -d "$HPCTOOL_DEMO_DIR"/germline.XXXXXX)
echo "-- hpctool run germline $out/twin --test   (seeded data; Snakemake's Slurm executor, profile twin)"
start=$SECONDS
hpctool run germline "$out/twin" --test --snakemake=--quiet=rules
echo "makespan on the twin: $((SECONDS - start)) s"

echo
echo "-- recall of the planted variants (truth set of the test data)"
hpctool recall "$out/twin/test-data/truth.vcf" "$out/twin/cohort/cohort.vcf.gz"

echo
echo "-- the same workflow without Slurm (snakemake --cores 2), then: same variants?"
mkdir -p "$out/local" && ln -s "$out/twin/test-data" "$out/local/test-data"
hpctool run germline "$out/local" --test --cores 2 --snakemake=--quiet=all
hpctool concordance "$out/twin/cohort/cohort.vcf.gz" "$out/local/cohort/cohort.vcf.gz" \
  --fields QUAL,INFO/DP,FORMAT/AD

echo
echo "-- and a changed genotype is caught (exit 1):"
zcat "$out/twin/cohort/cohort.vcf.gz" | awk 'BEGIN { FS = OFS = "\t" }
  !/^#/ && !done { gt = substr($10, 1, 3); $10 = (gt == "0/0" ? "1/1" : "0/0") substr($10, 4); done = 1 }
  { print }' > "$out/changed.vcf"
if hpctool concordance "$out/twin/cohort/cohort.vcf.gz" "$out/changed.vcf"; then
  echo "expected a discordance" >&2; exit 1
fi
echo "(run folders kept in $out)"
