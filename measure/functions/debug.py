"""What `POST /measure/debug` answers: what each event of a body would become, before anything is sent.

For each valid event: the id /measure would give it, the exact Measurement API parameters `send`
would sign and POST for it (built by measure.tune.params.to_params, the function delivery uses;
no key, signature or timestamp, which belong to the moment of sending), and warnings about what
is valid but probably a mistake. `problems` are what /measure would refuse, in its shape.

Warnings, each with the field it is about:
- event_name: a pre-defined event written in another case ("Purchase"), or a custom name that is
  a near miss of one ("purchased", "log_in"), which would count as a custom conversion instead
  (the answer also names event_ref, for a name that is the ref of an event defined in TUNE:
  "login2"); or a session/pre-defined name sent with site_event_id, which it is not sent with;
- event_ref: a ref that is one of the API's own actions ("login"), better sent as event_name;
- an advertising id (ios_ifa, google_aid, fire_aid) sent while its *_ad_tracking_disabled is 1:
  the user limited ad tracking;
- time_stamp: more than STALE_AFTER old, or more than AHEAD_AFTER ahead of this server's clock;
- platform: the pair written with another case or surrounding spaces than the configured key;
- a pass-through parameter the Measurement API does not document (tune.params.API_PARAMETERS);
- event: an exact repeat of an earlier event of the batch, which /measure publishes once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from measure import events
from measure.config import Config
from measure.events.problems import duration
from measure.tune.params import (
    AD_TRACKING_FLAGS,
    API_PARAMETERS,
    INSTALL_EVENT,
    PREDEFINED_EVENTS,
    REQUEST_PARAMETERS,
    RESERVED_ACTIONS,
    SESSION_EVENTS,
    action_for,
)
from measure.tune.params import to_params as request_of

# Named tolerances of the time-stamp warning: valid up to DEFAULT_MAX_AGE old and MAX_FUTURE ahead,
# but a day-old event or a clock a minute fast usually means a queue or a clock to look at.
STALE_AFTER = 86400
AHEAD_AFTER = 60
# How alike (difflib's ratio) a custom event name must be to a pre-defined one to be a near miss.
NEAR_MISS = 0.8
NEAR_MISSES_CACHED = 1024
_NEAR_MISSES: dict[str, str | None] = {}

_NAMED = (*PREDEFINED_EVENTS, INSTALL_EVENT, *sorted(SESSION_EVENTS))
_SEPARATORS = re.compile(r"[\s_-]+")
_SQUASHED = {_SEPARATORS.sub("", name): name for name in _NAMED}
_KNOWN_PARAMETERS = API_PARAMETERS | frozenset(REQUEST_PARAMETERS)
_ACTION_NAMES = ("site_event_id", "event_ref")
_NOT_REF = re.compile(r"[^0-9a-z]+")


def report(raw: list[dict[str, Any]], config: Config, now: float) -> dict[str, Any]:
    """The debug answer for the raw events of one body."""
    checked, repeats, problems = events.check(raw, site_ids=config.site_ids, max_age=config.event_max_age, now=now)
    by_index = dict(checked)
    for index, earlier in repeats.items():
        by_index[index] = by_index[earlier]
    answers = []
    for index in sorted(by_index):
        event = by_index[index]
        request = request_of(event, advertiser_id=config.advertiser_id,
                             site_id=config.site_id(event.platform, event.storefront) or "")
        found = warnings(raw[index], event, request, now=now)
        if index in repeats:
            found.append(_warning("event", f"is an exact repeat of event {repeats[index]}; /measure publishes it once"))
        answers.append({"index": index, "event_id": event.event_id, "request": request, "warnings": found})
    return {"valid": not problems, "events": answers, "problems": [p.to_dict() for p in problems]}


def body_report(error: events.BodyError) -> dict[str, Any]:
    """The debug answer for a body /measure would refuse as malformed (400): no events, its problem."""
    return {"valid": False, "events": [], "problems": [p.to_dict() for p in error.problems]}


def warnings(raw: Mapping[str, object], event: events.Event, request: Mapping[str, str], *,
             now: float) -> list[dict[str, Any]]:
    """What is valid about one event but probably a mistake, each as {"field", "warning"}."""
    found = []
    if not any(field in event.extras for field in _ACTION_NAMES):
        name = _event_name(event.event_name)
        if name:
            found.append(_warning("event_name", name))
    elif "site_event_id" in event.extras and "event_name" in raw and "site_event_name" not in request:
        found.append(_warning("event_name", f"{event.event_name!r} is not sent: site_event_id calls a custom event "
                                            f"(action=conversion), which a session or pre-defined name cannot be"))
    ref = event.extras.get("event_ref")
    if ref in RESERVED_ACTIONS:
        found.append(_warning("event_ref", f"{ref!r} is the Measurement API's own action, not an event's ref; "
                                           f"send event_name={ref!r} instead"))
    for ad_id, flag in AD_TRACKING_FLAGS.items():
        if ad_id in request and request.get(flag) == "1":
            found.append(_warning(ad_id, f"is sent while {flag}=1: the user limited ad tracking. TUNE is told so "
                                         "with the id; leave the id out unless your privacy policy allows sending it"))
    age = now - event.time_stamp
    if age > STALE_AFTER:
        found.append(_warning("time_stamp", f"is {duration(age)} old; it is attributed as of then (system_date)"
                                            ", so check the telemetry server's queue or clock"))
    elif -age > AHEAD_AFTER:
        found.append(_warning("time_stamp", f"is {duration(-age)} ahead of this server's clock; "
                                            "check the telemetry server's clock"))
    pair = _site_spelling(raw, event)
    if pair:
        found.append(_warning("platform", pair))
    for parameter in request:
        if parameter not in _KNOWN_PARAMETERS:
            found.append(_warning(parameter, "is not a parameter the Measurement API documents; "
                                             "it is sent, and probably ignored"))
    return found


def _event_name(name: str) -> str | None:
    action, custom = action_for(name)
    if custom is None:
        if name != name.strip().lower():
            sent = "a session (action=session)" if action == "session" else f"the pre-defined event {action!r}"
            return (f"{name!r} is sent as {sent}: names match whatever their case; "
                    f"write it {name.strip().lower()!r} to say so")
        return None
    key = name.strip().lower()
    near = _near_miss(key)
    if near is None:
        return None
    advice = (f"{name!r} is sent as a custom event (action=conversion, site_event_name={name!r}), "
              f"not as the pre-defined {near!r}; send event_name={near!r} if that is what it is")
    ref = _NOT_REF.sub("", key)
    if not ref:
        return advice
    # The events guide: a second event of a type ("Login2", type login) is reached only by its ref.
    return f"{advice}, or event_ref={ref!r} (action={ref}) if it is an event of yours defined in TUNE"


def _near_miss(key: str) -> str | None:
    """The pre-defined name a custom one is a near miss of, worked out once per distinct name
    (up to NEAR_MISSES_CACHED remembered): difflib is most of a debug call's cost otherwise."""
    if key in _NEAR_MISSES:
        return _NEAR_MISSES[key]
    near = _SQUASHED.get(_SEPARATORS.sub("", key))
    if near is None:
        import difflib  # receive's cold start does not pay for it; a debug call with a custom name does

        close = difflib.get_close_matches(_SEPARATORS.sub("_", key)[:64], _NAMED, n=1, cutoff=NEAR_MISS)
        near = close[0] if close else None
    if len(_NEAR_MISSES) >= NEAR_MISSES_CACHED:
        _NEAR_MISSES.clear()  # bounded; a flood of new names costs what it did uncached
    _NEAR_MISSES[key] = near
    return near


def _site_spelling(raw: Mapping[str, object], event: events.Event) -> str | None:
    given = raw.get("platform"), raw.get("storefront")
    if given == (event.platform, event.storefront):
        return None
    shown = "/".join(str(part) for part in given)
    return (f"{shown!r} is written differently from the configured pair '{event.platform}/{event.storefront}' "
            "(case and surrounding spaces are ignored, so it counts as that pair); send it as configured")


def _warning(field: str, warning: str) -> dict[str, Any]:
    return {"field": field, "warning": warning}
