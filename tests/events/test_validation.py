"""measure.events.validation: each field checked and normalised, unknown fields named, batches judged whole."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from measure.events import Event, InvalidEvents, parse_body, site_key, validate
from measure.tune.params import action_for, to_params
from tests.events.cases import (
    FORM,
    NOW,
    SEED_BODY,
    SEED_TIME,
    SITES,
    check,
    only_problem,
    problems_of,
    raw_event,
    raw_events,
)


def test_seed_form_call_parses_validates_and_maps_to_a_session_request():
    raw = parse_body(SEED_BODY, FORM)
    assert raw == [raw_event()]
    [event] = check(*raw)
    assert event == Event(
        event_id=event.event_id,
        event_name="game_open",
        user_id="1a23fd44c21f8l5r",
        ip="175.124.248.15",
        time_stamp=SEED_TIME,
        platform="pc",
        storefront="steam",
    )
    assert re.fullmatch(r"[0-9a-f]{32}", event.event_id)
    assert to_params(event, advertiser_id="877", site_id=SITES[site_key(event.platform, event.storefront)]) == {
        "action": "session",
        "advertiser_id": "877",
        "site_id": "2960",
        "sdk": "server",
        "response_format": "json",
        "user_id": "1a23fd44c21f8l5r",
        "device_ip": "175.124.248.15",
        "system_date": "1724094783",
        "transaction_id": event.event_id,
    }


@pytest.mark.parametrize("field", ["user_id", "ip", "time_stamp", "platform", "storefront"])
@pytest.mark.parametrize("value", ["", "   "])
def test_required_fields_may_not_be_blank(field, value):
    assert "empty" in only_problem(field, **{field: value}).problem


@pytest.mark.parametrize("field", ["user_id", "event_name", "ip", "time_stamp", "platform", "storefront", "event_id"])
@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "a boolean"), (None, "null"), ({"a": 1}, "an object"), (["a"], "an array"), (1.5, "a number")],
)
def test_wrong_types_name_the_field_and_the_type(field, value, kind):
    assert kind in only_problem(field, **{field: value}).problem


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("user_id", "a" * 257, "257 characters long; at most 256"),
        ("user_id", "a\x00b", "control character U+0000"),
        ("user_id", "a\nb", "control character U+000A"),
        ("user_id", "a\x85b", "control character U+0085"),
        ("user_id", "a\ud800b", "U+D800"),
        ("user_id", 10**15, "send it as a string"),
        ("event_name", "", "leave it out to mean 'game_open'"),
        ("event_name", "open\u200bgame", "unprintable character U+200B"),
        ("event_name", "x" * 129, "at most 128"),
        ("platform", "pc/steam", "contains '/'"),
        ("storefront", "s" * 33, "at most 32"),
        ("event_id", "has space", "only letters, digits and . _ : -"),
        ("event_id", "é", "only letters"),
        ("event_id", "x" * 129, "at most 128"),
    ],
)
def test_text_fields(field, value, fragment):
    assert fragment in only_problem(field, **{field: value}).problem


def test_text_fields_are_stripped_and_numbers_accepted_as_ids():
    [event] = check(raw_event(user_id=12345, platform=" PC ", storefront="Steam\t", event_name=" purchase "))
    assert (event.user_id, event.platform, event.storefront, event.event_name) == ("12345", "pc", "steam", "purchase")


def test_event_name_defaults_to_game_open():
    [event] = check(raw_event(event_name=...))
    assert event.event_name == "game_open"
    assert action_for(event.event_name) == ("session", None)


@pytest.mark.parametrize("value", [SEED_TIME, str(SEED_TIME), f" {SEED_TIME} ", NOW + 300, NOW - 30 * 86400])
def test_time_stamp_accepts_unix_seconds_within_the_window(value):
    assert check(raw_event(time_stamp=value))[0].time_stamp == int(str(value).strip())


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "is not Unix seconds"),
        ("-5", "is not Unix seconds"),
        ("1724094783.5", "is not Unix seconds"),
        ("١٧٢٤٠٩٤٧٨٣", "is not Unix seconds"),
        ("9" * 21, "is not Unix seconds"),
        (-5, "out of range"),
        (10**30, "out of range"),
        (1724094783.5, "int(time.time())"),
        (True, "a boolean"),
    ],
)
def test_time_stamp_malformed(value, fragment):
    assert fragment in only_problem("time_stamp", time_stamp=value).problem


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (NOW + 301, "in the future"),
        (NOW - 30 * 86400 - 1, "30 days in the past"),
        (0, "in the past"),
        (SEED_TIME * 1000, "look like milliseconds"),
        (str(SEED_TIME * 1000), "look like milliseconds"),
        (SEED_TIME * 10**6, "look like microseconds"),
    ],
)
def test_time_stamp_window_names_both_limits(value, fragment):
    problem = only_problem("time_stamp", time_stamp=value).problem
    assert fragment in problem
    assert "at most 5 minutes in the future" in problem
    assert "at most 30 days in the past" in problem


def test_time_stamp_max_age_is_configurable():
    [problem] = problems_of(raw_event(time_stamp=NOW - 7201), max_age=7200)
    assert "at most 2 hours in the past" in problem.problem
    assert check(raw_event(time_stamp=NOW - 7200), max_age=7200)


def test_unconfigured_platform_storefront_pair_names_the_pair_and_the_configured_pairs():
    problem = only_problem("platform", platform="ps5", storefront="PSN").problem
    assert "'ps5/psn'" in problem
    assert "'ios/appstore', 'pc/steam'" in problem
    [problem] = problems_of(raw_event(), site_ids={})
    assert "no pairs are configured" in problem.problem


@pytest.mark.parametrize(
    ("field", "given", "normalised"),
    [
        ("revenue", "9.99", "9.99"),
        ("revenue", " 0 ", "0"),
        ("revenue", 9.99, "9.99"),
        ("revenue", 0.1 + 0.2, "0.3"),
        ("revenue", 1e-8, "0.00000001"),
        ("revenue", 100.0, "100"),
        ("revenue", 10, "10"),
        ("rating", 4.5, "4.5"),
        ("quantity", "003", "3"),
        ("quantity", 2, "2"),
        ("level", "12", "12"),
        ("date1", 1724094783, "1724094783"),
        ("currency_code", "usd", "USD"),
        ("country_code", " kr ", "KR"),
        ("ios_ifa", "AAAAAA-BBBB-CCCC-11111-2222222222222", "AAAAAA-BBBB-CCCC-11111-2222222222222"),
        ("google_aid", "38400000-8cf0-11bd-b23e-10b96e40000d", "38400000-8cf0-11bd-b23e-10b96e40000d"),
        ("user_agent", "Mozilla/5.0 (Windows NT 10.0)", "Mozilla/5.0 (Windows NT 10.0)"),
        ("app_version", 3, "3"),
        ("attribute_sub5", " campaign 7 ", "campaign 7"),
    ],
)
def test_pass_through_fields_are_normalised_to_strings(field, given, normalised):
    [event] = check(raw_event(**{field: given}))
    assert event.extras == {field: normalised}
    assert to_params(event, advertiser_id="1", site_id="2")[field] == normalised


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("revenue", "-1", "negative"),
        ("revenue", -0.5, "negative"),
        ("revenue", "1e3", "not a decimal number"),
        ("revenue", "1,000.00", "not a decimal number"),
        ("revenue", "9.123456789", "not a decimal number"),
        ("revenue", "abc", "not a decimal number"),
        ("revenue", float("nan"), "finite"),
        ("revenue", float("inf"), "finite"),
        ("revenue", 1e15, "too large"),
        ("revenue", True, "a boolean"),
        ("revenue", None, "null"),
        ("rating", [], "an array"),
        ("quantity", "1.5", "not a whole number"),
        ("quantity", 1.5, "a number with a fraction"),
        ("quantity", -1, "from 0 to"),
        ("level", "x", "not a whole number"),
        ("date2", "1" * 16, "at most 15 digits"),
        ("currency_code", "US", "not 3 letters"),
        ("currency_code", "U5D", "not 3 letters"),
        ("currency_code", 840, "an integer"),
        ("country_code", "USA", "not 2 letters"),
        ("country_code", "ÜS", "not 2 letters"),
        ("ios_ifa", "not-an-id!", "not an advertising id"),
        ("google_aid", "a" * 65, "not an advertising id"),
        ("user_agent", "x" * 1025, "at most 1024"),
        ("attribute_sub1", "tab\there", "control character U+0009"),
        ("search_string", {}, "an object"),
        ("advertiser_ref_id", False, "a boolean"),
    ],
)
def test_pass_through_fields_refused(field, value, fragment):
    assert fragment in only_problem(field, **{field: value}).problem


def test_blank_pass_through_values_count_as_absent():
    [event] = check(raw_event(revenue="", currency_code="  ", event_id=""))
    assert event.extras == {}
    assert event.event_id == check(raw_event())[0].event_id


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("timestamp", "time_stamp"),
        ("userid", "user_id"),
        ("event", "event_name"),
        ("User_ID", "user_id"),
        ("time-stamp", "time_stamp"),
        ("revenu", "revenue"),
        ("store", "storefront"),
        ("currency", "currency_code"),
        ("attribute_sub_1", "attribute_sub1"),
    ],
)
def test_unknown_fields_suggest_the_known_one(given, suggested):
    problem = only_problem(given, **{given: "x"}).problem
    assert problem == f"is not a known field; did you mean {suggested!r}?"


def test_unknown_field_without_a_close_match():
    assert only_problem("zzz", zzz="1").problem == "is not a known field"


def test_an_event_with_too_many_keys_is_one_problem():
    [problem] = problems_of(raw_event(**{f"k{i}": "1" for i in range(100)}))
    assert problem.field == "event"
    assert "106 fields" in problem.problem


def test_events_must_be_objects():
    [problem] = problems_of("not an event")  # type: ignore[arg-type]
    assert (problem.index, problem.field) == (0, "event")
    assert "must be an object, not a string" in problem.problem


def test_a_batch_lists_every_problem_of_every_event_by_index():
    batch = [
        raw_event(),
        raw_event(ip="10.0.0.1", timestamp="1"),
        raw_event(user_id="b"),
        raw_event(user_id=..., time_stamp="soon", revenue="-2"),
    ]
    problems = problems_of(*batch)
    assert [(p.index, p.field) for p in problems] == [
        (1, "ip"),
        (1, "timestamp"),
        (3, "user_id"),
        (3, "time_stamp"),
        (3, "revenue"),
    ]


def test_a_valid_batch_keeps_its_order():
    assert [e.user_id for e in check(*(raw_event(user_id=str(i)) for i in range(5)))] == ["0", "1", "2", "3", "4"]


def test_an_exact_repeat_in_a_batch_is_kept_once():
    repeated = check(raw_event(), raw_event(user_id="b"), raw_event(platform="PC"))
    assert [e.user_id for e in repeated] == ["1a23fd44c21f8l5r", "b"]
    given = check(raw_event(event_id="e1"), raw_event(event_id="e1"))
    assert len(given) == 1


def test_one_event_id_for_two_different_events_is_refused():
    [problem] = problems_of(raw_event(event_id="e1"), raw_event(event_id="e2"), raw_event(event_id="e1", user_id="b"))
    assert (problem.index, problem.field) == (2, "event_id")
    assert "also the id of event 0" in problem.problem


def test_validate_of_nothing_is_nothing():
    assert validate([], site_ids=SITES) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_events(), max_size=4))
@example([raw_event(event_id=None), raw_event(event_id=" "), raw_event(event_id=" x ")])
@example([raw_event(ip="::ffff:1.1.1.1"), raw_event(ip=" 8.8.8.8"), raw_event(ip="08.8.8.8"), raw_event(ip="10.0.0.1")])
@example([raw_event(time_stamp=" 0001724094783"), raw_event(time_stamp=True), raw_event(time_stamp=SEED_TIME)])
@example([raw_event(platform="PC "), raw_event(platform="pc/x"), raw_event(platform=1), raw_event(storefront="")])
@example([raw_event(event_name=None), raw_event(event_name=" "), raw_event(event_name="Boss\u2028"), raw_event(
    event_name=...)])
@example([raw_event(user_id=12), raw_event(user_id=10**16), raw_event(user_id="a\x00"), raw_event(user_id="é\u00a0")])
@example([raw_event(revenue="", quantity="007", currency_code="usd", timestamp=1), raw_event(revenue=None)])
@example([raw_event(), raw_event(event_id="abc", revenue="9.99"), raw_event(event_name=..., user_id=7)])
def test_validate_raises_only_invalid_events_and_produces_str_params(batch):
    try:
        produced = validate(batch, site_ids=SITES, now=NOW)
    except InvalidEvents as error:
        assert error.problems
        for problem in error.problems:
            assert problem.index is not None and 0 <= problem.index < len(batch)
            assert problem.field and problem.problem
        json.dumps(error.to_dict())
        return
    for event in produced:
        params = to_params(event, advertiser_id="877", site_id=SITES[site_key(event.platform, event.storefront)])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
        # Normalisation is idempotent: a published event validates to itself.
        assert validate([event.to_dict()], site_ids=SITES, now=NOW) == [event]


# --- the seed's and TUNE's SDKs' session/event parameters (issue 27) ---------------------------------


@pytest.mark.parametrize(
    ("field", "given", "normalised"),
    [
        # seed 004's Python/Java/PHP examples, as written
        ("ios_ifv", "ZZZZZZ-BBBB-CCCC-11111-2222222222222", "ZZZZZZ-BBBB-CCCC-11111-2222222222222"),
        ("ios_ad_tracking_disabled", "0", "0"),
        ("device_brand", "Apple", "Apple"),
        ("device_model", "iPhone5,2", "iPhone5,2"),
        ("device_carrier", "Verizon", "Verizon"),
        ("country_code", "US", "US"),
        # flags as a JSON body writes them
        ("ios_ad_tracking_disabled", True, "1"),
        ("google_ad_tracking_disabled", False, "0"),
        ("fire_ad_tracking_disabled", 1, "1"),
        ("existing_user", " 1 ", "1"),
        ("is_paying_user", 0, "0"),
        ("fire_aid", "df07c7dc-cea7-4a89-b328-810ff5acb15d", "df07c7dc-cea7-4a89-b328-810ff5acb15d"),
        ("site_event_id", "0012", "12"),
        ("site_event_id", 7, "7"),
        ("event_ref", "Login2", "login2"),
    ],
)
def test_session_and_event_parameters_pass_under_their_own_names(field, given, normalised):
    [event] = check(raw_event(event_name=..., **{field: given}))
    assert event.extras == {field: normalised}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("ios_ad_tracking_disabled", "yes", "not a flag: send 1 (yes) or 0 (no)"),
        ("google_ad_tracking_disabled", 2, "not a flag"),
        ("existing_user", "true", "not a flag"),
        ("ios_ifv", "ZZ ZZ", "not a vendor id"),
        ("ios_ifv", "Z" * 65, "not a vendor id"),
        ("fire_aid", "ZZZZ", "not an advertising id"),
        ("site_event_id", "0", "start at 1"),
        ("site_event_id", "login2", "not a whole number"),
        ("event_ref", "Login 2", "the ref of an event named 'Login 2' is 'login2'"),
        ("event_ref", "--", "a ref has only letters and digits"),
    ],
)
def test_session_and_event_parameters_refused(field, value, fragment):
    assert fragment in only_problem(field, event_name=..., **{field: value}).problem


def test_event_ref_is_the_whole_action_so_nothing_else_may_name_the_event():
    assert "leave event_name out" in only_problem("event_ref", event_ref="login2", event_name="login").problem
    problem = only_problem("event_ref", event_name=..., event_ref="login2", site_event_id="2").problem
    assert "send one of them" in problem


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("ios_ad_tracking", "the opposite of ios_ad_tracking_disabled"),
        ("action", "send event_ref"),
        ("site_event_name", "send the name as event_name"),
        ("platform_aid", "send the one of your store"),
        ("sdk", "measure sets it itself"),
        ("sdk_retry_attempt", "bookkeeping"),
        ("user_email_sha256", "personal data"),
        ("publisher_id", "attributes the event to a publisher"),
    ],
)
def test_a_real_api_parameter_that_is_refused_says_why_and_never_guesses_another(given, fragment):
    problem = only_problem(given, **{given: "1"}).problem
    assert problem.startswith("is a Measurement API parameter the webhook does not take: ")
    assert fragment in problem and "did you mean" not in problem


def test_the_seed_s_own_parameters_are_no_longer_answered_with_another_name():
    # Before issue 27: ios_ifv got "did you mean 'ios_ifa'?", site_event_id "did you mean 'event_id'?".
    [event] = check(raw_event(event_name=..., ios_ifv="ZZZZZZ-BBBB", site_event_id="3", existing_user="0",
                              google_ad_tracking_disabled="1", ios_ad_tracking_disabled="0"))
    assert set(event.extras) == {"ios_ifv", "site_event_id", "existing_user", "google_ad_tracking_disabled",
                                 "ios_ad_tracking_disabled"}
