"""measure.tune.params: what an event becomes at the Measurement API."""

from __future__ import annotations

import pytest

from measure.events import Event, validate
from measure.tune.params import (
    PREDEFINED_EVENTS,
    SESSION_EVENTS,
    action_for,
    action_params,
    expected_types,
    to_params,
    type_mismatch,
)

SEED_TIME = 1724094783
SITES = {"pc/steam": "2960"}


def check(**changes: object) -> list[Event]:
    raw = {"user_id": "1a23fd44c21f8l5r", "event_name": "game_open", "ip": "175.124.248.15",
           "time_stamp": str(SEED_TIME), "platform": "pc", "storefront": "steam", **changes}
    raw = {name: value for name, value in raw.items() if value is not ...}  # ... leaves a field out
    return validate([raw], site_ids=SITES, now=SEED_TIME + 60)


def test_predefined_events_are_the_seventeen_of_the_design():
    assert PREDEFINED_EVENTS == tuple(
        "registration login add_to_wishlist add_to_cart added_payment_info reservation checkout_initiated "
        "purchase search content_view tutorial_complete level_achieved achievement_unlocked spent_credits "
        "invite rated share".split()
    )
    assert {"game_open", "session", "app_open", "open", "session_start"} == SESSION_EVENTS


@pytest.mark.parametrize("name", [*sorted(SESSION_EVENTS), "GAME_OPEN", "Session_Start"])
def test_session_events(name):
    assert action_for(name) == ("session", None)


@pytest.mark.parametrize("name", PREDEFINED_EVENTS)
def test_predefined_events_are_their_own_action_in_any_case(name):
    assert action_for(name) == (name, None)
    assert action_for(name.upper()) == (name, None)


def test_install_is_the_seed_s_action_install():
    # Seed 004's Python and Java examples: params.put("action", "install").
    assert action_for("install") == ("install", None)
    assert action_for(" Install ") == ("install", None)
    [event] = check(event_name="install")
    assert to_params(event, advertiser_id="877", site_id="2960")["action"] == "install"


@pytest.mark.parametrize("name", ["review_submitted", "Boss Defeated", "installed", "Level-Up"])
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




def test_a_site_event_id_is_a_conversion_naming_the_event_by_its_id():
    [event] = check(site_event_id="7")
    params = to_params(event, advertiser_id="877", site_id="2960")
    assert (params["action"], params["site_event_id"]) == ("conversion", "7")
    assert "site_event_name" not in params  # the default game_open is no event's name


def test_a_site_event_id_takes_a_custom_name_along_and_drops_a_predefined_one():
    assert action_params("Boss Defeated", {"site_event_id": "7"}) == {
        "action": "conversion", "site_event_id": "7", "site_event_name": "Boss Defeated"}
    assert action_params("purchase", {"site_event_id": "7"}) == {"action": "conversion", "site_event_id": "7"}


def test_an_event_ref_is_the_action_itself_and_not_a_parameter():
    # The events guide: "Your app would have to call action=login2".
    [event] = check(event_ref="Login2", event_name=...)
    params = to_params(event, advertiser_id="877", site_id="2960")
    assert params["action"] == "login2"
    assert "event_ref" not in params and "site_event_name" not in params


def test_opt_out_flags_and_vendor_ids_travel_with_the_event():
    [event] = check(ios_ifa="AAAAAA-BBBB-CCCC-11111-2222222222222", ios_ad_tracking_disabled=True,
                    ios_ifv="ZZZZZZ-BBBB-CCCC-11111-2222222222222", google_aid="cd-34", google_ad_tracking_disabled=0,
                    existing_user="1")
    params = to_params(event, advertiser_id="877", site_id="2960")
    assert {k: params[k] for k in ("ios_ad_tracking_disabled", "google_ad_tracking_disabled", "existing_user",
                                   "ios_ifv")} == {
        "ios_ad_tracking_disabled": "1", "google_ad_tracking_disabled": "0", "existing_user": "1",
        "ios_ifv": "ZZZZZZ-BBBB-CCCC-11111-2222222222222"}


@pytest.mark.parametrize(("params", "answered", "mismatch"), [
    ({"action": "purchase"}, "purchase", False),
    ({"action": "purchase"}, "login", True),  # the guide's first conflict
    ({"action": "conversion", "site_event_name": "x"}, "conversion", False),
    ({"action": "conversion", "site_event_id": "2"}, "login", True),  # the second conflict
    ({"action": "session"}, "open", False),  # "sessions (installs and opens)"
    ({"action": "session"}, "install", False),
    ({"action": "session"}, "purchase", True),
    ({"action": "install"}, "Install", False),
    ({"action": "login2"}, "login", False),  # a ref names its event, whatever its type
    ({"action": "purchase"}, None, False),
])
def test_a_type_mismatch_is_a_resolved_type_the_action_does_not_expect(params, answered, mismatch):
    assert type_mismatch(params, answered) is mismatch


def test_only_a_ref_has_no_expected_type():
    assert expected_types("login2") is None
    assert all(expected_types(name) for name in (*PREDEFINED_EVENTS, "session", "install", "conversion"))
