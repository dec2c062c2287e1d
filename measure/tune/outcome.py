"""What one delivery attempt came to, by docs/design.md's rules ("Outcomes").

    success: true                               -> delivered
    a message "Duplicate request detected"      -> duplicate (delivered before: done)
    HTTP 400 with an X-MAT-Responder header,
      or success: false with any other message  -> rejected  (permanent: dead letter)
    timeouts, connection errors, 5xx, 429, 408,
      and every other answer                    -> transient (retry later)

Pure: `classify` takes the status, headers and body, so every rule is testable without a network.
An answer's Retry-After (seconds, or an HTTP date) is kept as `Outcome.retry_after`, so whoever
schedules the next attempt can honour the API's own "not before". What TUNE said it recorded is
kept too: its `log_id` and the `site_event_type` its engine resolved the call to (seed 004's
answers carry both; the type may differ from the action sent, the events guide's "Potential
Conflicts").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from measure import retryafter

DUPLICATE_MESSAGE = "Duplicate request detected"
RESPONDER_HEADER = "X-MAT-Responder"
RETRY_AFTER_HEADER = "Retry-After"
# Statuses that mean "not now" even when the body looks like the API's own answer.
_TRANSIENT_STATUSES = frozenset({408, 429})


class Kind(StrEnum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    TRANSIENT = "transient"

    @property
    def done(self) -> bool:
        """Delivered or duplicate: nothing more to do for this event."""
        return self in (Kind.DELIVERED, Kind.DUPLICATE)


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    reason: str
    status: int | None = None
    log_id: str | None = None
    latency: float = 0.0  # seconds spent on the attempt
    # True for failures that say the API (or the road to it) is down, not that this event is bad.
    outage: bool = False
    # Seconds the answer's Retry-After asked us to wait, None when it carried none (or an unreadable one).
    retry_after: float | None = None
    # The event type TUNE's engine resolved the call to, None when the answer carried none.
    site_event_type: str | None = None

    def to_log(self) -> dict[str, object]:
        line: dict[str, object] = {
            "outcome": self.kind.value,
            "http_status": self.status,
            "log_id": self.log_id,
            "site_event_type": self.site_event_type,
            "reason": self.reason,
            "latency_ms": round(self.latency * 1000, 1),
        }
        if self.retry_after is not None:
            line["retry_after_s"] = self.retry_after
        return line


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever its case (a plain dict is as welcome as requests' headers)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _messages(body: object) -> list[str]:
    if not isinstance(body, dict):
        return []
    message = body.get("message")
    if isinstance(message, list):
        return [str(m) for m in message]
    return [str(message)] if message else []


def classify(status: int, headers: Mapping[str, str], body: bytes, latency: float = 0.0,
             now: float | None = None) -> Outcome:
    """Apply the outcome rules to one HTTP answer from the Measurement API (`now` reads an HTTP-date
    Retry-After; the clock by default)."""
    try:
        parsed: Any = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    api_answer = isinstance(parsed, dict) and "success" in parsed
    log_id = parsed.get("log_id") if api_answer else None
    log_id = str(log_id) if log_id else None
    site_event_type = parsed.get("site_event_type") if api_answer else None
    site_event_type = str(site_event_type)[:64] if site_event_type else None  # it goes to a log line
    messages = _messages(parsed) if api_answer else []
    reason = "; ".join(messages)
    wait = retryafter.seconds(_header(headers, RETRY_AFTER_HEADER), now)

    def outcome(kind: Kind, why: str, outage: bool = False) -> Outcome:
        return Outcome(kind, why, status, log_id, latency, outage, wait, site_event_type)

    if status >= 500:
        return outcome(Kind.TRANSIENT, f"HTTP {status}", outage=True)
    if status in _TRANSIENT_STATUSES:
        return outcome(Kind.TRANSIENT, f"HTTP {status}", outage=status == 429)
    if any(DUPLICATE_MESSAGE in m for m in messages):
        return outcome(Kind.DUPLICATE, reason)
    if api_answer and parsed.get("success") is True and 200 <= status < 300:
        return outcome(Kind.DELIVERED, "success")
    if status == 400 and _header(headers, RESPONDER_HEADER) is not None:
        return outcome(Kind.REJECTED, reason or "HTTP 400 from the Measurement API")
    if api_answer and parsed.get("success") is False:
        return outcome(Kind.REJECTED, reason or f"success: false (HTTP {status})")
    return outcome(Kind.TRANSIENT, f"HTTP {status}" + ("" if api_answer else ", not a Measurement API answer"))


def unreachable(reason: str, latency: float = 0.0) -> Outcome:
    """A timeout or connection error: no answer at all, so try again later."""
    return Outcome(Kind.TRANSIENT, reason, None, None, latency, outage=True)
