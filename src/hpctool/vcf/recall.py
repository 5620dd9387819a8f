"""Recall of a workflow's calls against a truth set: which true variants each sample's calls carry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpctool.errors import VcfError
from hpctool.vcf.concordance import normalize_gt
from hpctool.vcf.reading import Vcf


# -- recall against a truth set ------------------------------------------------------------------
@dataclass
class Recall:
    sample: str
    planted: int
    found: int
    genotype_matches: int
    missed: list[str]

    @property
    def fraction(self) -> float:
        return self.found / self.planted if self.planted else 1.0


def _carries(gt: str | None) -> bool:
    return any(allele not in {"0", "."} for allele in re.split(r"[/|]", gt or "."))


def recall(truth: Vcf, calls: Vcf, sample: str, calls_sample: str | None = None) -> Recall:
    """How many of ``sample``'s planted variants (non-reference GT in the truth) the calls carry.

    ``calls_sample`` names the sample's column in ``calls`` (default: the same name, or the only
    column of a single-sample VCF).
    """
    if sample not in truth.samples:
        raise VcfError(f"{truth.name}: no sample {sample}", f"samples there: {', '.join(truth.samples)}")
    column = calls_sample or (sample if sample in calls.samples or len(calls.samples) != 1 else calls.samples[0])
    if column not in calls.samples:
        raise VcfError(f"{calls.name}: no sample {column}", f"samples there: {', '.join(calls.samples)}")
    called = {r.key: r.format.get(column, {}).get("GT") for r in calls.records}
    planted = found = matches = 0
    missed = []
    for record in truth.records:
        truth_gt = record.format.get(sample, {}).get("GT")
        if not _carries(truth_gt):
            continue
        planted += 1
        call_gt = called.get(record.key)
        if _carries(call_gt):
            found += 1
            matches += normalize_gt(call_gt) == normalize_gt(truth_gt)
        else:
            missed.append(f"{record.chrom}:{record.pos} {record.ref}>{record.alt} ({truth_gt})")
    return Recall(sample=sample, planted=planted, found=found, genotype_matches=matches, missed=missed)


def cohort_recall(truth: Vcf, calls: list[Vcf]) -> list[Recall]:
    """Recall of every truth sample, each from the called VCF that has its column (a cohort VCF,
    or one VCF per sample; a lone single-sample VCF stands for every sample). A truth sample that
    no VCF has is an error, never a silent skip that would raise the recall."""
    results = []
    for sample in truth.samples:
        vcf = next((c for c in calls if sample in c.samples), calls[0] if len(calls) == 1 else None)
        if vcf is None:
            raise VcfError(f"sample {sample} of {truth.name} is in none of the called VCFs",
                           f"give its VCF too (samples called: {', '.join(s for c in calls for s in c.samples)})")
        results.append(recall(truth, vcf, sample))
    return results
