"""The germline workflow without Slurm: sample sheet and config checks, the plan Snakemake makes
(partitions, the DRAGEN path), the seeded test data, and one real run on this machine."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpctool.cli import main
from hpctool.workflow import launch, rules

REPO = Path(__file__).resolve().parents[1]
GERMLINE = REPO / "snakemake" / "workflows" / "germline"
MAKE_TEST_DATA = REPO / "scripts" / "make_test_data.py"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


samplesheet = _load("germline_samplesheet", GERMLINE / "samplesheet.py")
summary = _load("germline_summary", GERMLINE / "scripts" / "summary.py")
test_data_module = _load("make_test_data", MAKE_TEST_DATA)


@pytest.fixture(scope="module")
def data(germline_data: Path) -> Path:
    return germline_data  # the session's seeded test data (conftest)


def dry_run(run_dir: Path, data: Path, *config: str) -> subprocess.CompletedProcess[str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "test-data").exists():
        (run_dir / "test-data").symlink_to(data)
    argv = launch.snakemake_argv("germline", run_dir, profile=None, test=True,
                                   extra=["-n", "-F", "-p", *(["--config", *config] if config else [])])
    # Snakemake prints its plan and its errors to stdout and stderr by turns: read both as one.
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                          check=False)


def planned_partitions(output: str) -> dict[str, set[str]]:
    """rule -> partitions from a dry run's job blocks."""
    plan: dict[str, set[str]] = {}
    # Rule blocks start a line (indented inside a group job); local rules never reach Slurm.
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):
        rule = re.match(r"\s*rule (\w+):", block)
        partition = re.search(r"slurm_partition=(\w+)", block)
        if rule and partition:
            plan.setdefault(rule.group(1), set()).add(partition.group(1))
    return plan


# -- sample sheet ---------------------------------------------------------------------------------
def test_sample_sheet_resolves_paths_relative_to_the_sheet(data: Path) -> None:
    samples = samplesheet.load_sample_sheet(data / "samples.tsv")
    assert list(samples) == ["S1", "S2", "S3", "S4"]
    assert samples["S2"].fastq_1 == (data / "reads" / "S2_R1.fq.gz").resolve()


def test_sample_sheet_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a_R1.fq.gz").write_text("")
    (tmp_path / "a_R2.fq.gz").write_text("")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\tfastq_1\tfastq_2\n"
                     "A\ta_R1.fq.gz\ta_R2.fq.gz\n"
                     "B\ta_R1.fq.gz\tmissing_R2.fq.gz\n"
                     "A\ta_R1.fq.gz\ta_R2.fq.gz\n"
                     "bad name\ta_R1.fq.gz\ta_R2.fq.gz\n"
                     "C\t\ta_R2.fq.gz\n")
    with pytest.raises(samplesheet.SampleSheetError) as error:
        samplesheet.load_sample_sheet(sheet)
    message = str(error.value)
    assert message.startswith(f"sample sheet {sheet} has 4 problem(s):")
    assert f"line 3, sample B: fastq_2 file {tmp_path / 'missing_R2.fq.gz'} does not exist" in message
    assert "line 4, sample A: sample A is listed twice" in message
    assert "line 5, sample bad name: sample names use letters" in message
    assert "line 6, sample C: column fastq_1 is empty" in message


@pytest.mark.parametrize("text, expected", [
    ("name\tr1\tr2\nA\tx\ty\n", "missing column(s) sample, fastq_1, fastq_2"),
    ("sample\tfastq_1\tfastq_2\n", "no samples"),
])
def test_sample_sheet_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "s.tsv").write_text(text)
    with pytest.raises(samplesheet.SampleSheetError, match=re.escape(expected)):
        samplesheet.load_sample_sheet(tmp_path / "s.tsv")
    with pytest.raises(samplesheet.SampleSheetError, match="does not exist"):
        samplesheet.load_sample_sheet(tmp_path / "nowhere.tsv")


def test_snakemake_stops_before_any_job_on_a_missing_fastq(tmp_path: Path, data: Path) -> None:
    broken = tmp_path / "data"
    broken.mkdir()
    for item in data.iterdir():
        (broken / item.name).symlink_to(item)
    (broken / "samples.tsv").unlink()
    (broken / "samples.tsv").write_text((data / "samples.tsv").read_text().replace("S3_R2.fq.gz", "S3_R9.fq.gz"))
    result = dry_run(tmp_path / "run", broken)
    assert result.returncode != 0
    assert "sample sheet test-data/samples.tsv has 1 problem(s)" in result.stdout
    assert f"line 4, sample S3: fastq_2 file {(data / 'reads' / 'S3_R9.fq.gz').resolve()} does not exist" \
        in result.stdout
    assert not (tmp_path / "run" / "reference").exists()


def test_config_schema_rejects_an_unknown_aligner(tmp_path: Path, data: Path) -> None:
    result = dry_run(tmp_path / "run", data, "aligner=minimap2")
    assert result.returncode != 0
    assert "'minimap2' is not one of ['bwa', 'dragen']" in result.stdout


# -- the plan -------------------------------------------------------------------------------------
def test_bwa_plan_routes_each_rule_to_its_partition(tmp_path: Path, data: Path) -> None:
    result = dry_run(tmp_path / "run", data)
    assert result.returncode == 0, result.stdout
    assert planned_partitions(result.stdout) == {
        "index_reference": {"spot"}, "align": {"compute"}, "sort_markdup": {"storage"},
        "call_sample": {"spot"}, "qc_sample": {"spot"}, "joint_call": {"spot"}}
    assert "resources: tmpdir=" in result.stdout  # sort spills to $TMPDIR (node-local scratch)


def test_dragen_plan_runs_on_fpga_with_the_configured_command(tmp_path: Path, data: Path) -> None:
    result = dry_run(tmp_path / "run", data, "aligner=dragen")
    assert result.returncode == 0, result.stdout
    plan = planned_partitions(result.stdout)
    assert plan["dragen_align"] == {"fpga"}
    assert "align" not in plan and "sort_markdup" not in plan
    assert "dragen -f -r /fsx/dragen/reference -1 " in result.stdout
    assert "--output-file-prefix S4 && samtools index bam/S4.bam" in result.stdout
    assert "bwa index" not in result.stdout  # DRAGEN brings its own hash table


# -- test data ------------------------------------------------------------------------------------
def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_test_data_is_reproducible_from_its_seed(tmp_path: Path, data: Path) -> None:
    subprocess.run([sys.executable, str(MAKE_TEST_DATA), str(tmp_path / "again"), "--seed", "7"], check=True)
    subprocess.run([sys.executable, str(MAKE_TEST_DATA), str(tmp_path / "other"), "--seed", "8"], check=True)
    assert _digest(tmp_path / "again") == _digest(data)
    assert _digest(tmp_path / "other")["truth.vcf"] != _digest(data)["truth.vcf"]


def test_planted_variants_are_snvs_and_left_aligned_indels() -> None:
    import random

    rng = random.Random(3)
    reference = test_data_module.random_reference(rng, 50_000)
    variants = test_data_module.plant_variants(rng, reference, snvs=24, indels=8, samples=4)
    assert sum(v.kind == "snv" for v in variants) == 24 and sum(v.kind == "indel" for v in variants) == 8
    for v in variants:
        seq = reference[v.chrom]
        assert seq[v.pos - 1 : v.pos - 1 + len(v.ref)] == v.ref
        assert any(gt != "0/0" for gt in v.genotypes)
        if v.kind == "indel":
            assert test_data_module._left_aligned(seq, v.pos - 1, v.ref, v.alt)
    hap = test_data_module.haplotype(reference, variants, sample=0, copy=1)
    homs = [v for v in variants if v.genotypes[0] == "1/1"]
    hets = [v for v in variants if v.genotypes[0] == "0/1"]
    length_change = sum(len(v.alt) - len(v.ref) for v in homs)
    assert sum(map(len, hap.values())) == sum(map(len, reference.values())) + length_change
    assert hets, "seed 3 plants heterozygous sites in sample 1"


# -- one real run here (no Slurm): the tools, the summary table, `hpctool run --cores` ---------------
def test_local_run_and_summary_table(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "local"
    out.mkdir()
    (out / "test-data").symlink_to(data)
    assert main(["run", "germline", str(out), "--test", "--cores", "2", "--snakemake=--quiet"]) == 0
    rows = [line.split("\t") for line in (out / "qc" / "summary.tsv").read_text().splitlines()]
    assert rows[0] == summary.COLUMNS
    by_sample = {row[0]: dict(zip(summary.COLUMNS, row, strict=True)) for row in rows[1:]}
    assert sorted(by_sample) == ["S1", "S2", "S3", "S4"]
    for row in by_sample.values():
        assert row["reads"] == "12000"
        assert float(row["mapped_pct"]) > 99 and float(row["properly_paired_pct"]) > 95
        assert int(row["snvs"]) > 0 and int(row["indels"]) > 0
    flags = summary.parse_flagstat((out / "qc" / "S1.flagstat.txt").read_text())
    assert flags["in total"] == 12000 and flags["paired in sequencing"] == 12000
    assert not (out / "align").exists() or not list((out / "align").glob("*.bam"))  # temp() removed


# -- the profiles ---------------------------------------------------------------------------------
def _profile(name: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "snakemake" / "profiles" / name / "config.yaml").read_text())


def test_cluster_profile_is_spot_safe_and_uses_the_pinned_envs() -> None:
    profile = _profile("slurm")
    assert profile["executor"] == "slurm"
    assert profile["software-deployment-method"] == "conda"
    assert profile["slurm-requeue"] is True and profile["rerun-incomplete"] is True
    assert profile["retries"] >= 1 and profile["latency-wait"] >= 30
    assert profile["default-resources"]["slurm_partition"] == "compute"
    assert profile["slurm-init-seconds-before-status-checks"] < 40  # the plugin's default
    # Failed status queries are retried back to back at this rate; all failing drops every job
    # from the executor's watch (docs/workflows.md): they must outlast a slurmdbd restart.
    assert profile["slurm-status-attempts"] / profile["max-status-checks-per-second"] >= 60
    assert "groups" not in profile and "group-components" not in profile  # real jobs run in parallel


def test_twin_profile_is_tuned_for_one_machine_without_conda() -> None:
    profile = _profile("twin")
    assert profile["executor"] == "slurm"
    assert "software-deployment-method" not in profile and "sdm" not in profile
    assert profile["slurm-init-seconds-before-status-checks"] <= 2
    assert profile["latency-wait"] <= 5
    assert profile["slurm-requeue"] is True and profile["rerun-incomplete"] is True
    assert profile["slurm-status-attempts"] / profile["max-status-checks-per-second"] >= 10
    assert "groups" not in profile  # measured slower on the twin (docs/benchmarks.md, germline)


def test_snakemake_accepts_the_cluster_profile(tmp_path: Path, data: Path) -> None:
    """Every key of the cluster profile is a valid Snakemake option (conda itself is swapped for
    env-modules: there is no conda here, and a dry run would stop at `conda info`)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "test-data").symlink_to(data)
    argv = launch.snakemake_argv("germline", run_dir, profile="slurm", test=True,
                                   extra=["-n", "--sdm", "env-modules"])
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                          check=False)
    assert result.returncode == 0, result.stdout
    assert "This was a dry-run" in result.stdout


def test_a_failing_test_data_script_is_a_clear_error(tmp_path, monkeypatch):
    from hpctool.errors import SetupError
    from hpctool.workflow import launch

    broken = tmp_path / "make_test_data.py"
    broken.write_text("import sys\nsys.exit('wgsim: command not found')\n")
    monkeypatch.setattr(launch, "TEST_DATA_SCRIPT", broken)
    with pytest.raises(SetupError) as error:
        launch.make_test_data(tmp_path / "out")
    assert "wgsim: command not found" in error.value.message and "make setup" in error.value.hint


def test_group_job_members_are_read_back_from_snakemakes_log() -> None:
    """A pasted Snakemake log of a twin run (reference index, then the four aligns as one group
    job, the first finishing): each member is known by its own job id and wildcards."""
    text = (REPO / "tests" / "data" / "snakemake" / "group-run.log").read_text()
    planned = rules.planned_rule_jobs(text)
    assert sorted(planned.values())[:5] == [("align", "S1"), ("align", "S2"), ("align", "S3"), ("align", "S4"),
                                            ("index_reference", "")]
    assert rules.finished_rule_jobs(text) == {("index_reference", ""), ("align", "S1"), ("align", "S2"),
                                                 ("align", "S3"), ("align", "S4")}
    jobs = rules.parse_submissions(text)
    assert [(j.rules, j.snakemake_job) for j in jobs][:1] == [(("index_reference",), "4")]
    assert jobs[1].rules == ("group_aligns_align",)  # without its Slurm log, the folder name
