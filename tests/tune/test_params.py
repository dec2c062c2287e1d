"""measure.tune.params: what an event becomes at the Measurement API."""

from __future__ import annotations

import pytest

from measure.events import Event, validate
from measure.tune.params import PREDEFINED_EVENTS, SESSION_EVENTS, action_for, to_params

SEED_TIME = 1724094783
SITES = {"pc/steam": "2960"}


def check(**changes: object) -> list[Event]:
    raw = {"user_id": "1a23fd44c21f8l5r", "event_name": "game_open", "ip": "175.124.248.15",
           "time_stamp": str(SEED_TIME), "platform": "pc", "storefront": "steam", **changes}
    return validate([raw], site_ids=SITES, now=SEED_TIME + 60)


def test_predefined_events_are_the_seventeen_of_the_design():
    assert PREDEFINED_EVENTS == tuple(
        "registration login add_to_wishlist add_to_cart added_payment_info reservation checkout_initiated "
        "purchase search content_view tutorial_complete level_achieved achievement_unlocked spent_credits "
        "invite rated share".split()
    )
    assert {"game_open", "session", "app_open", "open", "session_start"} == SESSION_EVENTS


@pytest.mark.parametrize("name", [*SESSION_EVENTS, "GAME_OPEN", "Session_Start"])
def test_session_events(name):
    assert action_for(name) == ("session", None)


@pytest.mark.parametrize("name", PREDEFINED_EVENTS)
def test_predefined_events_are_their_own_action_in_any_case(name):
    assert action_for(name) == (name, None)
    assert action_for(name.upper()) == (name, None)


@pytest.mark.parametrize("name", ["review_submitted", "Boss Defeated", "install", "Level-Up"])
def test_other_names_are_conversions_keeping_the_users_spelling(name):
    assert action_for(name) == ("conversion", name)


def test_params_of_a_custom_event_with_extras():
    [event] = check(event_name="Boss Defeated", revenue="4.99", currency_code="eur", level=7, event_id="b1")
    assert to_params(event, advertiser_id="877", site_id="2960") == {
        "action": "conversion",
        "site_event_name": "Boss Defeated",
        "advertiser_id": "877",
        "site_id": "2960",
        "sdk": "server",
        "response_format": "json",
        "user_id": "1a23fd44c21f8l5r",
        "device_ip": "175.124.248.15",
        "system_date": "1724094783",
        "transaction_id": "b1",
        "revenue": "4.99",
        "currency_code": "EUR",
        "level": "7",
    }


def test_params_of_a_predefined_event():
    [event] = check(event_name="Purchase")
    params = to_params(event, advertiser_id="1", site_id="2")
    assert params["action"] == "purchase"
    assert "site_event_name" not in params


def test_extras_never_override_the_request():
    event = Event("e", "game_open", "u", "8.8.8.8", 1, "pc", "steam", extras={"action": "x", "user_id": "v"})
    params = to_params(event, advertiser_id="1", site_id="2")
    assert (params["action"], params["user_id"]) == ("session", "u")


