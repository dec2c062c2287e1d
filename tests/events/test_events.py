"""measure.events: what the webhook accepts, how it normalises it, and what send makes of it."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from measure import events
from measure.events import (
    FIELDS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_FIELD_LENGTH,
    PASSTHROUGH_FIELDS,
    BodyError,
    Event,
    InvalidEvents,
    Problem,
    derive_event_id,
    parse_body,
    site_key,
    validate,
)
from measure.tune.params import action_for, to_params

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


# ---------------------------------------------------------------------------------------------
# The seed's call


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


def test_seed_call_retried_later_is_the_same_request():
    first = check(*parse_body(SEED_BODY, FORM), now=NOW)[0]
    retry = check(*parse_body(SEED_BODY, FORM), now=NOW + 3600)[0]
    assert to_params(first, advertiser_id="1", site_id="2") == to_params(retry, advertiser_id="1", site_id="2")


# ---------------------------------------------------------------------------------------------
# parse_body: content types


@pytest.mark.parametrize(
    "content_type",
    [FORM, f"{FORM}; charset=UTF-8", "Application/X-WWW-Form-Urlencoded", f'{FORM};charset="utf-8"'],
)
def test_form_content_types(content_type):
    assert parse_body(SEED_BODY, content_type) == [raw_event()]


def test_form_keeps_blank_values_and_decodes_escapes():
    assert parse_body(b"user_id=&app_name=My+Game%21&attribute_sub1=%C3%A9", FORM) == [
        {"user_id": "", "app_name": "My Game!", "attribute_sub1": "é"}
    ]


def test_form_key_given_twice_is_named():
    error = body_error(b"user_id=a&ip=1.1.1.1&user_id=b", FORM)
    assert (error.status, error.field) == (400, "user_id")
    assert "2 times" in error.problem


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"user_id", "not valid form encoding"),
        (b"a=1&&b=2", "not valid form encoding"),
        (b"user_id=%ff", "percent-escape that is not valid UTF-8"),
        (b"user_id=\xff", "not valid UTF-8"),
        (b"&".join(b"f%d=1" % i for i in range(100)), "form fields"),
    ],
)
def test_malformed_form_bodies(body, fragment):
    error = body_error(body, FORM)
    assert (error.status, error.field) == (400, "body")
    assert fragment in error.problem


def test_json_object_and_array():
    assert parse_body(json.dumps(raw_event()).encode(), JSON) == [raw_event()]
    batch = [raw_event(user_id="a"), raw_event(user_id="b", revenue=9.99, quantity=2)]
    assert parse_body(json.dumps(batch).encode(), "application/json; charset=utf-8") == batch


def test_json_byte_order_mark_is_tolerated():
    assert parse_body(b"\xef\xbb\xbf" + json.dumps(raw_event()).encode(), JSON) == [raw_event()]


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
def test_ndjson_one_object_per_line_blank_lines_skipped(content_type):
    lines = [json.dumps(raw_event(user_id=str(i))) for i in range(3)]
    body = ("\n" + lines[0] + "\r\n\n  \n" + lines[1] + "\n" + lines[2] + "\n").encode()
    assert parse_body(body, content_type) == [raw_event(user_id=str(i)) for i in range(3)]


def test_ndjson_errors_name_the_line():
    body = (json.dumps(raw_event()) + "\n\n{not json}\n").encode()
    error = body_error(body, "application/x-ndjson")
    assert error.status == 400
    assert error.problem.startswith("line 3: is not valid JSON")
    error = body_error(b'{"a": "1"}\n[1]\n', "application/x-ndjson")
    assert "line 2" in error.problem and "one JSON object" in error.problem
    error = body_error(b'{"a": "1"}\n{"a": "1", "a": "2"}\n', "application/x-ndjson")
    assert (error.field, error.problem.split(":")[0]) == ("a", "line 2")


def test_ndjson_only_blank_lines_is_no_events():
    error = body_error(b"\n \n\t\n", "application/x-ndjson")
    assert error.status == 400


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        (None, "is missing"),
        ("", "is missing"),
        ("text/plain", "'text/plain' is not supported"),
        ("multipart/form-data; boundary=x", "is not supported"),
        ("application/json; charset=latin-1", "charset 'latin-1'"),
        (f"{FORM}; charset=utf-16", "charset 'utf-16'"),
    ],
)
def test_unsupported_content_types_are_415_naming_the_supported_ones(content_type, fragment):
    error = body_error(b"{}", content_type)
    assert (error.status, error.field) == (415, "Content-Type")
    assert fragment in error.problem
    if "charset" not in fragment:
        for supported in (FORM, JSON, "application/x-ndjson"):
            assert supported in error.problem


@pytest.mark.parametrize("content_type", [FORM, JSON, "application/x-ndjson"])
@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_empty_body_is_400(content_type, body):
    error = body_error(body, content_type)
    assert (error.status, error.field) == (400, "body")
    assert "empty" in error.problem


def test_empty_array_is_no_events():
    error = body_error(b"[]")
    assert (error.status, error.field) == (400, "body")
    assert "no events" in error.problem


def test_batch_limit():
    assert len(parse_body(json.dumps([{"user_id": "u"}] * MAX_BATCH).encode(), JSON)) == MAX_BATCH
    error = body_error(json.dumps([{"user_id": "u"}] * (MAX_BATCH + 1)).encode())
    assert error.status == 413
    assert str(MAX_BATCH) in error.problem
    lines = b"\n".join([b'{"user_id": "u"}'] * (MAX_BATCH + 1))
    assert body_error(lines, "application/x-ndjson").status == 413


def test_body_size_limit():
    error = body_error(b" " * (MAX_BODY_BYTES + 1))
    assert (error.status, error.field) == (413, "body")
    assert str(MAX_BODY_BYTES) in error.problem


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b'{"user_id": "a", "user_id": "b"}', "user_id", "appears twice"),
        (b'[{"ip": "1"}, {"ip": "1", "ip": "2"}]', "ip", "appears twice"),
        (b'{"revenue": NaN}', "body", "NaN"),
        (b'{"revenue": Infinity}', "body", "Infinity"),
        (b'{"revenue": -Infinity}', "body", "-Infinity"),
        (b'{"revenue": 1e999}', "body", "finite"),
        (b'{"user_id": "a"', "body", "not valid JSON"),
        (b'{"user_id": ' + b"9" * 5000 + b"}", "body", "not valid JSON"),
        (b'"game_open"', "body", "not a string"),
        (b"[1, 2]", "body", "event 0 is an integer"),
        (b'{"user_id": {"id": "a"}}', "user_id", "is an object in the event"),
        (b'[{"a": "1"}, {"attribute_sub1": [1]}]', "attribute_sub1", "is an array in event 1"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "body", "nested too deeply"),
    ],
)
def test_malformed_json_bodies(body, field, fragment):
    error = body_error(body)
    assert (error.status, error.field) == (400, field)
    assert fragment.replace("not a string", "a string") in error.problem


def test_json_scalars_other_than_strings_reach_validate_to_be_named():
    raw = parse_body(b'{"user_id": null, "event_name": true, "revenue": 1.5, "level": 3}', JSON)
    assert raw == [{"user_id": None, "event_name": True, "revenue": 1.5, "level": 3}]


def test_error_bodies_are_json_with_field_and_problem():
    error = body_error(b"x", "text/plain")
    assert json.loads(json.dumps(error.to_dict())) == {
        "error": "unsupported media type",
        "problems": [{"index": None, "field": "Content-Type", "problem": error.problem}],
    }
    with pytest.raises(InvalidEvents) as caught:
        check(raw_event(ip=...))
    assert caught.value.status == 400
    assert caught.value.to_dict() == {
        "error": "invalid events",
        "problems": [{"index": 0, "field": "ip", "problem": "is required"}],
    }
    assert "ip: is required" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# validate: each field


@pytest.mark.parametrize("field", ["user_id", "ip", "time_stamp", "platform", "storefront"])
def test_required_fields(field):
    assert only_problem(field, **{field: ...}).problem == "is required"


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


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("not an ip", "is not an IPv4 or IPv6 address"),
        ("01.2.3.4", "is not an IPv4 or IPv6 address"),
        ("1.2.3", "is not an IPv4 or IPv6 address"),
        ("1.2.3.4.5", "is not an IPv4 or IPv6 address"),
        ("1" * 65, "65 characters long"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "zone index"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("::ffff:10.0.0.1", "'10.0.0.1' is a private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("198.18.0.1", "special-purpose"),
        ("192.0.0.1", "special-purpose"),
        ("fec0::1", "site-local"),
    ],
)
def test_ip_must_be_global_unicast_and_the_reason_is_named(ip, reason):
    problem = only_problem("ip", ip=ip).problem
    assert reason in problem


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (" 175.124.248.15 ", "175.124.248.15"),
        ("::ffff:175.124.248.15", "175.124.248.15"),
        ("::FFFF:AF7C:F80F", "175.124.248.15"),
        ("2001:4860:0000:0000:0000:0000:0000:8888", "2001:4860::8888"),
        ("2A00:1450:4001:0811::200E", "2a00:1450:4001:811::200e"),
    ],
)
def test_ip_is_normalised(given, normalised):
    assert check(raw_event(ip=given))[0].ip == normalised


def test_ip_must_be_a_string():
    assert "must be a string" in only_problem("ip", ip=2936732175).problem


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


def test_every_field_has_a_length_limit_and_a_check():
    assert set(MAX_FIELD_LENGTH) == set(FIELDS)
    assert len(FIELDS) == len(set(FIELDS))
    for name in PASSTHROUGH_FIELDS:
        too_long = "1" * (MAX_FIELD_LENGTH[name] + 1)
        assert only_problem(name, **{name: too_long}).index == 0


# ---------------------------------------------------------------------------------------------
# validate: unknown fields, batches


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


# ---------------------------------------------------------------------------------------------
# Event ids


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


def test_site_key():
    assert site_key("pc", "steam") == "pc/steam"
    assert site_key(" PC ", "Steam") == "pc/steam"


# ---------------------------------------------------------------------------------------------
# Event


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


# ---------------------------------------------------------------------------------------------
# Properties

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json_values = st.recursive(
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
def _raw_events(draw: st.DrawFn) -> dict:
    """Valid events with any extras, then a few fields dropped, made junk, or set (unknown names too)."""
    platform, storefront = draw(_sites)
    event = {"platform": platform, "storefront": storefront}
    for name in [*events.REQUIRED_FIELDS[:3], *draw(st.lists(st.sampled_from(list(_good)), max_size=4))]:
        event[name] = draw(_good.get(name, _text_ids))
    for action, name in draw(st.lists(_mutations, max_size=3)):
        if action == "drop":
            event.pop(name, None)
        else:
            event[name] = draw(_json_values if action == "junk" else _good.get(name, _text_ids))
    return event


def _parse_all(events_raw: list[dict]) -> list[Event]:
    try:
        return validate(events_raw, site_ids=SITES, now=NOW)
    except InvalidEvents:
        return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([FORM, JSON, "application/x-ndjson", "application/jsonl", None, "text/csv"]), st.binary())
def test_parse_body_raises_only_body_errors_on_arbitrary_bytes(content_type, body):
    try:
        raw = parse_body(body, content_type)
    except BodyError as error:
        assert error.status in (400, 413, 415)
        assert error.field and error.problem
        json.dumps(error.to_dict())
    else:
        assert raw and all(isinstance(event, dict) for event in raw)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([JSON, "application/x-ndjson"]), st.lists(_json_values, max_size=4) | _json_values)
def test_parse_body_raises_only_body_errors_on_arbitrary_json(content_type, value):
    lines = value if content_type != JSON and isinstance(value, list) else [value]
    body = "\n".join(json.dumps(v) for v in lines) if content_type != JSON else json.dumps(value)
    try:
        raw = parse_body(body.encode("utf-8", "surrogatepass"), content_type)
    except BodyError as error:
        assert error.status in (400, 413)
    else:
        for event in raw:
            assert all(not isinstance(v, (dict, list)) for v in event.values())


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=8))
def test_parse_body_form_round_trips_urlencoded_dicts(fields):
    from urllib.parse import urlencode

    body = urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
    try:
        assert parse_body(body, FORM) == [fields]
    except BodyError as error:
        assert not body.strip() or not fields or "UTF-8" in error.problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_raw_events(), max_size=4))
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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_raw_events())
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


def test_the_package_is_pure_and_knows_nothing_of_tune_or_pub_sub():
    from pathlib import Path

    for module in Path(events.__file__).parent.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        for other in ("flask", "functions_framework", "requests", "google", "measure.tune", "measure.pipeline",
                      "measure.gcp", "measure.functions"):
            assert f"import {other}" not in source and f"from {other}" not in source, (module.name, other)
