"""Poison messages: the kinds of message on measure-events or measure-retry that are not a v1 event.

Each must become exactly one `undecodable` dead letter (docs/messages.md), whichever topic it is on;
tests/pipeline/test_message.py checks decode() on each and tests/functions/test_send.py pushes each,
on each topic, through the real functions. Issue 24 counted twelve kinds; a name says what is wrong.
"""

from __future__ import annotations

import base64
import json
import time

# A v1 event as send would read it: every kind below is one thing away from something like it.
EVENT = {"event_id": "poison-ref", "event_name": "game_open", "user_id": "u1", "ip": "175.124.248.15",
         "time_stamp": 1_724_094_783, "platform": "pc", "storefront": "steam"}
RETRY = {"attempt": 1, "first_failure": 1_724_094_800.0, "next_due": 1_724_094_830.0, "last_error": "HTTP 503"}


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _v1(**event: object) -> bytes:
    return _json({"v": 1, "event": {**EVENT, **event}})


POISON: dict[str, bytes] = {
    # json.loads raises RecursionError, not ValueError, at about a thousand levels.
    "deeply nested JSON": b'{"v":1,"event":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "not UTF-8 (Latin-1)": _v1(user_id="Jos\u00e9").replace(b"Jos\\u00e9", b"Jos\xe9"),
    # json.loads(bytes) reads UTF-16 and UTF-32 too; the schema says UTF-8.
    "UTF-16 JSON": json.dumps({"v": 1, "event": EVENT}).encode("utf-16"),
    "not JSON": b"hello, this is not JSON",
    "JSON with trailing bytes": _v1() + b"}",
    "not an object": _json([{"v": 1, "event": EVENT}]),
    "a JSON string": _json(json.dumps({"v": 1, "event": EVENT})),
    "wrong version": _json({"v": 2, "event": EVENT}),
    "version true": _json({"v": True, "event": EVENT}),
    "no version": _json({"event": EVENT}),
    "no event": _json({"v": 1}),
    "event null": _json({"v": 1, "event": None}),
    "empty object": b"{}",
    "whitespace only": b" \n\t ",
    "huge integer": b'{"v":1,"event":' + _json(EVENT).replace(b"1724094783", b"9" * 5000) + b"}",
    "time_stamp past any clock": _v1(time_stamp=10**400),  # float(10**400) raises OverflowError
    "number NaN": _v1().replace(b"1724094783", b"NaN"),
    "wrong types in every field": _json({"v": 1, "event": {"event_id": 1, "event_name": [], "user_id": {}, "ip": True,
                                                           "time_stamp": "now", "platform": None, "storefront": 1.5}}),
    "unknown field": _v1(colour="blue"),
    "lone surrogate": _v1(user_id="x").replace(b'"x"', b'"\\ud800"'),
    "base64 of an event": base64.b64encode(_v1()),
    "binary garbage": bytes(range(256)) * 4,
    "retry state malformed": _json({"v": 1, "event": EVENT, "retry": {"attempt": "two", "first_failure": None}}),
    # 1e999 reads as float("inf"), and int() of it raises OverflowError.
    "retry attempt infinite": _json({"v": 1, "event": EVENT, "retry": RETRY}).replace(b'"attempt":1',
                                                                                      b'"attempt":1e999'),
    "retry due time a string": _json({"v": 1, "event": EVENT, "retry": {**RETRY, "next_due": "soon"}}),
    # No data at all: attributes only (Eventarc's message then has no "data" key).
    "no data, attributes only": b"",
}


def good_event(**fields: object) -> dict:
    """A current event (send's sandbox accepts it), as the message's `event`."""
    return {**EVENT, "event_id": f"good-{time.time_ns()}", "time_stamp": int(time.time()), **fields}
