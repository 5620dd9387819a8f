"""The pure parsers, on output pasted from the twin: Debian 12's Slurm 22.05.8 (data/slurm/22.05) and
the node image's Slurm 24.11.5 (data/slurm/24.11, made by scripts/capture_slurm_output.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpctool.errors import SlurmError
from hpctool.slurm.associations import parse_associations, parse_sshare, users_by_account
from hpctool.slurm.parse import (
    job_active,
    job_finished,
    job_state_base,
    node_in_service,
    node_out_of_service,
    node_state_flags,
    parse_delimited,
    parse_elapsed,
    parse_sacct_jobs,
    parse_sbatch_parsable,
    parse_scontrol_config,
    parse_scontrol_record,
    parse_scontrol_records,
    parse_sinfo_nodes,
    parse_time_limit,
)

SLURM_DATA = Path(__file__).parent / "data" / "slurm"
DATA = SLURM_DATA / "22.05"


def test_sacct_requeued_job_counts_its_earlier_runs_as_restarts():
    jobs = {j.job_id: j for j in parse_sacct_jobs((DATA / "sacct-requeued.txt").read_text())}
    assert sorted(jobs) == ["1", "2", "3", "4", "5"]
    assert [jobs[i].partition for i in "1234"] == ["compute", "spot", "fpga", "storage"]
    assert jobs["1"].state == "COMPLETED" and jobs["1"].finished and jobs["1"].restarts == 0
    assert jobs["3"].node_list == "fpga-st-f26xl-1"
    requeued = jobs["5"]
    assert requeued.restarts == 1
    assert requeued.state == "RUNNING" and not requeued.finished
    assert requeued.elapsed_seconds == 13


def test_sacct_cancelled_state_keeps_the_first_word():
    line = "9|spot|CANCELLED by 0|0:0|spot-st-mixed16-1|4|2026-11-21T10:26:01|2026-11-21T10:26:01|2026-11-21T10:26:05|wrap"
    (job,) = parse_sacct_jobs(line)
    assert job.state == "CANCELLED" and job.finished


def test_sacct_line_with_wrong_field_count_is_a_slurm_error_with_a_hint():
    with pytest.raises(SlurmError, match="expected 10 fields") as error:
        parse_sacct_jobs("1|compute|wrap")
    assert error.value.hint


def test_a_job_name_with_a_pipe_is_read_whole():
    # Pasted from the twin: `sbatch --job-name='a|b'`; sacct prints the `|` unescaped.
    jobs = {j.job_id: j for j in parse_sacct_jobs((DATA / "sacct-pipe-in-name.txt").read_text())}
    assert jobs["1"].name == "a|b" and jobs["1"].state == "COMPLETED" and jobs["1"].partition == "compute"
    assert jobs["3"].name == "wrap" and jobs["3"].state == "CANCELLED"


@pytest.mark.parametrize(
    ("state", "base", "active", "finished"),
    [
        ("PENDING", "PENDING", True, False),
        ("running", "RUNNING", True, False),
        ("REQUEUED", "REQUEUED", True, False),
        ("COMPLETING", "COMPLETING", True, False),
        ("REQUEUE_HOLD", "REQUEUE_HOLD", True, False),
        ("COMPLETED", "COMPLETED", False, True),
        ("CANCELLED by 0", "CANCELLED", False, True),
        ("NODE_FAIL", "NODE_FAIL", False, True),
        ("OUT_OF_MEMORY", "OUT_OF_MEMORY", False, True),
        ("TIMEOUT", "TIMEOUT", False, True),
        ("", "", False, False),
    ],
)
def test_job_state_predicates(state, base, active, finished):
    assert job_state_base(state) == base
    assert job_active(state) is active and job_finished(state) is finished


def test_scontrol_node_reason_with_spaces_is_one_value():
    node = parse_scontrol_record((DATA / "scontrol-node-drained.txt").read_text())
    assert node["NodeName"] == "spot-st-mixed16-2"
    assert node["State"] == "IDLE+DRAIN"
    assert node["Reason"] == "spot-interruption 2026-11-21T10:40:00Z [root@2026-11-21T10:28:15]"
    assert node["OS"].startswith("Linux 6.18")  # a value with spaces, followed by more keys
    assert node["RealMemory"] == "1807"
    assert node["AvailableFeatures"].split(",")[-1] == "spot"
    assert node["Port"] == "16830"


def test_scontrol_job_fields_and_keys_with_colons():
    (job,) = parse_scontrol_records((DATA / "scontrol-job-running.txt").read_text())
    assert job["JobId"] == "6"
    assert job["JobState"] == "RUNNING"
    assert job["Restarts"] == "0"
    assert job["Partition"] == "compute"
    assert job["NodeList"] == "compute-st-c7i4xl-1"
    assert job["AllocNode:Sid"] == "localhost:1028"
    assert job["TRES"] == "cpu=1,mem=1807M,node=1,billing=1"


def test_scontrol_no_records_message_is_empty():
    assert parse_scontrol_records("No jobs in the system\n") == []


def test_sinfo_rows():
    rows = parse_delimited((DATA / "sinfo-nodes.txt").read_text(), ["node", "state"])
    states = {r["node"]: r["state"] for r in rows}
    assert len(states) == 8
    assert states["spot-st-mixed16-2"] == "drained"


@pytest.mark.parametrize(
    ("state", "base", "flags"),
    [
        ("IDLE", "IDLE", set()),
        ("IDLE+DRAIN", "IDLE", {"DRAIN"}),
        ("DOWN*+NOT_RESPONDING", "DOWN", {"NOT_RESPONDING"}),
        ("DOWN*", "DOWN", {"NOT_RESPONDING"}),
        ("MIXED+DRAIN", "MIXED", {"DRAIN"}),
        ("drained", "DRAINED", set()),
    ],
)
def test_node_state_flags(state, base, flags):
    assert node_state_flags(state) == (base, flags)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("13", 13), ("00:01:05", 65), ("1-02:00:00", 93600), ("05:30", 330), ("", 0), ("UNLIMITED", 0)],
)
def test_parse_elapsed(text, seconds):
    assert parse_elapsed(text) == seconds


def test_sbatch_parsable():
    assert parse_sbatch_parsable("42\n") == "42"
    assert parse_sbatch_parsable("42;twin\n") == "42"
    with pytest.raises(SlurmError, match="no job id"):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


@pytest.mark.parametrize("bad", ["1-xx:00:00", "1:2:3:4", "soon"])
def test_a_bad_duration_is_a_slurm_error(bad):
    with pytest.raises(SlurmError, match="not a Slurm duration"):
        parse_elapsed(bad)


def test_sinfo_queue_nodes_give_cpus_memory_and_the_time_limit():
    # Pasted from the twin, with `scontrol update partitionname=fpga maxtime=90` for a finite limit.
    nodes = parse_sinfo_nodes((DATA / "sinfo-queue-nodes.txt").read_text())
    assert len(nodes) == 8
    compute = [n for n in nodes if n.partition == "compute"]
    assert all(n.default for n in compute) and not any(n.default for n in nodes if n.partition != "compute")
    assert {(n.cpus, n.memory_mb) for n in nodes} == {(4, 1807)}
    assert {n.time_limit_min for n in nodes if n.partition == "fpga"} == {90}
    assert compute[0].time_limit_min is None
    assert {n.node for n in nodes if "spot" in n.features} == {"spot-st-mixed16-1", "spot-st-mixed16-2"}
    assert parse_time_limit("1-00:00:00") == 1440 and parse_time_limit("30:00") == 30
    with pytest.raises(SlurmError, match="CPU count"):
        parse_sinfo_nodes("compute|compute*|n1|many|1807|infinite|idle|static")


def test_scontrol_show_config_reads_the_array_limit():
    config = parse_scontrol_config((DATA / "scontrol-show-config.txt").read_text())
    assert config["MaxArraySize"] == "1001"
    assert config["MaxJobCount"] == "10000"
    assert "Configuration data as of" not in " ".join(config)


def test_a_placeholder_row_before_the_job_record_is_not_finished():
    # Pasted from the twin: slurmdbd had the job's step but not yet the job record.
    line = "46||COMPLETED|0:0|compute-st-c7i4xl-1|0|2026-11-21T10:29:42|2026-11-21T10:29:43|2026-11-21T10:29:43|allocation"
    (job,) = parse_sacct_jobs(line)
    assert job.state == "COMPLETED"
    assert not job.recorded and not job.finished


@pytest.mark.parametrize(
    ("state", "out", "serving"),
    [
        ("idle", False, True),
        ("mixed", False, True),
        ("allocated", False, True),
        ("drained", True, False),
        ("draining", True, False),
        ("IDLE+DRAIN", True, False),
        ("down*", True, False),
        ("DOWN*+NOT_RESPONDING", True, False),
        ("idle*", False, False),  # registered once, not answering now
        ("unknown", False, False),
    ],
)
def test_node_service_predicates(state, out, serving):
    assert node_out_of_service(state) is out
    assert node_in_service(state) is serving


@pytest.mark.parametrize(
    ("state", "active"),
    [("EXPEDITING", True), ("REQUEUED", True), ("NODE_FAIL", False)],  # EXPEDITING: 25.11 (ParallelCluster 3.16)
)
def test_newer_job_states_are_known(state, active):
    assert job_active(state) is active and job_finished(state) is not active


@pytest.mark.parametrize(
    ("state", "out", "serving"),
    [("failing", True, False), ("MIXED+FAIL", True, False), ("BLOCKED", False, False), ("IDLE+FAIL", True, False)],
)
def test_newer_node_states_are_placed(state, out, serving):
    assert node_out_of_service(state) is out
    assert node_in_service(state) is serving


# -- Slurm 24.11 (the node image: every node a host of its own) ---------------------------------
V24 = SLURM_DATA / "24.11"


def test_24_11_sacct_requeued_job_and_a_cancelled_one():
    jobs = parse_sacct_jobs((V24 / "sacct-requeued.txt").read_text())
    # Requeued once, then completed: one job, one restart, the last run's state and time.
    (align,) = [j for j in jobs if j.name == "align"]
    assert align.state == "COMPLETED" and align.finished and align.restarts == 1
    assert align.node_list == "spot-st-mixed16m-1" and align.elapsed_seconds == 4
    (kept,) = [j for j in jobs if j.name == "keep me|really"]
    assert kept.state == "REQUEUED" and not kept.finished  # cancelled while requeued: its last row
    (cancelled,) = [j for j in jobs if j.name == "wrap"]
    assert cancelled.state == "CANCELLED" and cancelled.finished


def test_24_11_a_job_name_with_a_pipe_is_read_whole():
    (job,) = parse_sacct_jobs((V24 / "sacct-pipe-in-name.txt").read_text())
    assert job.name == "a|b" and job.state == "COMPLETED" and job.partition == "spot"


def test_24_11_a_node_is_a_host_of_its_own():
    node = parse_scontrol_record((V24 / "scontrol-node-idle.txt").read_text())
    # Its own hostname and address on the twin's bridge, Slurm's own port (no Port= per node).
    assert node["NodeHostName"] == node["NodeName"] == "spot-st-mixed16-1"
    assert node["NodeAddr"].startswith("10.") and "Port" not in node
    assert node["Version"] == "24.11.5" and node["State"] == "IDLE"
    drained = parse_scontrol_record((V24 / "scontrol-node-drained.txt").read_text())
    assert drained["State"] == "IDLE+DRAIN" and node_out_of_service(drained["State"])
    assert drained["Reason"].startswith("spot-interruption 2026-12-07T10:40:00Z [root@")


def test_24_11_scontrol_job_and_config():
    (job,) = parse_scontrol_records((V24 / "scontrol-job-running.txt").read_text())
    assert job["JobName"] == "keep me|really" and job["JobState"] == "RUNNING" and job["Requeue"] == "1"
    assert job["ReqNodeList"] == "spot-st-mixed16-1" and job["AllocNode:Sid"].startswith("head:")
    config = parse_scontrol_config((V24 / "scontrol-show-config.txt").read_text())
    assert config["SLURM_VERSION"] == "24.11.5"
    assert config["AccountingStorageType"] == "accounting_storage/slurmdbd"


def test_24_11_sinfo_lists_powered_down_dynamic_nodes():
    nodes = parse_sinfo_nodes((V24 / "sinfo-queue-nodes.txt").read_text())
    dynamic = [n for n in nodes if "dynamic" in n.features]
    assert dynamic and all(n.state == "idle~" for n in dynamic)
    assert {n.partition for n in nodes} == {"compute", "fpga", "spot", "storage"}
    assert all(n.cpus == 4 for n in nodes)
    rows = parse_delimited((V24 / "sinfo-nodes.txt").read_text(), ["node", "state"])
    assert {r["node"]: r["state"] for r in rows}["spot-st-mixed16m-1"] == "drained"


# -- the accounting tree (sacctmgr show assoc, sshare), Slurm 24.11 ---------------------------
ASSOCIATIONS = SLURM_DATA / "24.11" / "associations"


def test_associations_are_read_as_accounts_under_root_and_users_in_accounts():
    rows = parse_associations((ASSOCIATIONS / "sacctmgr-show-assoc.txt").read_text())
    accounts = {r.account: r.parent for r in rows if not r.user}
    assert accounts["genomics"] == "root" and accounts["imaging"] == "root" and accounts["root"] == ""
    bob = next(r for r in rows if r.user == "bob")
    assert (bob.account, bob.shares) == ("imaging", 2)
    tree = users_by_account(rows)
    assert tree["genomics"] == ["alice"] and tree["imaging"] == ["bob"] and "root" in tree["root"]


def test_sshare_gives_each_users_shares_without_the_accounts_rows():
    shares = {s.user: s for s in parse_sshare((ASSOCIATIONS / "sshare.txt").read_text())}
    assert shares["bob"].account == "imaging" and shares["bob"].raw_shares == 2  # indentation stripped
    assert shares["alice"].account == "genomics" and shares["alice"].raw_usage >= 0
    assert all(0.0 <= s.fair_share <= 1.0 for s in shares.values())
    assert "" not in shares


def test_an_association_line_of_another_shape_is_a_slurm_error():
    with pytest.raises(SlurmError):
        parse_associations("genomics|alice|1\n")
    with pytest.raises(SlurmError) as error:
        parse_sshare(" genomics|alice|lots|0.5|0|0|1.0\n")
    assert "RawShares" in error.value.message
