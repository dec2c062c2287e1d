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

from measure.events import MAX_FIELD_LENGTH, Event, InvalidEvents
from measure.events.problems import clip
from measure.events.problems import kind as value_kind
from measure.gcp.publisher import Message
from measure.pipeline.retry import RetryState

VERSION = 1
MAX_RAW_BYTES = 64 * 1024  # how much of an undecodable message is kept in its dead letter
MAX_ATTRIBUTES = 100  # Pub/Sub's limit of attributes per message


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
    ours = _attributes(event, attempts) if event else {}
    ours["kind"] = kind
    # The original message's attributes travel along, except the ones Pub/Sub reserves for
    # itself (the service refuses a publish with any attribute key starting with "goog") and any
    # past its limit of MAX_ATTRIBUTES a message, ours included: a refused publish of a dead letter
    # would send the message round again, for ever.
    kept = [(key, value) for key, value in (attributes or {}).items()
            if not key.startswith("goog") and key not in ours]
    return _encode(body), {**dict(kept[:MAX_ATTRIBUTES - len(ours)]), **ours}


def decode(data: bytes) -> Envelope:
    """The event (and retry state) in a message, or UndecodableMessageError saying why not.

    Whatever the bytes, nothing else is raised: every message that is not a v1 event (not UTF-8, not
    JSON, nested past the parser's depth, not an object, another version, a malformed event or retry
    state, values nothing downstream can handle) must become one undecodable dead letter, and an
    exception of any other kind would crash-loop it instead (issue 24).
    """
    body = _parse(data)
    if not isinstance(body, dict):
        raise _undecodable(f"data is {value_kind(body)}, not a JSON object")
    if "v" not in body:
        raise _undecodable(f"data has no schema version (v); expected {VERSION}")
    version = body["v"]
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        raise _undecodable(f"unsupported schema version {clip(repr(version))} (expected {VERSION})")
    try:
        event = Event.from_dict(body.get("event"))
    except InvalidEvents as exc:
        raise _undecodable(f"event is malformed: {exc}") from None
    if not 0 <= event.time_stamp < _TIME_STAMP_LIMIT:
        raise _undecodable(f"event is malformed: time_stamp {clip(str(event.time_stamp))} is not Unix seconds "
                           f"of at most {MAX_FIELD_LENGTH['time_stamp']} digits")
    retry = None
    if body.get("retry") is not None:
        try:
            retry = RetryState.from_dict(body["retry"])
        except ValueError as exc:
            raise _undecodable(str(exc)) from None
    texts = [*event.to_dict().items(), *((f"retry.{k}", v) for k, v in (retry.to_dict() if retry else {}).items())]
    for name, value in texts:
        if isinstance(value, str) and not _encodable(value):
            # A \ud800-style escape: JSON can carry it, UTF-8 cannot, so every later encode would fail.
            raise _undecodable(f"{name} holds a lone surrogate (an invalid \\u escape), which UTF-8 cannot carry")
    return Envelope(event, retry)


# What a reason may cost in a log line and a dead letter, whatever the message held.
MAX_REASON = 500
# The webhook's own bound on time_stamp's digits; beyond it, the event's age is no longer a float.
_TIME_STAMP_LIMIT = 10 ** MAX_FIELD_LENGTH["time_stamp"]


def _undecodable(reason: str) -> UndecodableMessageError:
    return UndecodableMessageError(clip(reason, MAX_REASON))


def _parse(data: bytes) -> object:
    if not data:
        raise _undecodable("the message has no data")
    try:
        # UTF-8 and nothing else: json.loads(bytes) would also take UTF-16 and UTF-32.
        text = str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(f"data is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise _undecodable("data is JSON nested too deeply to read") from None
    except ValueError as exc:  # not JSON, an integer of more digits than Python converts, NaN/Infinity
        raise _undecodable(f"data is not JSON: {exc}") from None


def _refuse_constant(name: str) -> object:
    # json.loads takes NaN, Infinity and -Infinity, which are not JSON (RFC 8259) and no field can hold.
    raise ValueError(f"{name} is not a JSON value")


def _encodable(text: str) -> bool:
    if text.isascii():  # nearly always, and costs no copy
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def decode_dead_letter(data: bytes) -> dict[str, Any]:
    """A dead letter as a dict (event may be None for undecodable ones); for the operator tools."""
    body = json.loads(data)
    if not isinstance(body, dict) or "dead" not in body:
        raise UndecodableMessageError("not a measure dead letter")
    return body
