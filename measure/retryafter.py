"""Retry-After (RFC 9110 10.2.3): how long an HTTP answer asks the caller to wait.

Both API layers read it (measure.tune for the Measurement API, measure.gcp for Google's), so it
lives here, beside config and logs, rather than twice.
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from `now`: delay-seconds or an HTTP date; a date already past is 0,
    anything unreadable (or absent) None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is always UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
