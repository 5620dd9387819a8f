"""`hpctool report RUN_DIR`: one self-contained HTML page of a workflow run (or of all jobs since a
time): a job timeline per node, cost per queue and per rule, and the run's QC table.

The page is rendered by the pure :func:`render` from a :class:`ReportData` (golden-file tested);
:func:`build` gathers the data from accounting and the run folder; :func:`screenshot` makes a PNG of
a page with Debian's headless Chromium. The page has no script and loads nothing: the pictures are
inline SVG, so it can be mailed or archived next to the results.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpctool.cost import jobcost, prices
from hpctool.cost import jobs as cost_jobs
from hpctool.errors import SetupError, UsageError
from hpctool.slurm.client import Slurm

# Colour-blind-safe palette (Okabe-Ito), one colour per queue in name order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
LOST_FILL, LOST_STROKE = "#f4b6b6", "#d62728"  # interrupted runs: light red, dashed red outline
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@dataclass(frozen=True)
class Bar:
    """One run of one job on one node."""

    node: str
    queue: str
    job_id: str
    label: str  # the rule(s), else the job name
    start: float  # seconds since the epoch
    end: float
    lost: bool  # an interrupted run (requeued afterwards)
    spot: bool
    cost: float


@dataclass
class ReportData:
    title: str
    generated: str
    price_date: str
    bars: list[Bar]
    cost_by_queue: list[tuple[str, float]]
    cost_by_rule: list[tuple[str, float]]
    lost_cost: float
    total: float
    qc_header: list[str] = field(default_factory=list)
    qc_rows: list[list[str]] = field(default_factory=list)
    cost_by_user: list[tuple[str, float]] = field(default_factory=list)  # every user's jobs (a cluster's many)


def _epoch(text: str) -> float | None:
    when = prices.parse_time(text)
    return when.timestamp() if when else None


def bars_from_costs(items: Sequence[jobcost.RunCost], labels: dict[str, list[str]]) -> list[Bar]:
    bars = []
    for item in items:
        start = _epoch(item.start)
        if start is None:
            continue
        end = start + item.elapsed_s  # a running job's End is Unknown: its elapsed time so far
        label = "+".join(labels.get(item.job_id, [])) or item.name
        for node in jobcost.expand_nodes(item.node_list):
            bars.append(Bar(node, item.queue, item.job_id, label, start, end, item.lost, item.spot,
                            item.cost / max(item.nodes, 1)))
    return bars


def read_qc(run_dir: Path) -> tuple[list[str], list[list[str]]]:
    """The germline workflow's qc/summary.tsv (header and rows), or nothing when the run has none."""
    path = run_dir / "qc" / "summary.tsv"
    if not path.is_file():
        return [], []
    lines = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return (lines[0], lines[1:]) if lines else ([], [])


def build(run_dir: Path | None = None, *, since: str | None = None, until: str | None = None,
          slurm: Slurm | None = None, config: str | Path | None = None,
          book: prices.PriceBook | None = None, now: datetime | None = None) -> ReportData:
    """The report of a run folder's jobs, or of every job in a window (``since``)."""
    if run_dir is None and since is None:
        raise UsageError("nothing to report", "give a run folder, or --since for every job in a window")
    book = book or prices.load()
    labels = cost_jobs.run_keys([run_dir], "rule") if run_dir is not None else {}
    if run_dir is not None and not labels:
        raise UsageError(f"{run_dir}: the run lists no Slurm jobs", "was it run with a Slurm profile?")
    items = cost_jobs.job_costs(slurm, config=config, since=since, until=until,
                                job_ids=sorted(labels, key=cost_jobs.job_order) if labels else None, book=book)
    by_queue = jobcost.summarise(items, "queue")
    by_rule = jobcost.summarise(items, "rule", labels) if labels else None
    by_user = jobcost.summarise(items, "user")
    qc_header, qc_rows = read_qc(run_dir) if run_dir is not None else ([], [])
    title = f"run {run_dir.name}" if run_dir is not None else f"jobs since {since}"
    return ReportData(
        title=title,
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        price_date=", ".join(by_queue.price_dates) or book.date,
        bars=bars_from_costs(items, labels),
        cost_by_queue=[(g.key, g.cost) for g in by_queue.groups],
        cost_by_rule=[(g.key, g.cost) for g in by_rule.groups] if by_rule else [],
        lost_cost=by_queue.lost_cost, total=by_queue.total, qc_header=qc_header, qc_rows=qc_rows,
        cost_by_user=[(g.key, g.cost) for g in by_user.groups])


# -- rendering (pure) -----------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _usd(value: float) -> str:
    return f"${value:,.4f}" if value < 10 else f"${value:,.2f}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def queue_colours(bars: Sequence[Bar], queues: Sequence[str] = ()) -> dict[str, str]:
    names = sorted({b.queue for b in bars} | set(queues))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def timeline_svg(bars: Sequence[Bar], colours: dict[str, str], width: int = 960) -> str:
    """A row per node, a bar per job run; interrupted runs light red, dashed, with a red cross where they stopped."""
    if not bars:
        return '<p class="empty">no job ran in this window</p>'
    nodes = sorted({b.node for b in bars})
    left, row_h, top, axis_h = 190, 26, 8, 30
    t0, t1 = min(b.start for b in bars), max(b.end for b in bars)
    span = max(t1 - t0, 1.0)
    plot_w = width - left - 50  # room for the last tick's label
    height = top + row_h * len(nodes) + axis_h

    def x(t: float) -> float:
        return left + (t - t0) / span * plot_w

    out = [(f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="job timeline">')]
    for index, node in enumerate(nodes):
        y = top + index * row_h
        out.append(f'<text class="node" x="{left - 6}" y="{y + row_h * 0.65:.1f}" text-anchor="end">{_e(node)}</text>')
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y + row_h:.1f}" y2="{y + row_h:.1f}" stroke="#eee"/>')
    for bar in sorted(bars, key=lambda b: (b.node, b.start, b.job_id)):
        y = top + nodes.index(bar.node) * row_h + 4
        x0, w = x(bar.start), max(x(bar.end) - x(bar.start), 2.0)
        fill = LOST_FILL if bar.lost else colours[bar.queue]
        kind = "job lost" if bar.lost else "job"
        tip = (f"job {bar.job_id} {bar.label} on {bar.node} ({bar.queue}{', spot' if bar.spot else ''}): "
               f"{_clock(bar.start)}-{_clock(bar.end)}, {_usd(bar.cost)}"
               + (" - interrupted and requeued" if bar.lost else ""))
        stroke = f'stroke="{LOST_STROKE}" stroke-dasharray="4 2"' if bar.lost else f'stroke="{colours[bar.queue]}"'
        out.append(f'<rect class="{kind}" data-job="{_e(bar.job_id)}" data-queue="{_e(bar.queue)}" x="{x0:.1f}" '
                   f'y="{y}" width="{w:.1f}" height="{row_h - 8}" fill="{fill}" {stroke}>'
                   f'<title>{_e(tip)}</title></rect>')
        if bar.lost:  # where the run was cut short: the interruption (a spot reclaim on spot nodes)
            cx, cy = x0 + w, y + (row_h - 8) / 2
            label = "spot reclaim" if bar.spot else "requeue"
            out.append(f'<g class="interruption" data-job="{_e(bar.job_id)}"><title>{label} of job {_e(bar.job_id)}'
                       f'</title><path d="M{cx - 5:.1f} {cy - 5:.1f} L{cx + 5:.1f} {cy + 5:.1f} M{cx - 5:.1f} '
                       f'{cy + 5:.1f} L{cx + 5:.1f} {cy - 5:.1f}" stroke="{LOST_STROKE}" stroke-width="2.5"/></g>')
    base = top + row_h * len(nodes)
    out.append(f'<line x1="{left}" x2="{width - 10}" y1="{base}" y2="{base}" stroke="#888"/>')
    for step in range(5):
        t = t0 + span * step / 4
        label = datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M") if span > 12 * 3600 else _clock(t)
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{base + 18}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)


def bars_svg(rows: Sequence[tuple[str, float]], colours: dict[str, str] | None = None, width: int = 460,
             css_class: str = "costs") -> str:
    """Horizontal bars of cost per key."""
    if not rows:
        return '<p class="empty">nothing to show</p>'
    row_h, left = 24, 150
    top = max(v for _, v in rows) or 1.0
    height = row_h * len(rows) + 4
    out = [(f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">')]
    for index, (key, value) in enumerate(rows):
        y = index * row_h + 2
        w = (width - left - 90) * value / top
        colour = (colours or {}).get(key, "#4c72b0")
        out.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{_e(key)}</text>')
        out.append(f'<rect class="cost-bar" data-key="{_e(key)}" x="{left}" y="{y + 3}" width="{max(w, 1):.1f}" '
                   f'height="{row_h - 8}" fill="{colour}"/>')
        out.append(f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + 16}">{_e(_usd(value))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], css_class: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.meta{color:#666}
svg text{font:12px system-ui,sans-serif}svg text.tick{fill:#555}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
table{border-collapse:collapse;margin-top:6px}th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}.cols{display:flex;gap:28px;flex-wrap:wrap}.total{font-weight:600}"""


def render(data: ReportData) -> str:
    """The page (pure: the same data gives the same bytes)."""
    colours = queue_colours(data.bars, [k for k, _ in data.cost_by_queue])
    legend = "".join(f'<span><i style="background:{c}"></i>{_e(q)}</span>' for q, c in colours.items())
    legend += (f'<span><i style="background:{LOST_FILL};outline:1px dashed {LOST_STROKE}"></i>'
               "interrupted run (requeued), ✕ where it stopped</span>")
    lost_runs = sum(1 for b in data.bars if b.lost)
    queue_rows = [*data.cost_by_queue]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hpctool report: {_e(data.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>hpctool report: {_e(data.title)}</h1>",
        (f'<p class="meta">generated {_e(data.generated)}; prices as of {_e(data.price_date)}; '
        f'<span class="total" id="total">total {_e(_usd(data.total))}</span>, of which '
        f'<span id="lost">{_e(_usd(data.lost_cost))}</span> lost to interruptions</p>'),
        "<h2>Jobs on nodes</h2>",
        f'<p class="legend">{legend}</p>',
        timeline_svg(data.bars, colours),
        '<div class="cols"><div>',
        "<h2>Cost per queue</h2>",
        bars_svg(queue_rows, colours, css_class="costs by-queue"),
        _table(["queue", "cost"], [[k, _usd(v)] for k, v in queue_rows]
               + [["lost to interruptions", _usd(data.lost_cost)], ["total", _usd(data.total)]], "by-queue"),
        "</div><div>",
        "<h2>Cost per rule</h2>",
        bars_svg(data.cost_by_rule, css_class="costs by-rule"),
        _table(["rule", "cost"], [[k, _usd(v)] for k, v in data.cost_by_rule], "by-rule")
        if data.cost_by_rule else "",
        "</div></div>",
        (f'<p class="meta">{len(data.bars)} job runs on {len({b.node for b in data.bars})} nodes, '
        f"{lost_runs} interrupted</p>"),
    ]
    if data.cost_by_user:
        parts += ["<h2>Cost per user</h2>", bars_svg(data.cost_by_user, css_class="costs by-user"),
                  _table(["user", "cost"], [[k, _usd(v)] for k, v in data.cost_by_user], "by-user")]
    if data.qc_header:
        parts += ["<h2>QC</h2>", _table(data.qc_header, data.qc_rows, "qc")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(data: ReportData, path: Path) -> Path:
    from hpctool.atomic import write_atomic

    write_atomic(path, render(data))
    return path


def screenshot(page: Path, png: Path, width: int = 1040, height: int = 900, timeout: float = 60) -> Path:
    """A PNG of the page from Debian's headless Chromium (for the docs)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SetupError("chromium is not installed", "`make setup` installs Debian's chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp{os.getpid()}.png")
    argv = [chromium, *CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--screenshot={tmp}",
            page.resolve().as_uri()]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"chromium did not finish the screenshot within {timeout:.0f} s", "try again") from exc
    if result.returncode != 0 or not tmp.is_file():
        raise SetupError(f"chromium could not screenshot {page} (exit {result.returncode})",
                         (result.stderr.strip().splitlines() or ["see chromium's output"])[-1])
    os.replace(tmp, png)
    return png


def default_path(run_dir: Path | None, since: str | None) -> Path:
    if run_dir is not None:
        return run_dir / "hpctool-report.html"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return Path(f"hpctool-report-{stamp}.html")
