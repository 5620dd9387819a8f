#!/usr/bin/env python3
"""Make the germline workflow's test data from a seed: a random reference, planted SNVs and
indels with a genotype per sample, and paired reads simulated with ``wgsim`` (Debian's samtools
package ships it). The truth set is written as a VCF so recall can be checked.

    python scripts/make_test_data.py OUT [--seed 7] [--samples 4] [--length 50000] [--pairs 6000]

Writes OUT/reference.fa, OUT/truth.vcf, OUT/reads/<sample>_R{1,2}.fq.gz and OUT/samples.tsv
(FASTQ paths relative to the sheet). The same seed gives the same files.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BASES = "ACGT"
CONTIG_SHARES = (("chr1", 0.6), ("chr2", 0.4))
EDGE = 600  # keep variants away from contig ends, where read pairs thin out
SPACING = 400  # and away from each other, so each is called on its own


@dataclass(frozen=True)
class Variant:
    chrom: str
    pos: int  # 1-based, VCF style (the anchor base for indels)
    ref: str
    alt: str
    genotypes: tuple[str, ...]  # one of "0/0", "0/1", "1/1" per sample

    @property
    def kind(self) -> str:
        return "snv" if len(self.ref) == len(self.alt) == 1 else "indel"


def random_reference(rng: random.Random, length: int) -> dict[str, str]:
    return {name: "".join(rng.choice(BASES) for _ in range(int(length * share)))
            for name, share in CONTIG_SHARES}


def _left_aligned(seq: str, index: int, ref: str, alt: str) -> bool:
    """True when the indel cannot shift left, so bcftools reports it exactly as planted."""
    if len(ref) > len(alt):  # deletion of ref[1:]
        return seq[index] != ref[-1]
    return seq[index] != alt[-1]  # insertion of alt[1:] after the anchor


def plant_variants(rng: random.Random, reference: dict[str, str], snvs: int, indels: int,
                   samples: int) -> list[Variant]:
    """Choose sites far apart; SNVs and 1-6 bp indels; every site carried by at least one sample."""
    kinds = ["snv"] * snvs + ["indel"] * indels
    rng.shuffle(kinds)
    taken: dict[str, list[int]] = {name: [] for name in reference}
    variants: list[Variant] = []
    names = list(reference)
    for kind in kinds:
        for _ in range(10_000):
            chrom = rng.choice(names)
            seq = reference[chrom]
            index = rng.randrange(EDGE, len(seq) - EDGE)
            if any(abs(index - other) < SPACING for other in taken[chrom]):
                continue
            if kind == "snv":
                ref = seq[index]
                alt = rng.choice([b for b in BASES if b != ref])
            elif rng.random() < 0.5:
                size = rng.randint(1, 6)
                ref, alt = seq[index : index + 1 + size], seq[index]
            else:
                size = rng.randint(1, 6)
                ref, alt = seq[index], seq[index] + "".join(rng.choice(BASES) for _ in range(size))
            if kind == "indel" and not _left_aligned(seq, index, ref, alt):
                continue
            genotypes = [rng.choice(["0/0", "0/1", "1/1"]) for _ in range(samples)]
            if all(gt == "0/0" for gt in genotypes):
                genotypes[rng.randrange(samples)] = rng.choice(["0/1", "1/1"])
            taken[chrom].append(index)
            variants.append(Variant(chrom, index + 1, ref, alt, tuple(genotypes)))
            break
        else:
            raise SystemExit(f"could not place {snvs + indels} variants; use a longer reference")
    return sorted(variants, key=lambda v: (names.index(v.chrom), v.pos))


def haplotype(reference: dict[str, str], variants: list[Variant], sample: int, copy: int) -> dict[str, str]:
    """One of a sample's two chromosome copies: copy 0 carries hets and homs, copy 1 only homs."""
    result = {}
    for chrom, seq in reference.items():
        pieces, cursor = [], 0
        for variant in (v for v in variants if v.chrom == chrom):
            gt = variant.genotypes[sample]
            if gt == "1/1" or (gt == "0/1" and copy == 0):
                start = variant.pos - 1
                pieces += [seq[cursor:start], variant.alt]
                cursor = start + len(variant.ref)
        pieces.append(seq[cursor:])
        result[chrom] = "".join(pieces)
    return result


def fasta(contigs: dict[str, str]) -> str:
    lines = []
    for name, seq in contigs.items():
        lines.append(f">{name}")
        lines += [seq[i : i + 60] for i in range(0, len(seq), 60)]
    return "\n".join(lines) + "\n"


def truth_vcf(reference: dict[str, str], variants: list[Variant], sample_names: list[str], seed: int) -> str:
    header = ["##fileformat=VCFv4.2", f"##source=hpctool make_test_data.py seed={seed}"]
    header += [f"##contig=<ID={name},length={len(seq)}>" for name, seq in reference.items()]
    header += ['##INFO=<ID=TYPE,Number=1,Type=String,Description="snv or indel">',
               '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
               "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *sample_names])]
    rows = ["\t".join([v.chrom, str(v.pos), ".", v.ref, v.alt, ".", "PASS", f"TYPE={v.kind}", "GT", *v.genotypes])
            for v in variants]
    return "\n".join(header + rows) + "\n"


def simulate_reads(hap_fasta: Path, pairs: int, seed: int, prefix: str, out1, out2) -> None:
    """wgsim with no mutations of its own (-r 0): the planted variants are the only ones."""
    wgsim = shutil.which("wgsim")
    if wgsim is None:
        raise SystemExit("wgsim not found: install Debian's samtools package (`make setup`)")
    with tempfile.TemporaryDirectory() as tmp:
        fq1, fq2 = Path(tmp, "r1.fq"), Path(tmp, "r2.fq")
        subprocess.run([wgsim, "-S", str(seed), "-N", str(pairs), "-1", "100", "-2", "100", "-d", "300",
                        "-s", "30", "-e", "0.002", "-r", "0", "-R", "0", "-A", "0.05",
                        str(hap_fasta), str(fq1), str(fq2)], check=True, capture_output=True)
        # Rename reads: wgsim numbers them per call, and the two copies must not share names.
        for source, sink in ((fq1, out1), (fq2, out2)):
            with open(source) as handle:
                for number, line in enumerate(handle):
                    if number % 4 == 0:
                        line = f"@{prefix}_{number // 4}\n"
                    sink.write(line.encode())


def make(out: Path, seed: int, samples: int, length: int, pairs: int, snvs: int, indels: int) -> list[Variant]:
    rng = random.Random(seed)
    reference = random_reference(rng, length)
    variants = plant_variants(rng, reference, snvs, indels, samples)
    sample_names = [f"S{i + 1}" for i in range(samples)]
    (out / "reads").mkdir(parents=True, exist_ok=True)
    (out / "reference.fa").write_text(fasta(reference))
    (out / "truth.vcf").write_text(truth_vcf(reference, variants, sample_names, seed))
    sheet = ["sample\tfastq_1\tfastq_2"]
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(sample_names):
            r1, r2 = f"reads/{name}_R1.fq.gz", f"reads/{name}_R2.fq.gz"
            # mtime=0: the same seed gives byte-identical files.
            with open(out / r1, "wb") as raw1, open(out / r2, "wb") as raw2, \
                    gzip.GzipFile(fileobj=raw1, mode="wb", mtime=0) as out1, \
                    gzip.GzipFile(fileobj=raw2, mode="wb", mtime=0) as out2:
                for copy in (0, 1):
                    hap = Path(tmp, f"{name}.{copy}.fa")
                    hap.write_text(fasta(haplotype(reference, variants, index, copy)))
                    simulate_reads(hap, pairs // 2, seed * 1000 + index * 2 + copy, f"{name}_c{copy}", out1, out2)
            sheet.append(f"{name}\t{r1}\t{r2}")
    (out / "samples.tsv").write_text("\n".join(sheet) + "\n")
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--length", type=int, default=50_000, help="reference length in bases")
    parser.add_argument("--pairs", type=int, default=6000, help="read pairs per sample")
    parser.add_argument("--snvs", type=int, default=24)
    parser.add_argument("--indels", type=int, default=8)
    args = parser.parse_args(argv)
    variants = make(args.out, args.seed, args.samples, args.length, args.pairs, args.snvs, args.indels)
    carried = sum(gt != "0/0" for v in variants for gt in v.genotypes)
    print(f"{args.out}: {len(variants)} planted sites, {carried} sample genotypes carrying them, "
          f"{args.samples} samples x {args.pairs} read pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
