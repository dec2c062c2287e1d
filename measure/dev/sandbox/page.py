"""The sandbox's HTML page: what it saw, for people, at /_sandbox."""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from measure.dev.sandbox.base import OUTCOME_ACCEPTED, OUTCOME_REJECTED, SandboxError

if TYPE_CHECKING:  # the page shows a Sandbox, whose server serves the page: a type only
    from measure.dev.sandbox.api import Sandbox

PAGE_ROWS = 200


def mask_ip(value: str | None) -> str:
    """An IP reduced to its network (IPv4 /24, IPv6 /48): enough to debug, not to identify."""
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return "(invalid)"
    if address.version == 4:
        return ".".join(str(address).split(".")[:3]) + ".x"
    return str(ipaddress.ip_network(f"{address}/48", strict=False))


_PAGE_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top}th{background:#f4f4f4}code{font-size:12px}.accepted{color:#17692a}.duplicate{color:#7a5d00}
.rejected{color:#a31515}.fault{color:#6b3fa0}.warn{color:#a35a00;font-size:12px}.muted{color:#777}
"""


def render_page(sandbox: Sandbox, rows: int = PAGE_ROWS) -> str:
    """A small page for people: stats, faults, definitions and the latest requests, newest first."""
    e = html.escape
    stats = sandbox.stats()
    faulted = ", ".join(f"{kind}: {count}" for kind, count in sorted(stats["faulted"].items())) or "none"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>",
        f"<title>measure sandbox</title><style>{_PAGE_STYLE}</style></head><body>",
        "<h1>measure sandbox</h1>",
        f"<p>received {stats['received']} · accepted {stats['accepted']} · duplicates {stats['duplicates']}"
        f" · rejected {stats['rejected']} · faulted {e(faulted)} · distinct accepted {stats['distinct_accepted']}</p>",
        f"<p>Faults: {e(sandbox.faults.describe())}. "
        "JSON: <a href='/_sandbox/requests?limit=100'>requests</a> · <a href='/_sandbox/stats'>stats</a>"
        " · <a href='/_sandbox/faults'>faults</a> · <a href='/_sandbox/definitions'>definitions</a></p>",
    ]
    definitions = sandbox.definitions()
    if definitions is not None:
        listed = ", ".join(f"{event.id} {event.name} ({event.type})" for event in definitions) or "none yet"
        parts.append(f"<p>Event definitions: {e(listed)}</p>")
    parts.append(
        "<table><tr><th>time (UTC)</th><th>action</th><th>event</th><th>transaction_id</th><th>outcome</th>"
        "<th>log_id</th><th>device_ip</th><th>signature</th><th>resolution</th></tr>"
    )
    for entry in reversed(sandbox.requests(limit=rows)):
        outcome = entry["outcome"]
        label = f"{outcome} {entry['status'] or ''}".strip()
        if entry["fault"]:
            label += f" ({entry['fault']})"
        reasons = "".join(f"<div class='warn'>{e(reason)}</div>" for reason in entry["reasons"]
                          if outcome in (OUTCOME_REJECTED, OUTCOME_ACCEPTED))
        parts.append(
            "<tr>"
            f"<td>{e(entry['time'][11:23])}</td><td>{e(entry['action'] or '')}</td><td>{e(entry['event'] or '')}</td>"
            f"<td>{_timeline_link(entry['transaction_id'])}</td>"
            f"<td class='{outcome}'>{e(label)}{reasons}</td><td><code>{e(entry['log_id'] or '')}</code></td>"
            f"<td>{e(mask_ip(entry['device_ip']))}</td><td>{e(entry['signature'])}</td>"
            f"<td>{_render_resolution(entry['resolution'])}</td></tr>"
        )
    parts.append("</table>")
    if not stats["received"]:
        parts.append(f"<p class='muted'>No requests yet. POST signed requests to {e(_safe_url(sandbox))}.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _timeline_link(transaction_id: str | None) -> str:
    """The id, linked to every request the sandbox saw for it, and the command that shows the
    event's whole timeline in the pipeline (python -m measure status, measure/ops/status.py)."""
    if not transaction_id:
        return ""
    e = html.escape
    query = urlencode({"transaction_id": transaction_id})
    return (f"<a href='/_sandbox/requests?{e(query)}'><code>{e(transaction_id)}</code></a>"
            f"<div class='muted'><code>python -m measure status {e(transaction_id)}</code></div>")


def _render_resolution(resolution: Mapping[str, Any] | None) -> str:
    if not resolution:
        return ""
    event = resolution["event"]
    text = f"{event['name']} (id {event['id']}, {event['type']}) by {resolution['matched_by']}"
    if resolution["created"]:
        text += ", created"
    warnings = "".join(f"<div class='warn'>⚠ {html.escape(warning)}</div>" for warning in resolution["warnings"])
    return html.escape(text) + warnings


def _safe_url(sandbox: Sandbox) -> str:
    try:
        return sandbox.serve_url
    except SandboxError:
        return "/serve"
