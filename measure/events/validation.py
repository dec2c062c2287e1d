"""Validate and normalise raw events: one Event each, or every problem of every event.

Normalisation is what makes retries idempotent: surrounding whitespace is stripped, platform and
storefront are lower-cased, the ip is put in its compressed form (an IPv4-mapped IPv6 address
becomes IPv4), time_stamp becomes an int and every pass-through value a string. An event without
an `event_id` gets one derived from those normalised fields (ids.py).

Within one batch, an exact repeat of an event (same id, same fields) is kept once: at-least-once
telemetry pipelines send those, and refusing them would make the retry fail forever. Two
different events sharing one event_id are a mistake and are refused.

An optional pass-through value sent blank (a form field `revenue=`) counts as absent, because form
encoders write empty strings for missing values. A blank required field is a problem.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from measure.config import Config
from measure.events.event import Event
from measure.events.fields import (
    CORE_FIELDS,
    DEFAULT_EVENT_NAME,
    EVENT_REF,
    FIELDS,
    MAX_EVENT_KEYS,
    MAX_FIELD_LENGTH,
    NOT_PASSED_THROUGH,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    site_key,
)
from measure.events.ids import derive_event_id
from measure.events.ip import public_address
from measure.events.problems import Bad, InvalidEvents, Problem, clip, duration, kind, show

# Allowed clock skew of the telemetry server, ahead of ours.
MAX_FUTURE = 300
DEFAULT_MAX_AGE = Config.event_max_age  # MEASURE_EVENT_MAX_AGE's default: measure.config owns it

# An answer lists at most MAX_PROBLEMS problems, fewer if their JSON would pass PROBLEMS_BUDGET
# bytes, then one entry counting the rest: a hostile body (1,000 events of 64 unknown keys) gets a
# small answer, and the first problems are as useful as all of them.
MAX_PROBLEMS = 100
PROBLEMS_BUDGET = 48 * 1024
# "Did you mean" is worked out (difflib, the costly part) once per distinct unknown name: up to
# SUGGESTIONS_CACHED names are remembered across requests, and a batch works out at most
# MAX_PROBLEMS new ones (no more can be shown); the rest are "not a known field" without a hint.
SUGGESTIONS_CACHED = 1024
_SUGGESTED: dict[str, str] = {}  # unknown name (at most 64 characters) -> its problem text

_REQUIRED = frozenset(REQUIRED_FIELDS)
_CORE = frozenset(CORE_FIELDS)
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
_VENDOR_ID = re.compile(r"[0-9A-Za-z-]+")
_REF = re.compile(r"[0-9A-Za-z]+")
_NOT_REF = re.compile(r"[^0-9a-z]+")
_LETTERS = re.compile(r"[A-Za-z]+")
# Largest integer we turn into text: formatting a 5000-digit int raises, and no field needs one.
_INT_LIMIT = 10**15
_TIME_STAMP_DIGITS = MAX_FIELD_LENGTH["time_stamp"]
_TIME_STAMP_LIMIT = 10**_TIME_STAMP_DIGITS

Found = list[tuple[str, str]]  # (field, problem) of one event


def validate(
    raw: list[dict[str, Any]],
    *,
    site_ids: Mapping[str, str],
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> list[Event]:
    """Normalised Events for raw events, or InvalidEvents listing every problem of every event.

    `site_ids` is MEASURE_SITE_IDS: each event's `site_key(platform, storefront)` must be a key.
    An exact repeat of an earlier event in the batch is dropped, so the result may be shorter.
    """
    checked, _, problems = check(raw, site_ids=site_ids, max_age=max_age, now=now)
    if problems:
        raise InvalidEvents(problems, total=problems_total(problems))
    return [event for _, event in checked]


def check(
    raw: list[dict[str, Any]],
    *,
    site_ids: Mapping[str, str],
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> tuple[list[tuple[int, Event]], dict[int, int], list[Problem]]:
    """validate without the all-or-nothing: (index, Event) of each valid event that is not a
    repeat, {index of a repeat: index of the event it repeats}, and the problems of the rest."""
    batch = _Batch(site_ids, max_age, time.time() if now is None else now)
    problems: list[Problem] = []
    checked: list[tuple[int, Event]] = []
    repeats: dict[int, int] = {}
    seen: dict[str, tuple[int, Event]] = {}
    listed = _Listed(problems)
    for index, item in enumerate(raw):
        event = batch.event(item)
        if isinstance(event, list):
            listed.add(index, event)
            continue
        earlier = seen.get(event.event_id)
        if earlier is None:
            seen[event.event_id] = (index, event)
            checked.append((index, event))
        elif earlier[1] == event:
            repeats[index] = earlier[0]
        else:
            listed.add(index, [(
                "event_id",
                f"{show(event.event_id)} is also the id of event {earlier[0]}, which has different fields; "
                "each event needs an id of its own",
            )])
    listed.close()
    return checked, repeats, problems


_MORE = "more problem(s) not listed"


class _Listed:
    """The problems an answer lists: the first ones up to MAX_PROBLEMS and PROBLEMS_BUDGET, then
    one Problem(None, "events", "N more problem(s) not listed ...") counting the rest."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        self.size = 0
        self.omitted = 0

    def add(self, index: int, found: Found) -> None:
        if self.omitted:
            self.omitted += len(found)
            return
        for kept, (name, problem) in enumerate(found):
            listed = Problem(index, name, problem)
            self.size += len(json.dumps(listed.to_dict()))
            if len(self.problems) >= MAX_PROBLEMS or self.size > PROBLEMS_BUDGET:
                self.omitted += len(found) - kept
                return
            self.problems.append(listed)

    def close(self) -> None:
        if self.omitted:
            self.problems.append(Problem(None, "events", f"{self.omitted} {_MORE}; the first "
                                                         f"{len(self.problems)} are, fix those and send again"))


def problems_total(problems: list[Problem]) -> int:
    """How many problems a (listed) list stands for, counting the ones its last entry says were left out."""
    if problems and problems[-1].index is None and _MORE in problems[-1].problem:
        return len(problems) - 1 + int(problems[-1].problem.split(" ", 1)[0])
    return len(problems)


class _Batch:
    """The checks of one batch. Platform/storefront pairs and event names take a handful of
    values in a batch: each distinct one is checked once and remembered (the same check, not a
    second one), and the site_ids lookup done once per pair."""

    def __init__(self, site_ids: Mapping[str, str], max_age: int, now: float):
        self.site_ids = site_ids
        self.max_age = max_age
        self.now = now
        self.sites: dict[tuple[str, str], tuple[str | None, str | None, Found]] = {}
        self.names: dict[str, tuple[str | None, Found]] = {}
        self.suggestions_left = MAX_PROBLEMS  # new "did you mean"s this batch may work out

    def event(self, item: object) -> Event | Found:
        """The Event of one raw event, or its problems in field order."""
        if not isinstance(item, Mapping):
            return [("event", f"must be an object, not {kind(item)}")]
        if len(item) > MAX_EVENT_KEYS:
            return [("event", f"has {len(item)} fields; an event has at most {len(FIELDS)} (see FIELDS)")]
        found: Found = []
        keys = item.keys()
        if not keys >= _REQUIRED:
            found.extend([(name, "is required") for name in REQUIRED_FIELDS if name not in item])
        user_id = ip = time_stamp = platform = storefront = None
        if "user_id" in item:
            try:
                user_id = _text(item["user_id"], "user_id")
            except Bad as bad:
                found.append(("user_id", str(bad)))
        event_name: str | None = DEFAULT_EVENT_NAME
        if "event_name" in item:
            event_name, problems = self._name(item["event_name"])
            found.extend(problems)
        if "ip" in item:
            try:
                ip = public_address(item["ip"])
            except Bad as bad:
                found.append(("ip", str(bad)))
        if "time_stamp" in item:
            try:
                time_stamp = _time_stamp(item["time_stamp"], self.now, self.max_age)
            except Bad as bad:
                found.append(("time_stamp", str(bad)))
        if "platform" in item or "storefront" in item:
            platform, storefront, problems = self._site(item.get("platform", ...), item.get("storefront", ...))
            found.extend(problems)
        event_id = None
        if "event_id" in item and not _blank(item["event_id"]):
            try:
                event_id = _event_id(item["event_id"])
            except Bad as bad:
                found.append(("event_id", str(bad)))
        extras: dict[str, str] = {}
        if not keys <= _CORE:
            for name in OPTIONAL_FIELDS:
                if name in item and not _blank(item[name]):
                    try:
                        extras[name] = _PASSTHROUGH_CHECKS[name](item[name], name)
                    except Bad as bad:
                        found.append((name, str(bad)))
            if EVENT_REF in extras:
                found.extend(_ref_conflicts(item, extras))
            if not keys <= _KNOWN:
                for name in item:
                    if not isinstance(name, str):
                        found.append((clip(repr(name)), "field names must be strings"))
                    elif name not in _KNOWN:
                        found.append((clip(name) or repr(name), self._unknown(name)))
        if found:
            return found
        if event_id is None:
            event_id = derive_event_id({"event_name": event_name, "user_id": user_id, "ip": ip,
                                        "time_stamp": time_stamp, "platform": platform,
                                        "storefront": storefront, **extras})
        # Nothing found, so every field was checked and is set (the ignore below says so to mypy).
        return Event(event_id, event_name, user_id, ip, time_stamp, platform, storefront, extras)  # type: ignore[arg-type]

    def _unknown(self, name: str) -> str:
        """The problem of an unknown field name; its suggestion worked out once (module docstring)."""
        known = _SUGGESTED.get(name)
        if known is not None:
            return known
        if self.suggestions_left <= 0:
            return _NOT_KNOWN
        self.suggestions_left -= 1
        problem = _unknown(name)
        if len(name) <= 64:  # a longer name is no field's near miss worth keeping
            if len(_SUGGESTED) >= SUGGESTIONS_CACHED:
                _SUGGESTED.clear()  # crude, and bounded: a flood of new names costs what it did uncached
            _SUGGESTED[name] = problem
        return problem

    def _name(self, value: object) -> tuple[str | None, Found]:
        if type(value) is not str:
            return _checked("event_name", _event_name, value)
        known = self.names.get(value)
        if known is None:
            known = self.names[value] = _checked("event_name", _event_name, value)
        return known

    def _site(self, platform: object, storefront: object) -> tuple[str | None, str | None, Found]:
        """Both parts checked (... for one not given), then the pair looked up in site_ids."""
        memo = type(platform) is str and type(storefront) is str
        if memo:
            known = self.sites.get((platform, storefront))  # type: ignore[arg-type]  # memo: both are str
            if known is not None:
                return known
        found: Found = []
        parts: list[str | None] = [None, None]
        for i, (name, value) in enumerate((("platform", platform), ("storefront", storefront))):
            if value is not ...:
                parts[i], problems = _checked(name, _site_part, value, name)
                found.extend(problems)
        if parts[0] is not None and parts[1] is not None:
            key = site_key(parts[0], parts[1])
            if key not in self.site_ids:
                found.append(("platform", _unconfigured(key, self.site_ids)))
        result = (parts[0], parts[1], found)
        if memo:
            self.sites[platform, storefront] = result  # type: ignore[index]  # memo: both are str
        return result


def _checked(name: str, check: Callable[..., str], *args: object) -> tuple[str | None, Found]:
    try:
        return check(*args), []
    except Bad as bad:
        return None, [(name, str(bad))]


def _unconfigured(key: str, site_ids: Mapping[str, str]) -> str:
    pairs = sorted(site_ids)
    listed = ", ".join(repr(p) for p in pairs[:20]) + (f" and {len(pairs) - 20} more" if len(pairs) > 20 else "")
    configured = f"configured pairs: {listed}" if pairs else "no pairs are configured"
    return f"platform/storefront pair {show(key)} has no site_id in MEASURE_SITE_IDS ({configured})"


_NOT_KNOWN = "is not a known field"


def _unknown(name: str) -> str:
    refused = NOT_PASSED_THROUGH.get(name.strip().lower())
    if refused:
        return f"is a Measurement API parameter the webhook does not take: {refused}"
    suggestion = _suggest(name)
    hint = f"; did you mean {suggestion!r}?" if suggestion else ""
    return f"{_NOT_KNOWN}{hint}"


def _suggest(name: str) -> str | None:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _KNOWN:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    import difflib  # only a mistyped field pays for it

    close = difflib.get_close_matches(key[:64], FIELDS, n=1, cutoff=0.7)
    return close[0] if close else None



# Field checks. Each takes the raw value, returns the normalised one, or raises Bad saying what
# is wrong with it (the caller adds which field and which event).


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _text(value: object, name: str) -> str:
    if type(value) is not str:  # the common case, a plain string, skips these type tests
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT_LIMIT:
            value = str(value)  # a numeric id is still an id
        elif isinstance(value, int) and not isinstance(value, bool):
            # JSON readers round integers this large to floats, so the id would not survive the trip.
            raise Bad("is an integer of 16 digits or more; send it as a string")
        elif not isinstance(value, str):
            raise Bad(f"must be a string, not {kind(value)}")
    text = value.strip()
    if not text:
        raise Bad("is empty")
    limit = MAX_FIELD_LENGTH[name]
    if len(text) > limit:
        raise Bad(f"is {len(text)} characters long; at most {limit} are allowed")
    # Printable ASCII has no control character: two cheap str tests spare most values the regex.
    if not (text.isascii() and text.isprintable()):
        bad = _CONTROL.search(text)
        if bad:
            raise Bad(f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}")
    return text


def _event_name(value: object) -> str:
    if _blank(value):
        raise Bad(f"is empty; leave it out to mean {DEFAULT_EVENT_NAME!r}")
    text = _text(value, "event_name")
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        raise Bad(f"contains the unprintable character U+{ord(bad):04X}")
    return text


def _site_part(value: object, name: str) -> str:
    text = _text(value, name).lower()
    if "/" in text:
        raise Bad(f"{show(text)} contains '/', which separates platform from storefront in MEASURE_SITE_IDS")
    return text


def _event_id(value: object) -> str:
    text = _text(value, "event_id")
    if not _EVENT_ID.fullmatch(text):
        raise Bad(f"{show(text)} may contain only letters, digits and . _ : -")
    return text


def _time_stamp(value: object, now: float, max_age: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise Bad("is empty")
        # isascii and isdigit: ASCII digits only, as [0-9]+ (isdigit alone takes any Unicode digit).
        if len(text) > _TIME_STAMP_DIGITS or not (text.isascii() and text.isdigit()):
            raise Bad(f"{show(text)} is not Unix seconds: send a string of digits such as '1724094783'")
        seconds = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < _TIME_STAMP_LIMIT:
            raise Bad("is out of range: Unix seconds are a positive integer such as 1724094783")
        seconds = value
    else:
        hint = " (whole seconds, e.g. int(time.time()))" if isinstance(value, float) else ""
        raise Bad(f"must be Unix seconds as an integer or a string of digits, not {kind(value)}{hint}")
    offset = seconds - now
    if offset > MAX_FUTURE or -offset > max_age:
        when = f"{duration(offset)} in the future" if offset > 0 else f"{duration(-offset)} in the past"
        raise Bad(
            f"{seconds} is {when}; it must be at most {duration(MAX_FUTURE)} in the future "
            f"and at most {duration(max_age)} in the past{_unit_hint(seconds)}"
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


def _decimal(value: object, name: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise Bad(f"{show(text)} is negative; it must be 0 or more")
        if not _DECIMAL.fullmatch(text):
            raise Bad(
                f"{show(text)} is not a decimal number such as '9.99': up to 15 digits, optionally a point "
                "and up to 8 more; no sign, exponent or thousands separator"
            )
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Bad(f"must be a decimal number such as 9.99, not {kind(value)}")
    if not math.isfinite(value):
        raise Bad("must be a finite number")
    if value < 0:
        raise Bad(f"is negative ({value}); it must be 0 or more")
    if value >= _INT_LIMIT:
        raise Bad(f"is too large; at most {_INT_LIMIT - 1}")
    if isinstance(value, int):
        return str(value)
    # Floats are inexact already (0.1 + 0.2): round to what a price or rating needs.
    exact = Decimal(repr(value)).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN).normalize()
    return format(exact, "f")


def _integer(value: object, name: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_FIELD_LENGTH[name] or not _DIGITS.fullmatch(text):
            raise Bad(f"{show(text)} is not a whole number of at most {MAX_FIELD_LENGTH[name]} digits")
        return str(int(text))
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"must be a whole number, not {kind(value)}")
    if not 0 <= value < _INT_LIMIT:
        raise Bad(f"must be a whole number from 0 to {_INT_LIMIT - 1}")
    return str(value)


def _letters(count: int) -> Callable[[object, str], str]:
    def check(value: object, name: str) -> str:
        if not isinstance(value, str):
            raise Bad(f"must be a string of {count} letters, not {kind(value)}")
        text = value.strip()
        if len(text) != count or not _LETTERS.fullmatch(text):
            raise Bad(f"{show(text)} is not {count} letters (such as {'USD' if count == 3 else 'US'!r})")
        return text.upper()

    return check


def _identifier(pattern: re.Pattern[str], what: str) -> Callable[[object, str], str]:
    """A device identifier's check: a string that matches `pattern`, within the field's length."""

    def check(value: object, name: str) -> str:
        if not isinstance(value, str):
            raise Bad(f"must be a string, not {kind(value)}")
        text = value.strip()
        if len(text) > MAX_FIELD_LENGTH[name] or not pattern.fullmatch(text):
            raise Bad(f"{show(text)} is not {what}, at most {MAX_FIELD_LENGTH[name]})")
        return text

    return check


_ad_id = _identifier(_AD_ID, "an advertising id (hex digits and dashes")
_vendor_id = _identifier(_VENDOR_ID, "a vendor id (letters, digits and dashes")


def _flag(value: object, name: str) -> str:
    # The SDKs send these as "0"/"1"; a JSON body may as well say true/false or 0/1.
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) and value in (0, 1):
        return str(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip()
    shown = show(value.strip()) if isinstance(value, str) else repr(value)
    raise Bad(f"{shown} is not a flag: send 1 (yes) or 0 (no)")


def _site_event_id(value: object, name: str) -> str:
    text = _integer(value, name)
    if text == "0":
        raise Bad("is 0; the ids of events defined in TUNE start at 1")
    return text


def _event_ref(value: object, name: str) -> str:
    text = _text(value, name)
    if not _REF.fullmatch(text):
        ref = _NOT_REF.sub("", text.lower())
        hint = f" (the ref of an event named {show(text)} is {show(ref)})" if ref else ""
        raise Bad(f"{show(text)} is not an event ref: a ref has only letters and digits{hint}")
    return text.lower()  # TUNE's refs are lower case: "Login2" is the event whose ref is login2


def _ref_conflicts(item: Mapping[str, object], extras: Mapping[str, str]) -> Found:
    """event_ref is the whole action: nothing else may say which event this is."""
    found: Found = []
    if "event_name" in item:
        found.append((EVENT_REF, "names the event itself (sent as action=<event_ref>); leave event_name out"))
    if "site_event_id" in extras:
        found.append((EVENT_REF, "and site_event_id both name the event; send one of them"))
    return found


# The check of each optional field (fields.OPTIONAL_FIELDS: the pass-through parameters and event_ref).
_PASSTHROUGH_CHECKS: dict[str, Callable[[object, str], str]] = dict.fromkeys(OPTIONAL_FIELDS, _text)
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
    fire_aid=_ad_id,
    ios_ifv=_vendor_id,
    ios_ad_tracking_disabled=_flag,
    google_ad_tracking_disabled=_flag,
    fire_ad_tracking_disabled=_flag,
    existing_user=_flag,
    is_paying_user=_flag,
    is_coppa=_flag,
    site_event_id=_site_event_id,
    event_ref=_event_ref,
)


