"""measure.events.event: the Event as published, immutable, and its round trip through a message."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from measure.events import PASSTHROUGH_FIELDS, Event, InvalidEvents, validate
from measure.tune.params import to_params
from tests.events.cases import NOW, SEED_TIME, SITES, check, raw_event, raw_events


def test_event_is_immutable_and_hashable():
    [event] = check(raw_event(revenue="1"))
    with pytest.raises(AttributeError):
        event.user_id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.extras["revenue"] = "2"  # type: ignore[index]
    assert len({event, check(raw_event(revenue="1"))[0]}) == 1


def test_to_dict_is_flat_and_json_safe():
    [event] = check(raw_event(revenue=9.99, country_code="us"))
    d = event.to_dict()
    assert d == {
        "event_id": event.event_id,
        "event_name": "game_open",
        "user_id": "1a23fd44c21f8l5r",
        "ip": "175.124.248.15",
        "time_stamp": SEED_TIME,
        "platform": "pc",
        "storefront": "steam",
        "revenue": "9.99",
        "country_code": "US",
    }
    assert Event.from_dict(json.loads(json.dumps(d))) == event


@pytest.mark.parametrize(
    ("message", "field", "fragment"),
    [
        ("not a dict", "event", "must be an object"),
        ({"event_id": "e"}, "user_id", "is missing"),
        ({**check(raw_event())[0].to_dict(), "time_stamp": "1724094783"}, "time_stamp", "must be an integer"),
        ({**check(raw_event())[0].to_dict(), "time_stamp": True}, "time_stamp", "must be an integer"),
        ({**check(raw_event())[0].to_dict(), "user_id": 5}, "user_id", "must be a string"),
        ({**check(raw_event())[0].to_dict(), "revenue": 1.5}, "revenue", "must be a string"),
        ({**check(raw_event())[0].to_dict(), "bogus": "1"}, "bogus", "not a known field"),
    ],
)
def test_from_dict_refuses_malformed_messages(message, field, fragment):
    with pytest.raises(InvalidEvents) as caught:
        Event.from_dict(message)
    assert field in [p.field for p in caught.value.problems]
    assert any(fragment in p.problem for p in caught.value.problems if p.field == field)


def test_from_dict_does_not_judge_age():
    old = Event("e", "game_open", "u", "8.8.8.8", 1, "pc", "steam")
    assert Event.from_dict(old.to_dict()) == old


def _parse_all(events_raw: list[dict]) -> list[Event]:
    try:
        return validate(events_raw, site_ids=SITES, now=NOW)
    except InvalidEvents:
        return []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events())
def test_to_dict_from_dict_round_trip_through_json(raw):
    for event in _parse_all([raw]):
        message = json.loads(json.dumps(event.to_dict()))
        assert Event.from_dict(message) == event


@settings(deadline=None)
@given(
    st.builds(
        Event,
        event_id=st.text(max_size=10),
        event_name=st.text(max_size=10),
        user_id=st.text(max_size=10),
        ip=st.text(max_size=10),
        time_stamp=st.integers(0, 2**40),
        platform=st.text(max_size=5),
        storefront=st.text(max_size=5),
        extras=st.dictionaries(st.sampled_from(PASSTHROUGH_FIELDS), st.text(max_size=10)),
    )
)
def test_any_event_round_trips_and_maps_to_str_params(event):
    assert Event.from_dict(event.to_dict()) == event
    params = to_params(event, advertiser_id="1", site_id="2")
    assert all(isinstance(v, str) for v in params.values())


def test_an_event_by_ref_or_by_id_round_trips_through_a_message():
    # event_ref is no Measurement API parameter, but it is part of the event: a retry read back
    # from Pub/Sub must still call action=<ref>.
    [by_ref] = check(raw_event(event_name=..., event_ref="Login2", ios_ad_tracking_disabled=True))
    [by_id] = check(raw_event(site_event_id=7, existing_user=0))
    for event in (by_ref, by_id):
        assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    assert Event.from_dict(by_ref.to_dict()).extras == {"ios_ad_tracking_disabled": "1", "event_ref": "login2"}
    assert to_params(Event.from_dict(by_ref.to_dict()), advertiser_id="1", site_id="2")["action"] == "login2"
