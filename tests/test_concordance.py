"""hpctool.vcf: VCF reading, record comparison, recall; `hpctool concordance` exit codes."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from hpctool.cli import main
from hpctool.errors import VcfError
from hpctool.vcf import reading
from hpctool.vcf.concordance import (
    compare,
    compare_files,
    normalize_gt,
    parse_fields,
    stable_header,
)
from hpctool.vcf.reading import BGZF_EOF, load_vcf, parse_vcf
from hpctool.vcf.recall import cohort_recall, recall

# Shaped like the workflow's cohort VCF (bcftools 1.16 call + norm), cut down to three records.
COHORT = """##fileformat=VCFv4.2
##FILTER=<ID=PASS,Description="All filters passed">
##bcftoolsVersion=1.16+htslib-1.16
##bcftoolsCommand=mpileup -f reference/genome.fa -q 20 -Q 20 -a AD,DP -Ou bam/S1.bam bam/S2.bam
##reference=file://reference/genome.fa
##contig=<ID=chr1,length=30000>
##contig=<ID=chr2,length=20000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Raw read depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##bcftools_callVersion=1.16+htslib-1.16
##bcftools_callCommand=call -m -v -Ou; Date=Sat Nov 21 10:31:12 2026
##bcftools_normCommand=norm -f reference/genome.fa -Oz -o cohort/cohort.vcf.gz; Date=Sat Nov 21 10:31:13 2026
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
chr1\t2534\t.\tT\tC\t388.565\t.\tDP=101;MQ0F=0\tGT:AD\t0/0:18,0\t0/1:11,14
chr1\t4966\t.\tT\tTC\t219.161\t.\tINDEL;DP=98\tGT:AD\t0/1:12,13\t0/0:27,0
chr2\t15353\t.\tCG\tC\t960.364\t.\tINDEL;DP=120\tGT:AD\t1/1:0,22\t1/1:0,27
"""


def with_header_noise(text: str) -> str:
    """The same records under another run's dates and command lines."""
    return (text.replace("Date=Sat Nov 21 10:31:12 2026", "Date=Mon Jan  5 08:00:00 2027")
            .replace("Date=Sat Nov 21 10:31:13 2026", "Date=Mon Jan  5 08:00:01 2027")
            .replace("bam/S1.bam bam/S2.bam", "/scratch/run2/bam/S1.bam /scratch/run2/bam/S2.bam")
            .replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n##fileDate=20270105\n"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_parse_reads_samples_records_and_fields() -> None:
    vcf = parse_vcf(COHORT, "cohort")
    assert vcf.samples == ["S1", "S2"]
    assert [r.key for r in vcf.records] == [("chr1", 2534, "T", "C"), ("chr1", 4966, "T", "TC"),
                                            ("chr2", 15353, "CG", "C")]
    indel = vcf.records[1]
    assert indel.info == {"INDEL": "true", "DP": "98"}
    assert indel.format["S1"] == {"GT": "0/1", "AD": "12,13"}


def test_header_only_differences_are_concordant() -> None:
    result = compare(parse_vcf(COHORT, "a"), parse_vcf(with_header_noise(COHORT), "b"),
                     fields=["QUAL", "INFO/DP", "FORMAT/AD"])
    assert result.concordant
    assert (result.identical, result.discordant) == (3, 0)
    assert result.header_differences == []


def test_stable_header_drops_only_dates_and_command_lines() -> None:
    kept = stable_header(parse_vcf(with_header_noise(COHORT)).meta)
    assert not any("Command" in line or "Date" in line for line in kept)
    assert "##bcftools_callVersion=1.16+htslib-1.16" in kept
    assert "##contig=<ID=chr1,length=30000>" in kept


def test_other_header_differences_are_reported_but_records_decide() -> None:
    changed = COHORT.replace("##reference=file://reference/genome.fa", "##reference=file://hg38.fa")
    result = compare(parse_vcf(COHORT, "a"), parse_vcf(changed, "b"))
    assert result.concordant
    assert result.header_differences == ["only in a: ##reference=file://reference/genome.fa",
                                         "only in b: ##reference=file://hg38.fa"]


def test_a_changed_genotype_is_discordant() -> None:
    changed = COHORT.replace("0/1:11,14", "1/1:11,14")
    result = compare(parse_vcf(COHORT, "a"), parse_vcf(changed, "b"))
    assert not result.concordant
    assert (result.identical, result.discordant) == (2, 1)
    assert result.by_kind == {"genotype": 1}
    assert str(result.differences[0]) == "chr1:2534 T>C  genotype: S2 GT 0/1 vs 1/1"


def test_missing_and_extra_records_and_field_changes() -> None:
    lines = COHORT.splitlines(keepends=True)
    dropped = "".join(line for line in lines if "\t4966\t" not in line)
    extra = COHORT + "chr2\t17000\t.\tA\tG\t50\t.\tDP=30\tGT:AD\t0/1:15,15\t0/0:30,0\n"
    depth = COHORT.replace("DP=120", "DP=119")
    assert compare(parse_vcf(COHORT, "a"), parse_vcf(dropped, "b")).by_kind == {"only_in_a": 1}
    assert compare(parse_vcf(COHORT, "a"), parse_vcf(extra, "b")).by_kind == {"only_in_b": 1}
    assert compare(parse_vcf(COHORT, "a"), parse_vcf(depth, "b")).concordant  # INFO/DP not asked for
    result = compare(parse_vcf(COHORT, "a"), parse_vcf(depth, "b"), fields=["INFO/DP"])
    assert result.by_kind == {"field": 1}
    assert result.differences[0].detail == "INFO/DP 120 vs 119"


def test_different_samples_are_discordant() -> None:
    renamed = COHORT.replace("\tS1\tS2\n", "\tS1\tS9\n")
    result = compare(parse_vcf(COHORT, "a"), parse_vcf(renamed, "b"))
    assert not result.samples_match and not result.concordant


def test_unphased_genotypes_compare_as_allele_sets() -> None:
    assert normalize_gt("1/0") == normalize_gt("0/1") == "0/1"
    assert normalize_gt("1|0") != normalize_gt("0|1")
    assert normalize_gt("./1") == "1/."
    assert normalize_gt(None) == "."


def test_field_names_are_checked() -> None:
    assert parse_fields("QUAL, INFO/DP,FORMAT/AD") == ["QUAL", "INFO/DP", "FORMAT/AD"]
    with pytest.raises(VcfError, match="DEPTH"):
        parse_fields("QUAL,DEPTH")


@pytest.mark.parametrize("text, reason", [
    ("", "no #CHROM header line"),
    ("chr1\t5\t.\tA\tG\t.\t.\t.\n", "a record before the #CHROM header line"),
    ("#CHROM\tPOS\tREF\n", "does not have the 8 VCF columns"),
    (COHORT + "chr1\t99\t.\tA\n", "4 columns, expected 11"),
    (COHORT + "chr1\tx\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/1\n", "POS 'x' is not a number"),
])
def test_malformed_vcf_names_the_problem(text: str, reason: str) -> None:
    with pytest.raises(VcfError, match=reason):
        parse_vcf(text, "bad.vcf")


def test_bgzipped_and_plain_files_compare(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.vcf", COHORT)
    other = write(tmp_path / "b.vcf", with_header_noise(COHORT))
    subprocess.run(["bgzip", "-f", str(other)], check=True)  # the real bgzip (Debian tabix)
    assert compare_files(plain, tmp_path / "b.vcf.gz").concordant


def test_truncated_gzip_is_unreadable(tmp_path: Path) -> None:
    data = gzip.compress(COHORT.encode())
    (tmp_path / "cut.vcf.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(VcfError, match="truncated or corrupt"):
        load_vcf(tmp_path / "cut.vcf.gz")


def test_recall_counts_carried_truth_variants(tmp_path: Path) -> None:
    truth = parse_vcf(COHORT, "truth")
    calls = parse_vcf(COHORT.replace("chr1\t4966\t.\tT\tTC", "chr1\t4966\t.\tT\tTCC"), "calls")
    s1 = recall(truth, calls, "S1")
    assert (s1.planted, s1.found, s1.genotype_matches) == (2, 1, 1)
    assert s1.missed == ["chr1:4966 T>TC (0/1)"]
    assert recall(truth, calls, "S2").fraction == 1.0
    # A per-sample VCF's only column is that sample's, whatever its name there.
    single = parse_vcf("".join(line.rsplit("\t", 1)[0] + "\n" for line in COHORT.splitlines() if line)
                       .replace("\tS1\n", "\tsample_1\n"), "single")
    assert single.samples == ["sample_1"]
    assert recall(truth, single, "S1").found == 2
    with pytest.raises(VcfError, match="no sample S7"):
        recall(truth, calls, "S7")


def test_cohort_recall_refuses_a_truth_sample_no_vcf_has() -> None:
    truth = parse_vcf(COHORT, "truth")
    only_s1 = parse_vcf("".join(line.rsplit("\t", 1)[0] + "\n" for line in COHORT.splitlines() if line), "s1")
    other = parse_vcf(COHORT.replace("\tS1\tS2", "\tX1\tX2"), "other")
    assert [r.sample for r in cohort_recall(truth, [parse_vcf(COHORT, "cohort")])] == ["S1", "S2"]
    with pytest.raises(VcfError, match="sample S2 of truth is in none of the called VCFs"):
        cohort_recall(truth, [only_s1, other])


# -- the command ------------------------------------------------------------------------------
def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.vcf", COHORT)
    b = write(tmp_path / "b.vcf", with_header_noise(COHORT))
    changed = write(tmp_path / "c.vcf", COHORT.replace("1/1:0,22", "0/1:0,22"))
    assert main(["concordance", str(a), str(b), "--fields", "QUAL,FORMAT/AD"]) == 0
    assert capsys.readouterr().out.startswith("concordant: 3 identical, 0 discordant")
    assert main(["concordance", str(a), str(changed)]) == 1
    out = capsys.readouterr().out
    assert "DISCORDANT: 2 identical, 1 discordant" in out
    assert "chr2:15353 CG>C  genotype: S1 GT 1/1 vs 0/1" in out
    assert main(["concordance", str(a), str(tmp_path / "missing.vcf")]) == 2
    assert "missing.vcf: no such file" in capsys.readouterr().err
    assert main(["concordance", str(a), str(write(tmp_path / "notes.txt", "hello\n"))]) == 2
    assert "a record before the #CHROM header line" in capsys.readouterr().err
    assert main(["concordance", str(a), str(b), "--fields", "DEPTH"]) == 2


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.vcf", COHORT)
    changed = write(tmp_path / "c.vcf", COHORT.replace("0/1:12,13", "0/0:12,13"))
    assert main(["concordance", str(a), str(changed), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["concordant"] is False
    assert (data["identical"], data["discordant"]) == (2, 1)
    assert data["differences"][0] == {"kind": "genotype", "chrom": "chr1", "pos": 4966, "ref": "T", "alt": "TC",
                                      "detail": "S1 GT 0/1 vs 0/0"}


def test_cli_recall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = write(tmp_path / "truth.vcf", COHORT)
    assert main(["recall", str(truth), str(truth), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["planted"], data["found"], data["recall"]) == (4, 4, 1.0)


def test_bgzip_is_installed() -> None:
    assert shutil.which("bgzip"), "tabix (bgzip) is in scripts/setup.sh's APT_PACKAGES"


# -- streaming files (compare_files): formats, order, truncation ------------------------------------
def bgzip(path: Path) -> Path:
    subprocess.run(["bgzip", "-f", str(path)], check=True)  # the real bgzip (Debian tabix)
    return path.with_name(path.name + ".gz")


def test_bgzip_without_its_eof_block_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = bgzip(write(tmp_path / "a.vcf", COHORT))
    data = whole.read_bytes()
    assert data.endswith(BGZF_EOF)  # what bgzip writes, and what a cut-short copy lacks
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: -len(BGZF_EOF)])  # every record is still there: gzip alone reads it fine
    assert gzip.decompress(cut.read_bytes()).decode() == COHORT
    with pytest.raises(VcfError, match="no end-of-file block: it was cut short"):
        compare_files(whole, cut)
    with pytest.raises(VcfError, match="no end-of-file block"):
        load_vcf(cut)
    assert main(["concordance", str(whole), str(cut)]) == 2
    assert "cut.vcf.gz: the bgzip file has no end-of-file block" in capsys.readouterr().err


# BCF needs every INFO key declared (bcftools refuses to write undeclared ones).
DECLARED = COHORT.replace("##FORMAT=<ID=GT", '##INFO=<ID=MQ0F,Number=1,Type=Float,Description="MQ0 share">\n'
                          '##INFO=<ID=INDEL,Number=0,Type=Flag,Description="Indel">\n##FORMAT=<ID=GT')


def test_bcf_indexed_bgzip_and_plain_files_compare(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.vcf", DECLARED)
    packed = bgzip(write(tmp_path / "b.vcf", with_header_noise(DECLARED)))
    subprocess.run(["bcftools", "index", str(packed)], check=True)
    bcf = tmp_path / "c.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(packed)], check=True)
    for other in (packed, bcf):
        result = compare_files(plain, other, fields=["INFO/DP", "FORMAT/AD"])
        assert (result.concordant, result.identical, result.records_b) == (True, 3, 3), other
    changed = tmp_path / "d.bcf"
    text = write(tmp_path / "d.vcf", DECLARED.replace("0/1:11,14", "1/1:11,14"))
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(changed), str(text)], check=True)
    result = compare_files(bcf, changed)
    assert result.by_kind == {"genotype": 1}
    assert str(result.differences[0]) == "chr1:2534 T>C  genotype: S2 GT 0/1 vs 1/1"


@pytest.mark.parametrize("swap, message", [
    (("chr1\t4966\t", "chr1\t1000\t"), "chr1:1000 comes after chr1:2534: the file is not sorted by position"),
    (("chr2\t15353\t", "chr1\t15353\t"), None),  # still sorted: chr1 ends later, fine
])
def test_unsorted_file_is_a_clear_error(tmp_path: Path, swap: tuple[str, str], message: str | None) -> None:
    a = write(tmp_path / "a.vcf", COHORT)
    b = write(tmp_path / "b.vcf", COHORT.replace(*swap))
    if message is None:
        assert compare_files(a, b).by_kind == {"only_in_a": 1, "only_in_b": 1}
        return
    with pytest.raises(VcfError, match=message) as error:
        compare_files(a, b)
    assert "bcftools sort" in error.value.hint


def test_a_contig_that_comes_back_is_unsorted(tmp_path: Path) -> None:
    lines = COHORT.splitlines(keepends=True)
    moved = "".join(lines[:-3] + [lines[-2], lines[-1], lines[-3]])  # chr1 4966, chr2, chr1 2534
    b = write(tmp_path / "b.vcf", moved)
    with pytest.raises(VcfError, match="chr1 comes again after other contigs"):
        compare_files(write(tmp_path / "a.vcf", COHORT), b)


def test_files_that_order_contigs_differently_are_an_error(tmp_path: Path) -> None:
    header, records = COHORT.split("#CHROM")[0], COHORT.split("\n", 14)[14]
    chrom_line = "#CHROM" + COHORT.split("#CHROM")[1].split("\n")[0] + "\n"
    rows = records.splitlines(keepends=True)
    no_contigs = "".join(line for line in header.splitlines(keepends=True) if "##contig" not in line)
    a = write(tmp_path / "a.vcf", no_contigs + chrom_line + "".join(rows))
    b = write(tmp_path / "b.vcf", no_contigs + chrom_line + rows[2] + rows[0] + rows[1])  # chr2 first
    with pytest.raises(VcfError, match="order their contigs differently"):
        compare_files(a, b)
    # With ##contig lines, a file that lacks a contig merges in header order.
    c = write(tmp_path / "c.vcf", header + chrom_line + rows[2])
    result = compare_files(c, write(tmp_path / "d.vcf", COHORT))
    assert result.by_kind == {"only_in_b": 2} and result.identical == 1
    assert [d.pos for d in result.differences] == [2534, 4966]


def _random_vcf(rng: random.Random, sites: list[tuple[str, int, str, str]], like: dict[tuple, str]) -> str:
    """Records at ``sites``; most take the line ``like`` has for the site (as a rerun would)."""
    out = [COHORT.split("#CHROM")[0] + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"]
    for site in sites:
        chrom, pos, ref, alt = site
        gts = [rng.choice(["0/0", "0/1", "1/1", "./."]) for _ in range(2)]
        line = (f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t{rng.choice(['50', '60'])}\t.\tDP={rng.randint(5, 7)}"
                f"\tGT:AD\t{gts[0]}:1,2\t{gts[1]}:3,4\n")
        line = like[site] if site in like and rng.random() < 0.8 else line
        like.setdefault(site, line)
        out.append(line)
    return "".join(out)


def test_streamed_comparison_agrees_with_the_in_memory_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random sorted VCFs with shared, missing, repeated and changed sites: the file merge (read in
    blocks of a few lines, so runs of identical lines cross block ends) and the in-memory
    comparison give the same counts and the same first differences."""
    monkeypatch.setattr(reading, "BLOCK_BYTES", 300)
    rng = random.Random(11)
    for round_ in range(30):
        pool = sorted({(rng.choice(["chr1", "chr2"]), rng.randint(1, 40), rng.choice("ACGT"), rng.choice(["C", "T", "GA"]))
                       for _ in range(40)}, key=lambda s: (s[0], s[1]))
        sites_a = [s for s in pool if rng.random() < 0.8]
        sites_b = [s for s in pool if rng.random() < 0.8]
        sites_b += [s for s in sites_b[:2]]  # a repeated record
        sites_b.sort(key=lambda s: (s[0], s[1]))
        like: dict[tuple, str] = {}
        text_a, text_b = _random_vcf(rng, sites_a, like), _random_vcf(rng, sites_b, like)
        fields = ["QUAL", "INFO/DP"]
        streamed = compare_files(write(tmp_path / "a.vcf", text_a), write(tmp_path / "b.vcf", text_b),
                                 fields=fields, keep=50)
        in_memory = compare(parse_vcf(text_a, str(tmp_path / "a.vcf")), parse_vcf(text_b, str(tmp_path / "b.vcf")),
                            fields=fields, keep=50)
        assert streamed.to_dict() == in_memory.to_dict(), round_
        assert streamed.records_b == len(sites_b)
        assert streamed.identical > 0 and streamed.discordant > 0
