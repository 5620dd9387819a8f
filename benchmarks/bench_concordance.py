"""Concordance at genome scale: `hpctool concordance` on two position-sorted bgzip VCFs of 1 M and
10 M records (4 samples, GT:AD:DP) against the field's quickest equivalent, `bcftools query` of
both files (sites and genotypes) piped into `cmp`. Both are timed as whole processes in the same
run; peak memory is each process tree's maximum resident set (``wait4``).

The files are made here (never committed): B is A under another run's header dates and command
lines, with one genotype in 10,000 changed, so the comparison has real differences to find.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [1_000_000, 10_000_000]
SAMPLES = ["S1", "S2", "S3", "S4"]
CHANGED_EVERY = 10_000
HEADER = """##fileformat=VCFv4.2
##FILTER=<ID=PASS,Description="All filters passed">
##bcftoolsVersion=1.16+htslib-1.16
##bcftoolsCommand=mpileup -f ref.fa -a AD,DP -Ou {bams}
##contig=<ID=chr1,length=248956422>
##contig=<ID=chr2,length=242193529>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Raw read depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">
##bcftools_callCommand=call -m -v -Ou; Date={date}
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""


LIBRARY_CALL = ("import sys; from hpctool.vcf.concordance import compare_files; "
                "print(compare_files(sys.argv[1], sys.argv[2]).discordant)")


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _make_pair(folder: Path, records: int) -> tuple[Path, Path]:
    """A.vcf.gz and B.vcf.gz (bgzip, with .csi index), made by streaming text into `bgzip`."""
    rng = random.Random(records)
    genotypes = ["0/0:30,0:30", "0/1:14,16:30", "1/1:0,29:29", "./.:0,0:0"]
    paths = (folder / f"a-{records}.vcf.gz", folder / f"b-{records}.vcf.gz")
    outputs = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed below, after bgzip exits)
    sinks = [subprocess.Popen(["bgzip", "-c"], stdin=subprocess.PIPE, stdout=o) for o in outputs]
    for index, sink in enumerate(sinks):
        assert sink.stdin is not None
        sink.stdin.write(HEADER.format(bams="a.bam" if index == 0 else "/scratch/b.bam",
                                       date=f"Sun Nov 22 0{index}:00:00 2026",
                                       samples="\t".join(SAMPLES)).encode())
    half = records // 2
    chunk_a: list[str] = []
    chunk_b: list[str] = []
    for number in range(records):
        chrom, pos = ("chr1", 100 + number * 20) if number < half else ("chr2", 100 + (number - half) * 20)
        gts = [genotypes[rng.randrange(3)] for _ in SAMPLES]
        line = f"{chrom}\t{pos}\t.\tA\tG\t{rng.randrange(20, 999)}\t.\tDP={rng.randrange(60, 140)}\tGT:AD:DP\t"
        chunk_a.append(line + "\t".join(gts) + "\n")
        if number % CHANGED_EVERY == CHANGED_EVERY // 2:
            gts[0] = genotypes[(genotypes.index(gts[0]) + 1) % 3]
        chunk_b.append(line + "\t".join(gts) + "\n")
        if len(chunk_a) == 100_000 or number == records - 1:
            for sink, chunk in zip(sinks, (chunk_a, chunk_b), strict=True):
                assert sink.stdin is not None
                sink.stdin.write("".join(chunk).encode())
            chunk_a, chunk_b = [], []
    for sink in sinks:
        assert sink.stdin is not None
        sink.stdin.close()
        if sink.wait() != 0:
            raise SystemExit("bgzip failed")
    for output in outputs:
        output.close()
    for path in paths:
        subprocess.run(["bcftools", "index", str(path)], check=True)
    return paths


def _timed(argv: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak resident MB (the largest process of the tree), exit code and output.

    GNU time reports it: this process's own wait4 would count the benchmark's memory too (a
    child's peak includes its parent's pages until it execs)."""
    with tempfile.NamedTemporaryFile() as peak, tempfile.TemporaryFile() as out:
        started = time.monotonic()
        code = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", peak.name, *argv], stdout=out,
                              stderr=subprocess.STDOUT, check=False).returncode
        elapsed = time.monotonic() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
        kib = int(Path(peak.name).read_text().split()[-1])
    return elapsed, kib / 1024, code, text


def _baseline_argv(a: Path, b: Path) -> list[str]:
    """Both files' sites and genotypes through `bcftools query`, every differing byte listed by
    `cmp -l` (plain `cmp`, or `cmp -l > /dev/null`, stops at the first difference)."""
    query = "bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT[\\t%GT]\\n'"
    return ["bash", "-c", f"cmp -l <({query} {a}) <({query} {b}) | wc -l; test $? -le 1"]


def main() -> None:
    hpctool = [sys.executable, "-m", "hpctool.cli"]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-concordance-"))
    try:
        for records in SIZES:
            _progress(f"making two {records:,}-record bgzip VCFs")
            a, b = _make_pair(work, records)
            _progress(f"bcftools query | cmp ({records:,} records)")
            base_s, base_mb, base_code, base_out = _timed(_baseline_argv(a, b))
            if base_code != 0:
                raise SystemExit(f"baseline failed ({base_code}): {base_out[-400:]}")
            _progress(f"hpctool concordance ({records:,} records)")
            ours_s, ours_mb, code, out = _timed([*hpctool, "concordance", str(a), str(b), "--json"])
            if code != 1 or f'"discordant": {records // CHANGED_EVERY}' not in out:
                raise SystemExit(f"hpctool concordance gave exit {code}: {out[-600:]}")
            # The comparison alone, without the CLI's start-up (its imports are measured elsewhere).
            lib_s, lib_mb, code, out = _timed([sys.executable, "-c", LIBRARY_CALL, str(a), str(b)])
            if code != 0 or out.split() != [str(records // CHANGED_EVERY)]:
                raise SystemExit(f"compare_files gave exit {code}: {out[-600:]}")
            rows.append((records, base_s, base_mb, ours_s, ours_mb, lib_s, lib_mb, a.stat().st_size / 2**20))
            for path in (a, b):
                path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n## concordance\n")
    print("`python -m benchmarks concordance`: two position-sorted bgzip VCFs (4 samples, GT:AD:DP; B = A under "
          f"another run's header, 1 genotype in {CHANGED_EVERY:,} changed), whole processes, one run.\n")
    print("| records | bgzip size | baseline: `bcftools query` x2 \\| `cmp -l` | `hpctool concordance` (process) "
          "| ratio | peak memory | `compare_files` alone (process) | ratio | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for records, base_s, _base_mb, ours_s, ours_mb, lib_s, lib_mb, size in rows:
        print(f"| {records:,} | {size:.0f} MB | {base_s:.1f} s | {ours_s:.1f} s | **{ours_s / base_s:.1f}x** | "
              f"{ours_mb:.0f} MB | {lib_s:.1f} s | **{lib_s / base_s:.1f}x** | {lib_mb:.0f} MB |")
    print("\nhpctool also compares REF/ALT, QUAL/INFO/FORMAT fields on request and reports the first "
          "differences; `cmp` only says whether the two query outputs differ.")


if __name__ == "__main__":
    main()
