"""Structured logs in Cloud Logging's JSON format: one line on stdout per record.

Cloud Run (which runs gen2 functions) turns each JSON line into a log entry: `severity` and
`message` become the entry's own, `logging.googleapis.com/trace` correlates it with the request,
and every other key lands in jsonPayload, where the log-based metrics in terraform/modules/measure/monitoring.tf
read `component`, `outcome`, `latency_ms` and `event_age_s`.

Nothing secret may reach a line: fields that carry an IP address are masked here, whatever the
caller passed, and keys and tokens are never given to this module in the first place.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("measure_trace", default=None)
_lock = threading.Lock()
# Field names whose values are addresses: masked before they are written.
_IP_FIELDS = frozenset({"ip", "device_ip", "remote_addr", "client_ip"})


def mask_ip(value: object) -> str:
    """Keep the network, drop the host: 175.124.248.15 -> 175.124.248.0/24, IPv6 to its /48."""
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return "<not an ip>"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# Candidates for an address inside free text (an API's message, an exception): checked by
# ipaddress before masking, so times like 18:42:45 are left alone.
_ADDRESS_LIKE = re.compile(
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"  # IPv4, also when a :port follows
    r"|(?<![\w.:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w.:])"  # IPv6
)


def _mask_match(match: re.Match[str]) -> str:
    text: str = match.group(0)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return text
    return mask_ip(text)


def scrub(text: str) -> str:
    """Mask every IP address in a free-text value."""
    # An IPv4 candidate has three dots and an IPv6 one two colons: most values (ids, names,
    # "accepted") have neither, and str.count is far cheaper than the regex's scan.
    if text.count(".") < 3 and text.count(":") < 2:
        return text
    return _ADDRESS_LIKE.sub(_mask_match, text)


def _set_trace(header: str | None) -> contextvars.Token[str | None]:
    """Remember the request's trace from X-Cloud-Trace-Context ("TRACE_ID/SPAN_ID;o=1")."""
    trace = None
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if header and project:
        trace_id = header.split("/", 1)[0].strip()
        if trace_id.isalnum() and len(trace_id) <= 64:
            trace = f"projects/{project}/traces/{trace_id}"
    return _trace.set(trace)


def traced(handler: Callable[[Any], R]) -> Callable[[Any], R]:
    """Wrap an HTTP entry point (a flask.Request in, its response out) so its log lines carry the
    request's trace."""

    @functools.wraps(handler)
    def wrapper(request: Any) -> R:
        token = _set_trace(request.headers.get("X-Cloud-Trace-Context"))
        try:
            return handler(request)
        finally:
            _trace.reset(token)

    return wrapper


# json.dumps(record, default=str, separators=(",", ":")), the encoder built once rather than on
# every call (json.dumps builds one whenever it is given options): a log line a request.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def log(severity: str, message: str, **fields: object) -> None:
    record: dict[str, object] = {"severity": severity, "message": scrub(message), "time": round(time.time(), 3)}
    trace = _trace.get()
    if trace:
        record["logging.googleapis.com/trace"] = trace
    for key, value in fields.items():
        if value is None:
            continue
        if key in _IP_FIELDS:
            value = mask_ip(value)
        elif isinstance(value, str):
            value = scrub(value)  # a reason or error may quote the address it refuses
        record[key] = value
    line = _ENCODER.encode(record) + "\n"
    with _lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def info(message: str, **fields: object) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: object) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: object) -> None:
    log("ERROR", message, **fields)


def critical(message: str, **fields: object) -> None:
    log("CRITICAL", message, **fields)
