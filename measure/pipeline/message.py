"""The Pub/Sub message schema: what travels on measure-events, measure-retry and
measure-dead-letter. Versioned JSON, so other producers can publish to the events topic directly.

    data (UTF-8 JSON):
      {"v": 1, "event": {<Event.to_dict()>}}                         measure-events
      {"v": 1, "event": {...}, "retry": {attempt, first_failure,
                                          next_due, last_error}}     measure-retry
      {"v": 1, "event": {...} | null, "dead": {kind, reason, at,
                                  attempts}, "raw": <base64>|absent} measure-dead-letter
    attributes: event_id, event_name, attempt (and next_due on retries, kind on dead letters)

The attributes are copies for filtering and for people reading a subscription; the data is
what counts. docs/messages.md has the full schema.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from measure.events import Event, InvalidEvents
from measure.gcp.publisher import Message
from measure.pipeline.retry import RetryState

VERSION = 1
MAX_RAW_BYTES = 64 * 1024  # how much of an undecodable message is kept in its dead letter


class UndecodableMessageError(ValueError):
    """A message that is not a measure event; it is dead-lettered, never crash-looped."""


@dataclass(frozen=True)
class Envelope:
    event: Event
    retry: RetryState | None = None


# json.dumps(body, separators=(",", ":"), ensure_ascii=False), the encoder built once rather than
# a call. Compact, and UTF-8 rather than \u escapes: tests/pipeline/test_message.py pins these
# bytes, which other producers and consumers of the topics share. No circular-reference check:
# the bodies are built here and hold none.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def _encode(body: dict[str, Any]) -> bytes:
    return _ENCODER.encode(body).encode()


def _attributes(event: Event, attempt: int) -> dict[str, str]:
    return {"event_id": event.event_id, "event_name": event.event_name, "attempt": str(attempt)}


def event_message(event: Event) -> Message:
    return _encode({"v": VERSION, "event": event.to_dict()}), _attributes(event, 0)


def retry_message(event: Event, state: RetryState) -> Message:
    attributes = _attributes(event, state.attempt)
    attributes["next_due"] = str(int(state.next_due))
    return _encode({"v": VERSION, "event": event.to_dict(), "retry": state.to_dict()}), attributes


def dead_letter_message(
    kind: str,
    reason: str,
    at: float,
    *,
    event: Event | None = None,
    attempts: int = 0,
    raw: bytes | None = None,
    attributes: dict[str, str] | None = None,
) -> Message:
    """kind: rejected (the API said no), expired (retried past the maximum age), undecodable."""
    body: dict[str, object] = {
        "v": VERSION,
        "event": event.to_dict() if event else None,
        "dead": {"kind": kind, "reason": reason[:1000], "at": at, "attempts": attempts},
    }
    if raw is not None:
        body["raw"] = base64.b64encode(raw[:MAX_RAW_BYTES]).decode()
    # The original message's attributes travel along, except the ones Pub/Sub reserves for
    # itself: the service refuses a publish with any attribute key starting with "goog".
    out_attributes = {key: value for key, value in (attributes or {}).items() if not key.startswith("goog")}
    if event:
        out_attributes.update(_attributes(event, attempts))
    out_attributes["kind"] = kind
    return _encode(body), out_attributes


def decode(data: bytes) -> Envelope:
    """The event (and retry state) in a message, or UndecodableMessageError saying why not."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UndecodableMessageError(f"data is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UndecodableMessageError("data is not a JSON object")
    if body.get("v") != VERSION:
        raise UndecodableMessageError(f"unsupported schema version {body.get('v')!r} (expected {VERSION})")
    try:
        event = Event.from_dict(body.get("event"))
    except InvalidEvents as exc:
        raise UndecodableMessageError(f"event is malformed: {exc}") from None
    retry = None
    if body.get("retry") is not None:
        try:
            retry = RetryState.from_dict(body["retry"])
        except ValueError as exc:
            raise UndecodableMessageError(str(exc)) from None
    return Envelope(event, retry)


def decode_dead_letter(data: bytes) -> dict[str, Any]:
    """A dead letter as a dict (event may be None for undecodable ones); for the operator tools."""
    body = json.loads(data)
    if not isinstance(body, dict) or "dead" not in body:
        raise UndecodableMessageError("not a measure dead letter")
    return body
