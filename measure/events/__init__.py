"""Game events: parse a webhook body, validate and normalise each event, map it to Measurement API parameters.

Two kinds of refusal, because a client fixes them differently:
- `BodyError`: the body as a whole is unusable (wrong content type, not JSON, too big, a key given
  twice). One problem, and a status: 400, 413 or 415.
- `InvalidEvents`: the body parsed, but events in it are invalid. A batch is all or nothing, so every
  problem of every event is listed, each with the event's index, and nothing is accepted.

Normalisation is what makes retries idempotent: surrounding whitespace is stripped, platform and
storefront are lower-cased, the ip is put in its compressed form (an IPv4-mapped IPv6 address
becomes IPv4), time_stamp becomes an int and every pass-through value a string. An event without
an `event_id` gets one derived from those normalised fields, so a telemetry server that retries
the same event gets the same id, and the Measurement API sees the same `transaction_id`.

Within one batch, an exact repeat of an event (same id, same fields) is kept once: at-least-once
telemetry pipelines send those, and refusing them would make the retry fail forever. Two
different events sharing one event_id are a mistake and are refused.

An optional pass-through value sent blank (a form field `revenue=`) counts as absent, because form
encoders write empty strings for missing values. A blank required field is a problem.

Pure stdlib and cheap to import: this module is loaded on every cold start of `receive`.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import ClassVar
from urllib.parse import parse_qsl

MAX_BATCH = 1000
# 1000 events of a few hundred bytes each fit many times over; a body of every field at its
# maximum length (about 8 kB an event) still fits for a full batch.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Allowed clock skew of the telemetry server, ahead of ours.
MAX_FUTURE = 300
DEFAULT_MAX_AGE = 30 * 86400

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NDJSON = "application/x-ndjson"
JSONL = "application/jsonl"
CONTENT_TYPES = (FORM, JSON, NDJSON, JSONL)

DEFAULT_EVENT_NAME = "game_open"
SESSION_EVENTS: frozenset[str] = frozenset({"game_open", "session", "app_open", "open", "session_start"})
# The Measurement API's pre-defined actions, in docs/design.md's order.
PREDEFINED_EVENTS: tuple[str, ...] = (
    "registration",
    "login",
    "add_to_wishlist",
    "add_to_cart",
    "added_payment_info",
    "reservation",
    "checkout_initiated",
    "purchase",
    "search",
    "content_view",
    "tutorial_complete",
    "level_achieved",
    "achievement_unlocked",
    "spent_credits",
    "invite",
    "rated",
    "share",
)

# The fields every Event has, in Event's order.
CORE_FIELDS: tuple[str, ...] = ("event_id", "event_name", "user_id", "ip", "time_stamp", "platform", "storefront")
REQUIRED_FIELDS: tuple[str, ...] = ("user_id", "ip", "time_stamp", "platform", "storefront")

# Optional Measurement API parameters passed through under their own names. What each accepts:
#   revenue, rating       a decimal number >= 0 ("9.99"; a float is rounded to 8 places)
#   quantity, level       an integer >= 0
#   date1, date2          Unix seconds, an integer >= 0 (the SDKs' format for these)
#   currency_code         3 letters (ISO 4217), upper-cased
#   country_code          2 letters (ISO 3166-1 alpha-2), upper-cased
#   ios_ifa, google_aid   an advertising id: hex digits and dashes
#   everything else       text without control characters
PASSTHROUGH_FIELDS: tuple[str, ...] = (
    "revenue",
    "currency_code",
    "advertiser_ref_id",
    "user_agent",
    "country_code",
    "app_version",
    "app_name",
    "package_name",
    "language",
    "os_version",
    "device_brand",
    "device_model",
    "device_carrier",
    "ios_ifa",
    "google_aid",
    "attribute_sub1",
    "attribute_sub2",
    "attribute_sub3",
    "attribute_sub4",
    "attribute_sub5",
    "content_type",
    "content_id",
    "quantity",
    "rating",
    "search_string",
    "level",
    "date1",
    "date2",
)
FIELDS: tuple[str, ...] = CORE_FIELDS + PASSTHROUGH_FIELDS

# Longest accepted value of each field, in characters (after stripping surrounding whitespace).
MAX_FIELD_LENGTH: Mapping[str, int] = MappingProxyType(
    {
        "event_id": 128,
        "event_name": 128,
        "user_id": 256,
        "ip": 64,  # 45 is the longest address; the slack only lets the message say what is wrong
        "time_stamp": 20,
        "platform": 32,
        "storefront": 32,
        "revenue": 24,
        "currency_code": 3,
        "advertiser_ref_id": 256,
        "user_agent": 1024,
        "country_code": 2,
        "app_version": 64,
        "app_name": 256,
        "package_name": 256,
        "language": 35,
        "os_version": 64,
        "device_brand": 128,
        "device_model": 128,
        "device_carrier": 128,
        "ios_ifa": 64,
        "google_aid": 64,
        "attribute_sub1": 256,
        "attribute_sub2": 256,
        "attribute_sub3": 256,
        "attribute_sub4": 256,
        "attribute_sub5": 256,
        "content_type": 256,
        "content_id": 256,
        "quantity": 15,
        "rating": 24,
        "search_string": 256,
        "level": 15,
        "date1": 15,
        "date2": 15,
    }
)
# An event with more keys than this is not a typo to point out field by field, and listing a
# problem per key would let a small body produce a huge answer.
MAX_EVENT_KEYS = 64
# A form body holds one event; a few more fields than we know are let through to be named.
_MAX_FORM_FIELDS = MAX_EVENT_KEYS

_PREDEFINED = frozenset(PREDEFINED_EVENTS)
_REQUIRED = frozenset(REQUIRED_FIELDS)
_CORE = frozenset(CORE_FIELDS)
_PASSTHROUGH = frozenset(PASSTHROUGH_FIELDS)
_KNOWN = frozenset(FIELDS)

# Names people send for our fields that difflib would not match well (or would match wrongly:
# "event" is closer to "event_id" than to "event_name").
_ALIASES = {
    "event": "event_name",
    "name": "event_name",
    "event_type": "event_name",
    "action": "event_name",
    "timestamp": "time_stamp",
    "time": "time_stamp",
    "ts": "time_stamp",
    "user": "user_id",
    "userid": "user_id",
    "uid": "user_id",
    "player_id": "user_id",
    "ip_address": "ip",
    "ipaddress": "ip",
    "client_ip": "ip",
    "device_ip": "ip",
    "store": "storefront",
    "os": "platform",
    "currency": "currency_code",
    "country": "country_code",
    "id": "event_id",
    "transaction_id": "event_id",
    "idempotency_key": "event_id",
    "useragent": "user_agent",
    "device_user_agent": "user_agent",
}

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,8})?")
_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]+")
_AD_ID = re.compile(r"[0-9A-Fa-f-]+")
_LETTERS = re.compile(r"[A-Za-z]+")
# Largest integer we turn into text: formatting a 5000-digit int raises, and no field needs one.
_INT_LIMIT = 10**15
_TIME_STAMP_DIGITS = MAX_FIELD_LENGTH["time_stamp"]
_TIME_STAMP_LIMIT = 10**_TIME_STAMP_DIGITS
# For _derive_id: each field name as a JSON key with its colon, and json's ASCII string encoder.
_JSON_KEYS = MappingProxyType({name: json.dumps(name) + ":" for name in FIELDS})
_json_ascii: Callable[[str], str] = encode_basestring_ascii
_ID_CORE = frozenset(CORE_FIELDS) - {"event_id"}

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))

# Fast path for the common case, a plain dotted IPv4 outside every special range: ipaddress'
# parsing and range tests were most of validation's time (benchmarks). These ranges cover every
# IPv4 address _not_global refuses; an address inside one takes the full path for its reason.
# An octet's value by its canonical text: "0" to "255" in ASCII digits, without leading zeros.
# One lookup does the digit, range and leading-zero tests (int() is dearer, and takes any digit).
_OCTETS = MappingProxyType({str(n): n for n in range(256)})
_IPV4_SPECIAL = tuple(
    (int(net.network_address), int(net.broadcast_address))
    for net in sorted(ipaddress.ip_network(n) for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/3",
    ))
)
_IPV4_SPECIAL_STARTS = tuple(start for start, _ in _IPV4_SPECIAL)


# ---------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong: in which event (None for the body or a lone message), which field, what."""

    index: int | None
    field: str
    problem: str

    def to_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "problem": self.problem}

    def __str__(self) -> str:
        where = f"event {self.index}: " if self.index is not None else ""
        return f"{where}{self.field}: {self.problem}"


class EventsError(ValueError):
    """A refused request. `status` is the HTTP status to answer; `to_dict()` is the JSON body."""

    status = 400
    error = "invalid events"
    problems: list[Problem]

    def to_dict(self) -> dict:
        return {"error": self.error, "problems": [p.to_dict() for p in self.problems]}


class BodyError(EventsError):
    """The body as a whole is unusable: 400 (malformed), 413 (too large) or 415 (media type)."""

    _ERRORS: ClassVar[dict[int, str]] = {400: "invalid body", 413: "body too large", 415: "unsupported media type"}

    def __init__(self, status: int, field: str, problem: str):
        self.status = status
        self.error = self._ERRORS[status]
        self.field = field
        self.problem = problem
        self.problems = [Problem(None, field, problem)]
        super().__init__(f"{field}: {problem}")


class InvalidEvents(EventsError):
    """One or more events are invalid; `problems` lists all of them, each with its event's index."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} problem(s): {shown}{more}")


class _Bad(Exception):
    """Internal: one field's value is wrong; the message becomes a Problem for that field."""


# ---------------------------------------------------------------------------------------------
# The event


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalised event: what is published to Pub/Sub and mapped to one API request."""

    event_id: str
    event_name: str
    user_id: str
    ip: str
    time_stamp: int
    platform: str
    storefront: str
    # The pass-through Measurement API parameters given, as strings. Read-only; left out of the
    # hash so events can go in sets.
    extras: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def to_dict(self) -> dict:
        """JSON-safe and flat: the core fields, then the extras under their own names."""
        fields = {name: getattr(self, name) for name in CORE_FIELDS}
        fields.update(self.extras)
        return fields

    @classmethod
    def from_dict(cls, d: object) -> Event:
        """Inverse of to_dict, for messages read back from Pub/Sub.

        Checks shape and types only: values were validated at the webhook, and the age of an
        event waiting in a retry queue must not make it invalid.
        """
        if not isinstance(d, Mapping):
            raise InvalidEvents([Problem(None, "event", f"must be an object, not {_kind(d)}")])
        problems: list[Problem] = []
        for name in CORE_FIELDS:
            if name not in d:
                problems.append(Problem(None, name, "is missing"))
                continue
            value = d[name]
            if name == "time_stamp":
                if isinstance(value, bool) or not isinstance(value, int):
                    problems.append(Problem(None, name, f"must be an integer, not {_kind(value)}"))
            elif not isinstance(value, str):
                problems.append(Problem(None, name, f"must be a string, not {_kind(value)}"))
        for name, value in d.items():
            if name in _CORE:
                continue
            if name not in _PASSTHROUGH:
                problems.append(Problem(None, _clip(str(name)), "is not a known field"))
            elif not isinstance(value, str):
                problems.append(Problem(None, name, f"must be a string, not {_kind(value)}"))
        if problems:
            raise InvalidEvents(problems)
        extras = {name: d[name] for name in PASSTHROUGH_FIELDS if name in d}
        return cls(**{name: d[name] for name in CORE_FIELDS}, extras=extras)


# ---------------------------------------------------------------------------------------------
# Parsing the body


def parse_body(body: bytes, content_type: str | None) -> list[dict]:
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
        raise BodyError(415, "Content-Type", f"{_show(media)} is not supported; send one of {supported}")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise BodyError(415, "Content-Type", f"charset {_show(charset)} is not supported; send UTF-8")
    return media


def _decode(body: bytes) -> str:
    try:
        # A byte order mark is harmless noise some encoders add; anything else must be UTF-8.
        return body.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(
            400, "body", f"is not valid UTF-8: byte 0x{error.object[error.start]:02x} at offset {error.start}"
        ) from None


def _parse_form(text: str) -> dict:
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
            raise BodyError(400, _clip(key), f"is given {count} times; each field may appear once")
        event[key] = value
    return event


_NESTED = frozenset({dict, list})


class _JSONRefusal(Exception):
    """Internal: raised from json's hooks, which see a problem before the parse ends."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)  # in C, unlike a loop here
    if len(obj) < len(pairs):  # a key was repeated: name the first repeat
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _JSONRefusal(_clip(key), "appears twice in one object; each field may appear once")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> float:
    raise _JSONRefusal("body", f"contains {name}; JSON numbers must be finite")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _JSONRefusal("body", f"contains the number {_show(text)}, too large to be finite")
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


def _parse_json(text: str) -> list[dict]:
    data = _loads(text, "")
    if isinstance(data, dict):
        _check_flat(data, "the event")
        return [data]
    if not isinstance(data, list):
        raise BodyError(400, "body", f"must be a JSON object or an array of objects, not {_kind(data)}")
    if not data:
        raise BodyError(400, "body", "is an empty array: no events")
    if len(data) > MAX_BATCH:
        raise BodyError(413, "body", f"has {len(data)} events; at most {MAX_BATCH} (MAX_BATCH) per request")
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            raise BodyError(400, "body", f"event {index} is {_kind(event)}; a batch is an array of objects")
        _check_flat(event, f"event {index}")
    return data


def _parse_lines(text: str) -> list[dict]:
    events: list[dict] = []
    # Only "\n" ends a line: str.splitlines would also split inside values at U+2028 and friends.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        event = _loads(line, where)
        if not isinstance(event, dict):
            raise BodyError(400, "body", f"{where}: is {_kind(event)}; each line must be one JSON object")
        _check_flat(event, where)
        events.append(event)
        if len(events) > MAX_BATCH:
            raise BodyError(413, "body", f"has more than {MAX_BATCH} events (MAX_BATCH) at {where}")
    if not events:
        raise BodyError(400, "body", "has only blank lines: no events")
    return events


def _check_flat(event: dict, where: str) -> None:
    # json.loads makes exact dicts and lists, so a set test of the value types (in C) clears
    # almost every event; the loop below finds the nested value to name.
    if _NESTED.isdisjoint(map(type, event.values())):
        return
    for key, value in event.items():
        if isinstance(value, (dict, list)):
            raise BodyError(
                400, _clip(key), f"is {_kind(value)} in {where}; an event's values must be strings or numbers"
            )


# ---------------------------------------------------------------------------------------------
# Validating events


def validate(
    raw: list[dict],
    *,
    site_ids: Mapping[str, str],
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> list[Event]:
    """Normalised Events for raw events, or InvalidEvents listing every problem of every event.

    `site_ids` is MEASURE_SITE_IDS: each event's `site_key(platform, storefront)` must be a key.
    An exact repeat of an earlier event in the batch is dropped, so the result may be shorter.
    """
    now = time.time() if now is None else now
    problems: list[Problem] = []
    events: list[Event] = []
    seen: dict[str, tuple[int, Event]] = {}
    plain = _PlainEvents(site_ids, max_age, now)
    for index, item in enumerate(raw):
        event = plain.event(item)
        if event is None:  # not plainly valid: the full check accepts it or says what is wrong
            event, found = _check_event(item, site_ids, max_age, now)
            if found:
                problems.extend(Problem(index, name, problem) for name, problem in found)
                continue
            assert event is not None
        earlier = seen.get(event.event_id)
        if earlier is None:
            seen[event.event_id] = (index, event)
            events.append(event)
        elif earlier[1] != event:
            problems.append(
                Problem(
                    index,
                    "event_id",
                    f"{_show(event.event_id)} is also the id of event {earlier[0]}, which has different fields; "
                    "each event needs an id of its own",
                )
            )
    if problems:
        raise InvalidEvents(problems)
    return events


class _PlainEvents:
    """The fast path of one batch: the Event of a plainly valid event, or None.

    Almost every event of a batch is plain: a dict of known fields, a configured platform and
    storefront, every value valid. For those this proves what _check_event would, with the same
    field checks, and builds the same Event, without _check_event's per-field closures and
    problem lists. Anything else (a problem, an unknown field, an unusual value) gets None and
    goes to _check_event, so every problem is still found and worded by one piece of code.

    Platform, storefront and event_name take a handful of values in a batch: each distinct
    value is checked once, and the site_ids lookup done once per pair.
    """

    def __init__(self, site_ids: Mapping[str, str], max_age: int, now: float):
        self.site_ids = site_ids
        self.max_age = max_age
        self.now = now
        self.sites: dict[tuple[str, str], tuple[str, str] | None] = {}
        self.names: dict[str, str | None] = {}

    def event(self, item: object) -> Event | None:
        if type(item) is not dict:
            return None
        keys = item.keys()
        core_only = keys <= _CORE  # the usual event: no pass-through fields, nothing unknown
        if not (core_only or keys <= _KNOWN) or not keys >= _REQUIRED:
            return None
        platform, storefront = item["platform"], item["storefront"]
        if type(platform) is not str or type(storefront) is not str:
            return None
        pair = self.sites.get((platform, storefront), ...)
        if pair is ...:
            pair = self.sites[platform, storefront] = self._site(platform, storefront)
        if pair is None:
            return None
        event_name = item.get("event_name", DEFAULT_EVENT_NAME)
        if type(event_name) is not str:
            return None
        name = self.names.get(event_name, ...)
        if name is ...:
            name = self.names[event_name] = _or_none(_event_name, event_name)
        if name is None:
            return None
        try:
            user_id = _text(item["user_id"], "user_id")
            ip = _ip(item["ip"])
            time_stamp = _time_stamp(item["time_stamp"], self.now, self.max_age)
            # Blank counts as absent; null (None) does not, and is _check_event's to refuse.
            given = "event_id" in item and not _blank(item["event_id"])
            event_id = _event_id(item["event_id"]) if given else None
            extras: dict[str, str] = {}
            if not core_only:
                for field_name in PASSTHROUGH_FIELDS:  # in this order, as _check_event adds them
                    if field_name in item and not _blank(item[field_name]):
                        extras[field_name] = _PASSTHROUGH_CHECKS[field_name](item[field_name], field_name)
        except _Bad:
            return None
        platform, storefront = pair
        if not event_id:
            fields = {"event_name": name, "user_id": user_id, "ip": ip, "time_stamp": str(time_stamp),
                      "platform": platform, "storefront": storefront, **extras}
            event_id = _derive_id(fields)
        return Event(event_id, name, user_id, ip, time_stamp, platform, storefront, extras)

    def _site(self, platform: str, storefront: str) -> tuple[str, str] | None:
        try:
            pair = _site_part(platform, "platform"), _site_part(storefront, "storefront")
        except _Bad:
            return None
        return pair if site_key(*pair) in self.site_ids else None


def _or_none(check: Callable[[object], str], value: object) -> str | None:
    try:
        return check(value)
    except _Bad:
        return None


def _check_event(
    item: object, site_ids: Mapping[str, str], max_age: int, now: float
) -> tuple[Event | None, list[tuple[str, str]]]:
    if not isinstance(item, Mapping):
        return None, [("event", f"must be an object, not {_kind(item)}")]
    if len(item) > MAX_EVENT_KEYS:
        return None, [("event", f"has {len(item)} fields; an event has at most {len(FIELDS)} (see FIELDS)")]
    found: list[tuple[str, str]] = []
    values: dict[str, object] = {}

    def check(name: str, normalise: Callable[[object], object]) -> None:
        try:
            values[name] = normalise(item[name])
        except _Bad as bad:
            found.append((name, str(bad)))

    for name in REQUIRED_FIELDS:
        if name not in item:
            found.append((name, "is required"))
    if "user_id" in item:
        check("user_id", lambda v: _text(v, "user_id"))
    if "event_name" in item:
        check("event_name", _event_name)
    else:
        values["event_name"] = DEFAULT_EVENT_NAME
    if "ip" in item:
        check("ip", _ip)
    if "time_stamp" in item:
        check("time_stamp", lambda v: _time_stamp(v, now, max_age))
    for name in ("platform", "storefront"):
        if name in item:
            check(name, lambda v, name=name: _site_part(v, name))
    if "platform" in values and "storefront" in values:
        key = site_key(str(values["platform"]), str(values["storefront"]))
        if key not in site_ids:
            found.append(("platform", _unconfigured(key, site_ids)))
    if "event_id" in item and not _blank(item["event_id"]):
        check("event_id", _event_id)
    extras: dict[str, str] = {}
    for name in PASSTHROUGH_FIELDS:
        if name in item and not _blank(item[name]):
            try:
                extras[name] = _PASSTHROUGH_CHECKS[name](item[name], name)
            except _Bad as bad:
                found.append((name, str(bad)))
    for name in item:
        if not isinstance(name, str):
            found.append((_clip(repr(name)), "field names must be strings"))
        elif name not in _KNOWN:
            found.append((_clip(name) or repr(name), _unknown(name)))
    if found:
        return None, found
    core = {name: values[name] for name in CORE_FIELDS if name != "event_id"}
    event_id = values.get("event_id") or derive_event_id({**core, **extras})
    return Event(event_id=str(event_id), extras=extras, **core), []  # type: ignore[arg-type]


def derive_event_id(fields: Mapping[str, object]) -> str:
    """A deterministic id for an event without one: 32 hex characters of sha256.

    Hashes a canonical JSON of the normalised fields (any `event_id` key left out, values as
    strings, so int and digit-string time stamps agree). `derive_event_id(event.to_dict())` gives
    a derived event its own id back. Changing this changes every derived id: don't.
    """
    canonical = {str(name): str(value) for name, value in fields.items() if name != "event_id"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(b"measure.event.v1\n" + text.encode("ascii")).hexdigest()[:32]


def _derive_id(fields: dict[str, str]) -> str:
    """derive_event_id of known field names (no event_id) with str values, for the fast path.

    Writes the same canonical JSON without json.dumps, which cost more than the hash: the keys
    sorted, each key and value as json's own ensure_ascii string encoder writes it.
    """
    q = _json_ascii
    if fields.keys() == _ID_CORE:  # the usual event, no extras: the sorted keys are known
        text = (
            f'{{"event_name":{q(fields["event_name"])},"ip":{q(fields["ip"])},'
            f'"platform":{q(fields["platform"])},"storefront":{q(fields["storefront"])},'
            f'"time_stamp":{q(fields["time_stamp"])},"user_id":{q(fields["user_id"])}}}'
        )
    else:
        text = "{" + ",".join([_JSON_KEYS[name] + q(fields[name]) for name in sorted(fields)]) + "}"
    return hashlib.sha256(b"measure.event.v1\n" + text.encode("ascii")).hexdigest()[:32]


def site_key(platform: str, storefront: str) -> str:
    """The MEASURE_SITE_IDS key of a platform and storefront: "pc/steam"."""
    return f"{platform.strip().lower()}/{storefront.strip().lower()}"


def _unconfigured(key: str, site_ids: Mapping[str, str]) -> str:
    pairs = sorted(site_ids)
    listed = ", ".join(repr(p) for p in pairs[:20]) + (f" and {len(pairs) - 20} more" if len(pairs) > 20 else "")
    configured = f"configured pairs: {listed}" if pairs else "no pairs are configured"
    return f"platform/storefront pair {_show(key)} has no site_id in MEASURE_SITE_IDS ({configured})"


def _unknown(name: str) -> str:
    suggestion = _suggest(name)
    hint = f"; did you mean {suggestion!r}?" if suggestion else ""
    return f"is not a known field{hint}"


def _suggest(name: str) -> str | None:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _KNOWN:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    import difflib  # only a mistyped field pays for it

    close = difflib.get_close_matches(key[:64], FIELDS, n=1, cutoff=0.7)
    return close[0] if close else None


# Field checks. Each takes the raw value, returns the normalised one, or raises _Bad saying what
# is wrong with it (the caller adds which field and which event).


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _text(value: object, name: str) -> str:
    if type(value) is not str:  # the common case, a plain string, skips these type tests
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT_LIMIT:
            value = str(value)  # a numeric id is still an id
        elif isinstance(value, int) and not isinstance(value, bool):
            # JSON readers round integers this large to floats, so the id would not survive the trip.
            raise _Bad("is an integer of 16 digits or more; send it as a string")
        elif not isinstance(value, str):
            raise _Bad(f"must be a string, not {_kind(value)}")
    text = value.strip()
    if not text:
        raise _Bad("is empty")
    limit = MAX_FIELD_LENGTH[name]
    if len(text) > limit:
        raise _Bad(f"is {len(text)} characters long; at most {limit} are allowed")
    # Printable ASCII has no control character: two cheap str tests spare most values the regex.
    if not (text.isascii() and text.isprintable()):
        bad = _CONTROL.search(text)
        if bad:
            raise _Bad(f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}")
    return text


def _event_name(value: object) -> str:
    if _blank(value):
        raise _Bad(f"is empty; leave it out to mean {DEFAULT_EVENT_NAME!r}")
    text = _text(value, "event_name")
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        raise _Bad(f"contains the unprintable character U+{ord(bad):04X}")
    return text


def _site_part(value: object, name: str) -> str:
    text = _text(value, name).lower()
    if "/" in text:
        raise _Bad(f"{_show(text)} contains '/', which separates platform from storefront in MEASURE_SITE_IDS")
    return text


def _event_id(value: object) -> str:
    text = _text(value, "event_id")
    if not _EVENT_ID.fullmatch(text):
        raise _Bad(f"{_show(text)} may contain only letters, digits and . _ : -")
    return text


def _ip(value: object) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string such as '175.124.248.15', not {_kind(value)}")
    text = value.strip()
    if not text:
        raise _Bad("is empty")
    if len(text) > MAX_FIELD_LENGTH["ip"]:
        raise _Bad(f"is {len(text)} characters long; an IP address has at most 45")
    if "%" in text:
        raise _Bad(f"{_show(text)} has a zone index ('%...'); send the player's public address")
    if _plainly_global_ipv4(text):
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _Bad(f"{_show(text)} is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    reason = _not_global(address)
    if reason:
        raise _Bad(
            f"{_show(str(address))} is {reason}; it must be the player's public (global unicast) address, "
            "as the telemetry server sees it or from X-Forwarded-For"
        )
    return str(address)


def _plainly_global_ipv4(text: str) -> bool:
    """True for a canonical dotted IPv4 address outside every special range (no parsing needed)."""
    parts = text.split(".")
    if len(parts) != 4:
        return False
    octets = _OCTETS
    try:
        value = (octets[parts[0]] << 24) | (octets[parts[1]] << 16) | (octets[parts[2]] << 8) | octets[parts[3]]
    except KeyError:
        return False  # not an octet (leading zeros, > 255, not ASCII digits): ipaddress decides
    i = bisect.bisect_right(_IPV4_SPECIAL_STARTS, value) - 1
    return i < 0 or value > _IPV4_SPECIAL[i][1]


def _not_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not global unicast, or None when it is."""
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "in the shared address space of carrier-grade NAT (100.64.0.0/10)"
    if any(address in net for net in _DOCUMENTATION):
        return "in a documentation range (an example address)"
    if any(address in net for net in _PRIVATE):
        return "a private address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "in a reserved range"
    if not address.is_global:
        return "in a special-purpose range, not globally routable"
    return None


def _time_stamp(value: object, now: float, max_age: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _Bad("is empty")
        # isascii and isdigit: ASCII digits only, as [0-9]+ (isdigit alone takes any Unicode digit).
        if len(text) > _TIME_STAMP_DIGITS or not (text.isascii() and text.isdigit()):
            raise _Bad(f"{_show(text)} is not Unix seconds: send a string of digits such as '1724094783'")
        seconds = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < _TIME_STAMP_LIMIT:
            raise _Bad("is out of range: Unix seconds are a positive integer such as 1724094783")
        seconds = value
    else:
        hint = " (whole seconds, e.g. int(time.time()))" if isinstance(value, float) else ""
        raise _Bad(f"must be Unix seconds as an integer or a string of digits, not {_kind(value)}{hint}")
    offset = seconds - now
    if offset > MAX_FUTURE or -offset > max_age:
        when = f"{_duration(offset)} in the future" if offset > 0 else f"{_duration(-offset)} in the past"
        raise _Bad(
            f"{seconds} is {when}; it must be at most {_duration(MAX_FUTURE)} in the future "
            f"and at most {_duration(max_age)} in the past{_unit_hint(seconds)}"
        )
    return seconds


def _unit_hint(seconds: int) -> str:
    for digits, unit, factor in (
        (13, "milliseconds", "1000"),
        (16, "microseconds", "10**6"),
        (19, "nanoseconds", "10**9"),
    ):
        if len(str(seconds)) == digits:
            return f" ({digits} digits look like {unit}: send seconds, divided by {factor})"
    return ""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    for size, unit in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _decimal(value: object, name: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise _Bad(f"{_show(text)} is negative; it must be 0 or more")
        if not _DECIMAL.fullmatch(text):
            raise _Bad(
                f"{_show(text)} is not a decimal number such as '9.99': up to 15 digits, optionally a point "
                "and up to 8 more; no sign, exponent or thousands separator"
            )
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"must be a decimal number such as 9.99, not {_kind(value)}")
    if not math.isfinite(value):
        raise _Bad("must be a finite number")
    if value < 0:
        raise _Bad(f"is negative ({value}); it must be 0 or more")
    if value >= _INT_LIMIT:
        raise _Bad(f"is too large; at most {_INT_LIMIT - 1}")
    if isinstance(value, int):
        return str(value)
    # Floats are inexact already (0.1 + 0.2): round to what a price or rating needs.
    exact = Decimal(repr(value)).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN).normalize()
    return format(exact, "f")


def _integer(value: object, name: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_FIELD_LENGTH[name] or not _DIGITS.fullmatch(text):
            raise _Bad(f"{_show(text)} is not a whole number of at most {MAX_FIELD_LENGTH[name]} digits")
        return str(int(text))
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be a whole number, not {_kind(value)}")
    if not 0 <= value < _INT_LIMIT:
        raise _Bad(f"must be a whole number from 0 to {_INT_LIMIT - 1}")
    return str(value)


def _letters(count: int) -> Callable[[object, str], str]:
    def check(value: object, name: str) -> str:
        if not isinstance(value, str):
            raise _Bad(f"must be a string of {count} letters, not {_kind(value)}")
        text = value.strip()
        if len(text) != count or not _LETTERS.fullmatch(text):
            raise _Bad(f"{_show(text)} is not {count} letters (such as {'USD' if count == 3 else 'US'!r})")
        return text.upper()

    return check


def _ad_id(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, not {_kind(value)}")
    text = value.strip()
    if len(text) > MAX_FIELD_LENGTH[name] or not _AD_ID.fullmatch(text):
        raise _Bad(f"{_show(text)} is not an advertising id (hex digits and dashes, at most {MAX_FIELD_LENGTH[name]})")
    return text


_PASSTHROUGH_CHECKS: dict[str, Callable[[object, str], str]] = dict.fromkeys(PASSTHROUGH_FIELDS, _text)
_PASSTHROUGH_CHECKS.update(
    revenue=_decimal,
    rating=_decimal,
    quantity=_integer,
    level=_integer,
    date1=_integer,
    date2=_integer,
    currency_code=_letters(3),
    country_code=_letters(2),
    ios_ifa=_ad_id,
    google_aid=_ad_id,
)


# ---------------------------------------------------------------------------------------------
# The Measurement API request


def action_for(event_name: str) -> tuple[str, str | None]:
    """(action, site_event_name): session events and pre-defined names match case-insensitively;
    any other name is a custom event, sent as a conversion under the user's own spelling."""
    key = event_name.strip().lower()
    if key in SESSION_EVENTS:
        return "session", None
    if key in _PREDEFINED:
        return key, None
    return "conversion", event_name


def to_params(event: Event, *, advertiser_id: str, site_id: str) -> dict[str, str]:
    """The Measurement API parameters of one event, all strings, ready to sign and POST.

    `system_date` is the event's own time and `transaction_id` its id, so a retry days later is
    the same request to TUNE and is recognised as a duplicate.
    """
    action, site_event_name = action_for(event.event_name)
    params = {"action": action}
    if site_event_name is not None:
        params["site_event_name"] = site_event_name
    params.update(
        advertiser_id=str(advertiser_id),
        site_id=str(site_id),
        sdk="server",
        response_format="json",
        user_id=event.user_id,
        device_ip=event.ip,
        system_date=str(event.time_stamp),
        transaction_id=event.event_id,
    )
    for name, value in event.extras.items():
        params.setdefault(name, str(value))  # an extra never overrides what the request is
    return params


# ---------------------------------------------------------------------------------------------
# Helpers for messages


def _kind(value: object) -> str:
    """A value's type as a JSON user would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) and not value.is_integer() else "a float"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(text: str) -> str:
    return repr(_clip(text))
