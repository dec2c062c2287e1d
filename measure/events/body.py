"""Parse a webhook body into raw events (not yet validated), or say why the body is unusable.

Form-encoded: one event. JSON: one object or an array of them. NDJSON/JSONL: one object a line.
Every refusal is a BodyError: 400 (malformed), 413 (too large) or 415 (media type).
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

from measure.events.fields import MAX_EVENT_KEYS
from measure.events.problems import BodyError, clip, kind, show

MAX_BATCH = 1000
# 1 MiB: 1,000 events of about 1 KiB each (receive refuses a larger body before reading it).
MAX_BODY_BYTES = 1024 * 1024

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NDJSON = "application/x-ndjson"
JSONL = "application/jsonl"
CONTENT_TYPES = (FORM, JSON, NDJSON, JSONL)

# A form body holds one event; a few more fields than we know are let through to be named.
_MAX_FORM_FIELDS = MAX_EVENT_KEYS


def parse_body(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """The raw events of a webhook body, not yet validated; raises BodyError.

    Form-encoded: one event. JSON: one object or an array of them. NDJSON/JSONL: one object a
    line. An event's values must be strings or numbers (or the other JSON scalars, for validate
    to name); anything nested is refused here.
    """
    media = _media_type(content_type)
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(413, "body", f"is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    if not bytes(body).strip():
        raise BodyError(400, "body", "is empty; send at least one event")
    text = _decode(bytes(body))
    if media == FORM:
        return [_parse_form(text)]
    if media == JSON:
        return _parse_json(text)
    return _parse_lines(text)


def _media_type(content_type: str | None) -> str:
    supported = ", ".join(CONTENT_TYPES)
    if content_type is None or not content_type.strip():
        raise BodyError(415, "Content-Type", f"is missing; send one of {supported}")
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media not in CONTENT_TYPES:
        raise BodyError(415, "Content-Type", f"{show(media)} is not supported; send one of {supported}")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise BodyError(415, "Content-Type", f"charset {show(charset)} is not supported; send UTF-8")
    return media


def _decode(body: bytes) -> str:
    try:
        # A byte order mark is harmless noise some encoders add; anything else must be UTF-8.
        return body.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(
            400, "body", f"is not valid UTF-8: byte 0x{error.object[error.start]:02x} at offset {error.start}"
        ) from None


def _parse_form(text: str) -> dict[str, Any]:
    if text.count("&") >= _MAX_FORM_FIELDS:
        raise BodyError(400, "body", f"has more than {_MAX_FORM_FIELDS} form fields; a form body is one event")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BodyError(400, "body", "has a percent-escape that is not valid UTF-8") from None
    except ValueError as error:
        raise BodyError(
            400, "body", f"is not valid form encoding ({error}); send key=value pairs joined by '&'"
        ) from None
    event: dict[str, str] = {}
    for key, value in pairs:
        if key in event:
            count = sum(1 for k, _ in pairs if k == key)
            raise BodyError(400, clip(key), f"is given {count} times; each field may appear once")
        event[key] = value
    return event


_NESTED = frozenset({dict, list})


class _JSONRefusal(Exception):
    """Internal: raised from json's hooks, which see a problem before the parse ends."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, Any]:
    obj = dict(pairs)  # in C, unlike a loop here
    if len(obj) < len(pairs):  # a key was repeated: name the first repeat
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _JSONRefusal(clip(key), "appears twice in one object; each field may appear once")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> float:
    raise _JSONRefusal("body", f"contains {name}; JSON numbers must be finite")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _JSONRefusal("body", f"contains the number {show(text)}, too large to be finite")
    return number


def _loads(text: str, where: str) -> object:
    prefix = f"{where}: " if where else ""
    try:
        return json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except _JSONRefusal as refusal:
        raise BodyError(400, refusal.field, f"{prefix}{refusal.problem}") from None
    except json.JSONDecodeError as error:
        raise BodyError(
            400, "body", f"{prefix}is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise BodyError(400, "body", f"{prefix}is nested too deeply; an event is a flat object") from None
    except ValueError as error:  # e.g. an integer of more digits than Python will convert
        raise BodyError(400, "body", f"{prefix}is not valid JSON: {error}") from None


def _parse_json(text: str) -> list[dict[str, Any]]:
    data = _loads(text, "")
    if isinstance(data, dict):
        _check_flat(data, "the event")
        return [data]
    if not isinstance(data, list):
        raise BodyError(400, "body", f"must be a JSON object or an array of objects, not {kind(data)}")
    if not data:
        raise BodyError(400, "body", "is an empty array: no events")
    if len(data) > MAX_BATCH:
        raise BodyError(413, "body", f"has {len(data)} events; at most {MAX_BATCH} (MAX_BATCH) per request")
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            raise BodyError(400, "body", f"event {index} is {kind(event)}; a batch is an array of objects")
        _check_flat(event, f"event {index}")
    return data


def _parse_lines(text: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    # Only "\n" ends a line: str.splitlines would also split inside values at U+2028 and friends.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        event = _loads(line, where)
        if not isinstance(event, dict):
            raise BodyError(400, "body", f"{where}: is {kind(event)}; each line must be one JSON object")
        _check_flat(event, where)
        events.append(event)
        if len(events) > MAX_BATCH:
            raise BodyError(413, "body", f"has more than {MAX_BATCH} events (MAX_BATCH) at {where}")
    if not events:
        raise BodyError(400, "body", "has only blank lines: no events")
    return events


def _check_flat(event: dict[str, Any], where: str) -> None:
    # json.loads makes exact dicts and lists, so a set test of the value types (in C) clears
    # almost every event; the loop below finds the nested value to name.
    if _NESTED.isdisjoint(map(type, event.values())):
        return
    for key, value in event.items():
        if isinstance(value, (dict, list)):
            raise BodyError(
                400, clip(key), f"is {kind(value)} in {where}; an event's values must be strings or numbers"
            )


