"""Instance health on the twin's EC2: DescribeInstanceStatus as EC2 answers it, with faults.

moto reports every running instance ``ok`` with no scheduled events and ignores the status
filters, so clustermgtd's health checks (it asks only for impaired instances and those with
scheduled events) can neither be exercised nor fail. The fault front (:mod:`hpctool.twin.ec2`)
hands DescribeInstanceStatus here: moto's answer for the instances (their states), the health
marked in a health file (``{"<instance id>": {"instance": "impaired", "system": "ok", "since":
..., "event": "instance-stop"}}``, written atomically, read on every call), and EC2's filters
applied (values of one filter OR, filters AND), rendered back in EC2's form.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeXml  # moto's answers, parsed without entity expansion

from hpctool.atomic import write_atomic
from hpctool.errors import SetupError

# The scheduled events clustermgtd replaces an instance for (EC2_SCHEDULED_EVENT_CODES, 3.16.1).
EVENT_CODES = ("instance-reboot", "system-reboot", "system-maintenance", "instance-retirement", "instance-stop")
STATUSES = ("ok", "impaired", "insufficient-data", "not-applicable", "initializing")
_EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def mark_unhealthy(path: Path, instance_id: str, *, instance: str = "impaired", system: str = "ok",
                   event: str | None = None, since: float | None = None) -> None:
    """Report ``instance_id`` with these statuses (impaired since ``since``, default now) and,
    with ``event``, a scheduled event of that code."""
    if instance not in STATUSES or system not in STATUSES:
        raise SetupError(f"instance status {instance!r} / system status {system!r} is not EC2's",
                         f"use one of {', '.join(STATUSES)}")
    if event is not None and event not in EVENT_CODES:
        raise SetupError(f"{event} is not a scheduled event clustermgtd acts on", f"use one of {', '.join(EVENT_CODES)}")
    health = _raw(path)
    health[instance_id] = {"instance": instance, "system": system, "event": event,
                           "since": time.time() if since is None else since}
    write_atomic(path, json.dumps(health, indent=2, sort_keys=True) + "\n")


def clear_health(path: Path, instance_id: str | None = None) -> None:
    """``instance_id`` (every instance when None) healthy again."""
    health = {} if instance_id is None else {k: v for k, v in _raw(path).items() if k != instance_id}
    write_atomic(path, json.dumps(health, indent=2, sort_keys=True) + "\n")


def read_health(path: Path) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _raw(path).items() if isinstance(v, dict)}


def _raw(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def request_filters(form: dict[str, str]) -> dict[str, set[str]]:
    """``Filter.N.Name`` / ``Filter.N.Value.M`` of a query-protocol request: name -> values."""
    filters: dict[str, set[str]] = {}
    for key, name in form.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "Filter" and parts[2] == "Name":
            prefix = f"Filter.{parts[1]}.Value."
            filters.setdefault(name, set()).update(v for k, v in form.items() if k.startswith(prefix))
    return filters


def without_filters(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request for moto: no filters (it ignores the status ones and we apply them all)."""
    return [(k, v) for k, v in pairs if not k.startswith("Filter.")]


def _tag(element: Any) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


def _child(element: Any, name: str) -> Any:
    return next((c for c in element if _tag(c) == name), None)


def _text(element: Any, *path: str) -> str:
    for name in path:
        element = _child(element, name) if element is not None else None
    return (element.text or "") if element is not None else ""


def parse_statuses(answer: bytes) -> list[dict[str, str]]:
    """moto's DescribeInstanceStatus answer: per instance its id, zone and state."""
    found: list[dict[str, str]] = []
    status_set = _child(SafeXml.fromstring(answer), "instanceStatusSet")
    for item in (status_set if status_set is not None else []):
        found.append({"id": _text(item, "instanceId"), "zone": _text(item, "availabilityZone"),
                      "state_code": _text(item, "instanceState", "code"),
                      "state": _text(item, "instanceState", "name")})
    return found


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _summary(status: str, since: float | None) -> dict[str, Any]:
    detail = {"status": {"ok": "passed", "impaired": "failed"}.get(status, status)}
    if status == "impaired" and since is not None:
        detail["impairedSince"] = _iso(since)
    return {"status": status, "detail": detail}


def statuses(instances: list[dict[str, str]], health: dict[str, dict[str, Any]],
             filters: dict[str, set[str]]) -> list[dict[str, Any]]:
    """Each instance with its health (running ones; others ``not-applicable``), then the filters."""
    found = []
    for instance in instances:
        marked = health.get(instance["id"], {})
        running = instance["state"] == "running"
        since = marked.get("since")
        entry = {
            **instance,
            "instance": _summary(marked.get("instance", "ok") if running else "not-applicable", since),
            "system": _summary(marked.get("system", "ok") if running else "not-applicable", since),
            "event": marked.get("event") if running else None,
            "since": since,
        }
        values = {"instance-status.status": entry["instance"]["status"],
                  "system-status.status": entry["system"]["status"],
                  "event.code": entry["event"], "instance-state-name": instance["state"],
                  "instance-state-code": instance["state_code"], "availability-zone": instance["zone"]}
        if all(values.get(name) in wanted for name, wanted in filters.items() if name in values):
            found.append(entry)
    return found


def render_statuses(entries: list[dict[str, Any]]) -> bytes:
    """EC2's DescribeInstanceStatusResponse for ``entries``."""
    items = []
    for entry in entries:
        parts = [f"<instanceId>{escape(entry['id'])}</instanceId>",
                 f"<availabilityZone>{escape(entry['zone'])}</availabilityZone>",
                 (f"<instanceState><code>{escape(entry['state_code'])}</code>"
                  f"<name>{escape(entry['state'])}</name></instanceState>")]
        for kind, tag in (("instance", "instanceStatus"), ("system", "systemStatus")):
            summary = entry[kind]
            detail = summary["detail"]
            since = f"<impairedSince>{detail['impairedSince']}</impairedSince>" if "impairedSince" in detail else ""
            parts.append(f"<{tag}><status>{escape(summary['status'])}</status><details><item><name>reachability"
                         f"</name><status>{escape(detail['status'])}</status>{since}</item></details></{tag}>")
        if entry["event"]:
            when = _iso(entry["since"] or time.time())
            parts.append(f"<eventsSet><item><code>{escape(entry['event'])}</code><description>Scheduled "
                         f"{escape(entry['event'])} (a fault injected by the twin)</description>"
                         f"<notBefore>{when}</notBefore></item></eventsSet>")
        items.append("<item>" + "".join(parts) + "</item>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<DescribeInstanceStatusResponse xmlns="{_EC2_NS}"><requestId>twin-ec2-health</requestId>'
            f"<instanceStatusSet>{''.join(items)}</instanceStatusSet></DescribeInstanceStatusResponse>").encode()


def answer(moto_answer: bytes, form: dict[str, str], health_path: Path) -> bytes:
    """The DescribeInstanceStatus answer EC2 would give, from moto's unfiltered one."""
    return render_statuses(statuses(parse_statuses(moto_answer), read_health(health_path), request_filters(form)))
