"""measure.events.ids: the id of an event sent without one, stable across retries and normalisation."""

from __future__ import annotations

import re

import pytest

from measure.events import derive_event_id, parse_body
from measure.tune.params import to_params
from tests.events.cases import FORM, NOW, SEED_BODY, SEED_TIME, check, raw_event


def test_seed_call_retried_later_is_the_same_request():
    first = check(*parse_body(SEED_BODY, FORM), now=NOW)[0]
    retry = check(*parse_body(SEED_BODY, FORM), now=NOW + 3600)[0]
    assert to_params(first, advertiser_id="1", site_id="2") == to_params(retry, advertiser_id="1", site_id="2")


def test_a_given_event_id_is_kept():
    assert check(raw_event(event_id="tele:2024-08-19.42_a"))[0].event_id == "tele:2024-08-19.42_a"


def test_derived_ids_are_deterministic_and_survive_normalisation():
    [event] = check(raw_event())
    same = [
        raw_event(),
        raw_event(time_stamp=SEED_TIME),
        raw_event(platform=" PC", storefront="STEAM "),
        raw_event(ip="::ffff:175.124.248.15"),
        raw_event(event_name=...),
        raw_event(revenue=""),
    ]
    for raw in same:
        assert check(raw)[0].event_id == event.event_id, raw
    assert derive_event_id(event.to_dict()) == event.event_id


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "1a23fd44c21f8l5s"},
        {"event_name": "login"},
        {"event_name": "Game_Open"},
        {"ip": "175.124.248.16"},
        {"time_stamp": str(SEED_TIME + 1)},
        {"platform": "ios", "storefront": "appstore"},
        {"revenue": "1"},
        {"attribute_sub1": "a"},
    ],
)
def test_derived_ids_differ_when_a_field_differs(change):
    assert check(raw_event(**change))[0].event_id != check(raw_event())[0].event_id


def test_derive_event_id_is_a_stable_function_of_the_fields():
    fields = {"user_id": "u", "time_stamp": 1, "event_name": "game_open"}
    assert derive_event_id(fields) == derive_event_id(dict(reversed(fields.items())))
    assert derive_event_id(fields) == derive_event_id({**fields, "time_stamp": "1"})
    assert derive_event_id(fields) == derive_event_id({**fields, "event_id": "ignored"})
    assert re.fullmatch(r"[0-9a-f]{32}", derive_event_id(fields))
