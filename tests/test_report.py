"""The report page: a golden file of the pure renderer, and the page opened in Debian's headless
Chromium (selenium), checking what it shows; the screenshot is kept in the test's tmp dir."""

from __future__ import annotations

import copy
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from hpctool import report
from hpctool.cluster.queues import load_queues
from hpctool.cost import jobcost, prices
from support.browser import headless_chromium
from support.golden import assert_golden
from support.prices import BOOK_DATA, SLURM_NODES

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden" / "report" / "handmade.html"

pytestmark = pytest.mark.usefixtures("shipped_prices")  # the figures of the shipped snapshot (conftest)



def png_pixels(data: bytes) -> list[tuple[int, int, int]]:
    """RGB pixels of an 8-bit RGB/RGBA PNG (Chromium's screenshots). Written here because the only
    thing needed is a colour count and Pillow is not a dependency."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        header = body if kind == b"IHDR" else header
        chunks += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(chunks), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return [tuple(row[x * bpp:x * bpp + 3]) for row in rows for x in range(width)]


def dominant_colour(png: bytes) -> str:
    (rgb, _), = Counter(png_pixels(png)).most_common(1)
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def handmade_data(repo: Path) -> report.ReportData:
    """The hand-made accounting of test_cost (a requeued spot job among them) as a run of three rules."""
    book = prices.PriceBook(copy.deepcopy(BOOK_DATA), "test book")
    catalog = jobcost.NodeCatalog(load_queues(repo / "cluster-configs" / "default.yaml"), book, "us-east-1",
                                     SLURM_NODES)
    runs = [r for r in jobcost.parse_cost_records((DATA / "cost" / "sacct-cost-handmade.txt").read_text())
            if r.job_id in {"10", "11", "12", "13"}]
    items = jobcost.costs(runs, catalog)
    labels = {"10": ["align"], "11": ["index"], "12": ["call"], "13": ["sort"]}
    by_queue = jobcost.summarise(items, "queue")
    by_rule = jobcost.summarise(items, "rule", labels)
    by_user = jobcost.summarise(items, "user")
    return report.ReportData(
        title="run demo", generated="2026-11-22 00:00 UTC", price_date="2026-11-01",
        bars=report.bars_from_costs(items, labels),
        cost_by_queue=[(g.key, g.cost) for g in by_queue.groups],
        cost_by_rule=[(g.key, g.cost) for g in by_rule.groups],
        lost_cost=by_queue.lost_cost, total=by_queue.total,
        qc_header=["sample", "reads", "mapped_pct"], qc_rows=[["S1", "2000", "99.10"], ["S2", "1800", "98.70"]],
        cost_by_user=[(g.key, g.cost) for g in by_user.groups])


def test_render_matches_golden(repo):
    assert_golden(report.render(handmade_data(repo)), GOLDEN)


def test_bars_and_figures(repo):
    data = handmade_data(repo)
    # 10, 11, 13 (two runs) on one node each, 12 on two nodes: 6 bars, one of them lost
    assert len(data.bars) == 6 and [b.job_id for b in data.bars if b.lost] == ["13"]
    assert {b.node for b in data.bars if b.job_id == "12"} == {"compute-st-c7i4xl-1", "compute-st-c7i4xl-2"}
    assert sum(b.cost for b in data.bars) == pytest.approx(data.total)
    assert dict(data.cost_by_queue) == {"compute": pytest.approx(2.4), "spot": pytest.approx(0.1)}
    assert data.lost_cost == pytest.approx(20 / 60 * 0.5 * 0.2)
    # Each user's jobs and the interrupted runs add up to the total, as the queues do.
    assert len(data.cost_by_user) == 2 and sum(c for _, c in data.cost_by_user) + data.lost_cost == pytest.approx(data.total)
    page = report.render(data)
    assert page.count('<table class="by-user">') == 1 and all(f"<td>{u}</td>" in page for u, _ in data.cost_by_user)
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert report.render(report.ReportData("empty", "now", "d", [], [], [], 0, 0)).count("no job ran") == 1


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(["--window-size=1040,1000"]) as driver:
        yield driver


def test_the_page_in_headless_chromium(repo, tmp_path, browser):
    page = report.write(handmade_data(repo), tmp_path / "report.html")
    browser.get(page.as_uri())
    assert browser.title == "hpctool report: run demo"
    jobs = browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect.job")
    assert len(jobs) == 6
    lost = browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect.lost")
    assert [r.get_attribute("data-job") for r in lost] == ["13"]
    marks = browser.find_elements(By.CSS_SELECTOR, "svg.timeline g.interruption")
    assert len(marks) == 1 and "spot reclaim of job 13" in marks[0].get_attribute("textContent")
    # bars are drawn where they should be: visible, and compute's bars share one colour, spot another
    assert all(r.is_displayed() and r.size["width"] >= 2 for r in jobs)
    fills = {r.get_attribute("data-queue"): r.get_attribute("fill") for r in jobs if r not in lost}
    assert len(set(fills.values())) == 2
    # what is painted: each bar's own screenshot is mostly its colour (the interrupted run light red)
    assert dominant_colour(lost[0].screenshot_as_png) == report.LOST_FILL.upper()
    compute = next(r for r in jobs if r.get_attribute("data-queue") == "compute")
    assert dominant_colour(compute.screenshot_as_png) == fills["compute"].upper()
    node_labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.timeline text.node")]
    assert node_labels == ["compute-st-c7i4xl-1", "compute-st-c7i4xl-2", "spot-st-mixed16-1"]
    queue_rows = [[c.text for c in row.find_elements(By.TAG_NAME, "td")]
                  for row in browser.find_elements(By.CSS_SELECTOR, "table.by-queue tbody tr")]
    assert queue_rows[0] == ["compute", "$2.4000"] and queue_rows[-1] == ["total", "$2.5333"]
    rules = [row.find_element(By.TAG_NAME, "td").text
             for row in browser.find_elements(By.CSS_SELECTOR, "table.by-rule tbody tr")]
    assert rules == ["call", "align", "index", "sort"]  # dearest first
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.qc tbody tr")) == 2
    assert browser.find_element(By.ID, "total").text == "total $2.5333"
    # nothing was fetched from anywhere: the page is one file
    entries = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert entries == 0
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_of_a_page_with_chromium(repo, tmp_path):
    page = report.write(handmade_data(repo), tmp_path / "report.html")
    png = report.screenshot(page, tmp_path / "shots" / "report.png", width=800, height=600)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 800 and int.from_bytes(data[20:24], "big") == 600


def test_report_needs_a_run_folder_or_a_window(tmp_path, capsys):
    from hpctool.cli import main as cli

    assert cli(["report"]) == 2
    assert "give a run folder, or --since" in capsys.readouterr().err
    assert cli(["report", str(tmp_path)]) == 2  # no .snakemake/log: not a run folder
    assert "not a Snakemake run folder" in capsys.readouterr().err
