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
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from measure.events import CORE_FIELDS, Event, InvalidEvents
from measure.pipeline.retry import RetryState

VERSION = 1
MAX_RAW_BYTES = 64 * 1024  # how much of an undecodable message is kept in its dead letter

Message = tuple[bytes, dict[str, str]]
_CORE = frozenset(CORE_FIELDS)


class UndecodableMessageError(ValueError):
    """A message that is not a measure event; it is dead-lettered, never crash-looped."""


@dataclass(frozen=True)
class Envelope:
    event: Event
    retry: RetryState | None = None


# json.dumps(body, separators=(",", ":"), ensure_ascii=False), without building a JSONEncoder a call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _encode(body: dict) -> bytes:
    return _ENCODER.encode(body).encode()


def _attributes(event: Event, attempt: int) -> dict[str, str]:
    return {"event_id": event.event_id, "event_name": event.event_name, "attempt": str(attempt)}


def event_message(event: Event) -> Message:
    return _event_data(event), _attributes(event, 0)


def _event_data(event: Event) -> bytes:
    """_encode({"v": VERSION, "event": event.to_dict()}), written directly: receive builds one a
    published event, and the dict and the encoder call were most of the cost.

    Each string goes through json's own string encoder and the time stamp through int's repr, as
    json.dumps does. An event unlike those validate produces (a bool time stamp, a non-string
    extra, an extra named like a core field, which to_dict lets replace it) is left to json.dumps.
    tests/pipeline/test_message.py pins the bytes.
    """
    time_stamp = event.time_stamp
    if isinstance(time_stamp, bool) or not isinstance(time_stamp, int) or not _CORE.isdisjoint(event.extras):
        return _encode({"v": VERSION, "event": event.to_dict()})
    try:
        extras = "".join([f",{encode_basestring(name)}:{encode_basestring(value)}"
                          for name, value in event.extras.items()])
        text = (
            f'{{"v":{VERSION},"event":{{"event_id":{encode_basestring(event.event_id)},'
            f'"event_name":{encode_basestring(event.event_name)},"user_id":{encode_basestring(event.user_id)},'
            f'"ip":{encode_basestring(event.ip)},"time_stamp":{int.__repr__(time_stamp)},'
            f'"platform":{encode_basestring(event.platform)},"storefront":{encode_basestring(event.storefront)}'
            f"{extras}}}}}"
        )
    except TypeError:  # encode_basestring takes str only
        return _encode({"v": VERSION, "event": event.to_dict()})
    return text.encode()


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
    out_attributes = dict(attributes or {})
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


def decode_dead_letter(data: bytes) -> dict:
    """A dead letter as a dict (event may be None for undecodable ones); for the operator tools."""
    body = json.loads(data)
    if not isinstance(body, dict) or "dead" not in body:
        raise UndecodableMessageError("not a measure dead letter")
    return body
