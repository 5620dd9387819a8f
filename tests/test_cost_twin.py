"""`hpctool cost jobs` on the real twin: real sacct records, a requeued spot job, an exclusive job,
and a Snakemake run folder that maps them to rules and samples."""

from __future__ import annotations

import json
import time

import pytest

from hpctool.cli import main as cli
from hpctool.cost import jobs as cost_jobs
from hpctool.cost import prices
from hpctool.cost.prices import parse_time
from support.twin import wait_for, wait_job

pytestmark = pytest.mark.twin


def _running(slurm, job_id: str) -> bool:
    return slurm.job(job_id).get("JobState") == "RUNNING"


def _snakemake_log(run_dir, jobs: dict[str, tuple[str, str]]) -> None:
    """A Snakemake log naming the jobs, as the Slurm executor plugin writes it."""
    log = run_dir / ".snakemake" / "log"
    log.mkdir(parents=True)
    lines = [f"Job {n} has been submitted with SLURM jobid {slurm_id} "
             f"(log: {run_dir}/.snakemake/slurm_logs/rule_{rule}/{sample}/{slurm_id}.log)."
             for n, (slurm_id, (rule, sample)) in enumerate(jobs.items())]
    (log / "2026-11-22T000000.000000.snakemake.log").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def cost_jobs_on_twin(twin):
    slurm = twin.slurm
    spot = slurm.sbatch(["-p", "spot", "--requeue", "-c", "2", "--mem=500M", "-J", "cost-align"], wrap="sleep 4")
    exclusive = slurm.sbatch(["-p", "compute", "--exclusive", "-J", "cost-call"], wrap="sleep 2")
    wait_for(lambda: _running(slurm, spot), timeout=60, what="the spot job to run")
    time.sleep(2)
    slurm.requeue(spot)  # what the spot handler does on an interruption notice
    assert wait_job(slurm, spot, timeout=90) == "COMPLETED"
    assert wait_job(slurm, exclusive, timeout=60) == "COMPLETED"
    return spot, exclusive


def test_cost_of_real_jobs_by_hand(twin, cost_jobs_on_twin):
    spot, exclusive = cost_jobs_on_twin
    book = prices.load()
    items = cost_jobs.job_costs(twin.slurm, job_ids=[spot, exclusive])
    by_key = {(i.job_id, i.lost): i for i in items}
    assert set(by_key) == {(spot, True), (spot, False), (exclusive, False)}
    lost, final, whole = by_key[spot, True], by_key[spot, False], by_key[exclusive, False]
    cpus = twin.layout().cpus_per_node
    assert lost.state == "REQUEUED" and lost.elapsed_s >= 1 and final.elapsed_s >= 4
    # 2 CPUs of the node's 4 (500 MB is less than half its memory): half a node, at the spot price
    spot_price = book.instance("c7i.4xlarge", "us-east-1").spot_at(parse_time(final.start))
    assert final.spot and final.share == 2 / cpus
    assert final.cost == pytest.approx(final.elapsed_s / 3600 * 0.5 * spot_price)
    assert lost.cost == pytest.approx(lost.elapsed_s / 3600 * 0.5 * spot_price)
    assert whole.share == 1.0 and not whole.spot
    assert whole.cost == pytest.approx(whole.elapsed_s / 3600 * book.instance("c7i.4xlarge", "us-east-1").on_demand)


def test_cost_jobs_cli_per_rule_and_sample_of_a_run(twin, cost_jobs_on_twin, tmp_path, capsys):
    spot, exclusive = cost_jobs_on_twin
    run_dir = tmp_path / "run1"
    _snakemake_log(run_dir, {spot: ("align", "S1"), exclusive: ("call", "")})
    assert cli(["cost", "jobs", "--run", str(run_dir), "--by", "rule", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    groups = {g["key"]: g for g in data["groups"]}
    assert set(groups) == {"align", "call"} and groups["align"]["jobs"] == 1
    jobs = {(j["job_id"], j["lost"]): j["cost"] for j in data["jobs"]}
    assert groups["align"]["cost"] == pytest.approx(jobs[spot, False], abs=1e-6)
    assert data["lost_to_interruptions"]["runs"] == 1
    assert data["lost_to_interruptions"]["cost"] == pytest.approx(jobs[spot, True], abs=1e-6)
    assert data["total"] == pytest.approx(sum(jobs.values()), abs=1e-5)
    assert data["price_dates"] == [prices.load().region_date("us-east-1")]

    assert cli(["cost", "jobs", "--run", str(run_dir), "--by", "sample"]) == 0
    out = capsys.readouterr().out
    assert f"prices as of {prices.load().region_date('us-east-1')}" in out and "S1" in out and cost_jobs.ALL_SAMPLES in out
    assert "lost to spot interruptions  1" in out

    assert cli(["cost", "jobs", "--by", "rule"]) == 2  # a rule needs a run folder
    assert "needs a Snakemake run folder" in capsys.readouterr().err


def test_cost_jobs_by_user_over_a_window_includes_the_jobs(twin, cost_jobs_on_twin, capsys):
    assert cli(["cost", "jobs", "--since", "now-1hours", "--by", "queue", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    spot, exclusive = cost_jobs_on_twin
    listed = {j["job_id"] for j in data["jobs"]}
    assert {spot, exclusive} <= listed
    queues = {g["key"] for g in data["groups"]}
    assert {"spot", "compute"} <= queues


def test_report_page_of_a_run_on_the_twin(twin, cost_jobs_on_twin, tmp_path, capsys):
    spot, exclusive = cost_jobs_on_twin
    run_dir = tmp_path / "run2"
    _snakemake_log(run_dir, {spot: ("align", "S1"), exclusive: ("call", "")})
    (run_dir / "qc").mkdir()
    (run_dir / "qc" / "summary.tsv").write_text("sample\treads\nS1\t2000\n")
    png = tmp_path / "report.png"
    assert cli(["report", str(run_dir), "--png", str(png)]) == 0
    page = run_dir / "hpctool-report.html"
    assert capsys.readouterr().out.strip() == str(page)
    text = page.read_text()
    # the spot job's two runs (one interrupted) and the exclusive job: three bars, one cross
    assert text.count('<rect class="job') == 3 and text.count('<rect class="job lost"') == 1
    assert text.count('class="interruption"') == 1 and f"spot reclaim of job {spot}" in text
    assert f"prices as of {prices.load().region_date('us-east-1')}" in text and "<td>S1</td><td>2000</td>" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
