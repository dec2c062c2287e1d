"""The seed event and the helpers the tests of measure.events share: a raw event with changes, its
validation, its one problem, a body's error, and hypothesis strategies for raw events and JSON values.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from measure import events
from measure.events import FIELDS, BodyError, Event, InvalidEvents, Problem, parse_body, validate

FORM = "application/x-www-form-urlencoded"


JSON = "application/json"


SEED_TIME = 1724094783


NOW = SEED_TIME + 60


SITES = {"pc/steam": "2960", "ios/appstore": "2961"}


SEED_BODY = (
    b"user_id=1a23fd44c21f8l5r&event_name=game_open&ip=175.124.248.15"
    b"&time_stamp=1724094783&platform=pc&storefront=steam"
)


def raw_event(**changes: object) -> dict:
    event: dict = {
        "user_id": "1a23fd44c21f8l5r",
        "event_name": "game_open",
        "ip": "175.124.248.15",
        "time_stamp": str(SEED_TIME),
        "platform": "pc",
        "storefront": "steam",
    }
    for name, value in changes.items():
        if value is ...:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def check(*raw: dict, now: float = NOW, **kwargs: object) -> list[Event]:
    return validate(list(raw), site_ids=kwargs.pop("site_ids", SITES), now=now, **kwargs)  # type: ignore[arg-type]


def problems_of(*raw: dict, **kwargs: object) -> list[Problem]:
    with pytest.raises(InvalidEvents) as caught:
        check(*raw, **kwargs)
    return caught.value.problems


def only_problem(field: str, **changes: object) -> Problem:
    """The single problem of the seed event with `changes`, asserted to be about `field`."""
    problems = problems_of(raw_event(**changes))
    assert [p.field for p in problems] == [field], problems
    problem = problems[0]
    assert problem.index == 0
    assert field in str(problem)
    return problem


def body_error(body: bytes, content_type: str | None = JSON) -> BodyError:
    with pytest.raises(BodyError) as caught:
        parse_body(body, content_type)
    return caught.value


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)


json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


_text_ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), min_size=1, max_size=20)


_good = {
    "user_id": _text_ids | st.integers(-(10**6), 10**6),
    "event_name": st.sampled_from(["game_open", "Purchase", "Boss Defeated", "login"]) | _text_ids,
    "ip": st.sampled_from(["175.124.248.15", "8.8.8.8", "2001:4860::8888", "::ffff:1.1.1.1", " 1.0.0.1"]),
    "time_stamp": st.integers(NOW - 30 * 86400, NOW + 300) | st.integers(NOW - 86400, NOW).map(str),
    "event_id": st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True),
    "revenue": st.floats(0, 1e6) | st.decimals(0, 1e6, places=2).map(str),
    "rating": st.floats(0, 5),
    "quantity": st.integers(0, 100) | st.integers(0, 100).map(str),
    "level": st.integers(0, 100),
    "date1": st.integers(0, 2**32),
    "currency_code": st.sampled_from(["usd", "EUR", "krw"]),
    "country_code": st.sampled_from(["us", "KR"]),
    "ios_ifa": st.uuids().map(str),
    "google_aid": st.uuids().map(str),
}


_sites = st.sampled_from([("pc", "steam"), ("PC ", "Steam"), ("ios", "appstore")])


_mutations = st.tuples(st.sampled_from(["drop", "junk", "set"]), st.sampled_from([*FIELDS, "timestamp", ""]))


@st.composite
def raw_events(draw: st.DrawFn) -> dict:
    """Valid events with any extras, then a few fields dropped, made junk, or set (unknown names too)."""
    platform, storefront = draw(_sites)
    event = {"platform": platform, "storefront": storefront}
    for name in [*events.REQUIRED_FIELDS[:3], *draw(st.lists(st.sampled_from(list(_good)), max_size=4))]:
        event[name] = draw(_good.get(name, _text_ids))
    for action, name in draw(st.lists(_mutations, max_size=3)):
        if action == "drop":
            event.pop(name, None)
        else:
            event[name] = draw(json_values if action == "junk" else _good.get(name, _text_ids))
    return event
