"""measure.events.body: the content types the webhook accepts, its limits, and the BodyError of a bad body."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from measure.events import MAX_BATCH, MAX_BODY_BYTES, BodyError, parse_body
from tests.events.cases import FORM, JSON, SEED_BODY, body_error, json_values, raw_event


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
@given(st.sampled_from([JSON, "application/x-ndjson"]), st.lists(json_values, max_size=4) | json_values)
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
