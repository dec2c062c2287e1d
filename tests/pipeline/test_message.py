"""measure.pipeline.message: the exact bytes and attributes of an event message.

Other producers publish to the events topic and consumers decode what is there, so the encoding
is pinned byte for byte: a faster encoder must produce the same message.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from measure.events import PASSTHROUGH_FIELDS, Event, validate
from measure.pipeline.message import (
    MAX_ATTRIBUTES,
    UndecodableMessageError,
    dead_letter_message,
    decode,
    decode_dead_letter,
    event_message,
    retry_message,
)
from measure.pipeline.retry import RetryState
from tests.pipeline.poison import EVENT, POISON, RETRY

SEED_TIME = 1724094783
SITES = {"pc/steam": "2960"}
SEED = {
    "user_id": "1a23fd44c21f8l5r",
    "event_name": "game_open",
    "ip": "175.124.248.15",
    "time_stamp": str(SEED_TIME),
    "platform": "pc",
    "storefront": "steam",
}


def test_seed_event_message_bytes_and_attributes():
    (event,) = validate([SEED], site_ids=SITES, now=SEED_TIME + 60)
    assert event_message(event) == (
        b'{"v":1,"event":{"event_id":"4fe041b06004cabe0a13ccc2f2166ad0","event_name":"game_open",'
        b'"user_id":"1a23fd44c21f8l5r","ip":"175.124.248.15","time_stamp":1724094783,"platform":"pc",'
        b'"storefront":"steam"}}',
        {"event_id": "4fe041b06004cabe0a13ccc2f2166ad0", "event_name": "game_open", "attempt": "0"},
    )


def test_extras_follow_the_core_fields_in_field_order_and_text_is_utf8_not_escaped():
    raw = {
        **SEED,
        # Given out of PASSTHROUGH_FIELDS order: the message lists them in that order.
        "quantity": "007",
        "ios_ifa": "AbC-1",
        "user_agent": 'Mozilla/5.0 "x" \u2028 ü',
        "currency_code": "usd",
        "revenue": 9.99,
        "event_name": "Boss Défeated",
        "event_id": "abc-1",
    }
    (event,) = validate([raw], site_ids=SITES, now=SEED_TIME + 60)
    assert event_message(event) == (
        b'{"v":1,"event":{"event_id":"abc-1","event_name":"Boss D\xc3\xa9feated","user_id":"1a23fd44c21f8l5r",'
        b'"ip":"175.124.248.15","time_stamp":1724094783,"platform":"pc","storefront":"steam","revenue":"9.99",'
        b'"currency_code":"USD","user_agent":"Mozilla/5.0 \\"x\\" \xe2\x80\xa8 \xc3\xbc","ios_ifa":"AbC-1",'
        b'"quantity":"7"}}',
        {"event_id": "abc-1", "event_name": "Boss Défeated", "attempt": "0"},
    )


_text = st.text(max_size=10)


@given(
    st.builds(
        Event,
        event_id=_text,
        event_name=_text,
        user_id=_text,
        ip=_text,
        time_stamp=st.integers(0, 2**40),
        platform=_text,
        storefront=_text,
        extras=st.dictionaries(st.sampled_from(PASSTHROUGH_FIELDS), _text),
    )
)
def test_event_message_is_the_compact_json_of_the_event_and_decodes_back(event):
    data, attributes = event_message(event)
    reference = {"v": 1, "event": event.to_dict()}
    assert data == json.dumps(reference, separators=(",", ":"), ensure_ascii=False).encode()
    assert attributes == {"event_id": event.event_id, "event_name": event.event_name, "attempt": "0"}
    assert decode(data).event == event


_odd_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text


@given(
    st.builds(
        Event,
        event_id=_text,
        event_name=_text,
        user_id=_text,
        ip=_text,
        time_stamp=st.integers() | st.booleans() | st.floats(allow_nan=False),
        platform=_text,
        storefront=_text,
        extras=st.dictionaries(st.sampled_from([*PASSTHROUGH_FIELDS, "ip", "time_stamp"]) | st.integers(),
                               _odd_values, max_size=4),
    )
)
@example(Event("id", "open", "u", "1.1.1.1", 1, "pc", "steam", extras={"ip": "2.2.2.2", "revenue": "1"}))
@example(Event("id", "open", "u", "1.1.1.1", True, "pc", "steam"))
@example(Event("id", "open", "u", "1.1.1.1", 1, "pc", "steam", extras={"revenue": 1.5}))
def test_event_message_of_any_event_is_what_json_dumps_writes(event):
    # Events validate never makes (odd types, an extra named like a core field) still encode as before.
    data, _ = event_message(event)
    reference = {"v": 1, "event": event.to_dict()}
    assert data == json.dumps(reference, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_dead_letter_keeps_the_original_attributes_but_not_pub_sub_s_reserved_goog_ones():
    # Pub/Sub refuses a publish with an attribute key starting with "goog" (push deliveries and
    # schema-bound topics carry such keys): kept, they would make the dead letter itself fail.
    original = {"googclient_schemaencoding": "JSON", "goog_trace": "x", "source": "studio", "event_id": "e1"}
    data, attributes = dead_letter_message("undecodable", "not JSON", 1.5, raw=b"{", attributes=original)
    assert attributes == {"source": "studio", "event_id": "e1", "kind": "undecodable"}
    assert decode_dead_letter(data)["dead"]["kind"] == "undecodable"


# --- messages that are not v1 events ---------------------------------------------------------


@pytest.mark.parametrize("kind", POISON)
def test_a_message_that_is_not_a_v1_event_raises_only_undecodable_message_error(kind):
    # pytest.raises lets any other exception through: a RecursionError or OverflowError fails here.
    with pytest.raises(UndecodableMessageError) as raised:
        decode(POISON[kind])
    assert type(raised.value) is UndecodableMessageError
    assert 0 < len(str(raised.value)) <= 500  # a reason, and one a log line can carry whatever arrived


def test_the_reason_names_what_is_wrong():
    reasons = {kind: str(_undecodable(data)) for kind, data in POISON.items()}
    assert reasons["deeply nested JSON"] == "data is JSON nested too deeply to read"
    assert reasons["UTF-16 JSON"].startswith("data is not UTF-8")
    assert reasons["version true"] == "unsupported schema version True (expected 1)"
    assert reasons["no data, attributes only"] == "the message has no data"
    assert "time_stamp" in reasons["time_stamp past any clock"]
    assert "user_id" in reasons["lone surrogate"]
    assert "attempt" in reasons["retry attempt infinite"] and "next_due" in reasons["retry due time a string"]


def _undecodable(data: bytes) -> UndecodableMessageError:
    with pytest.raises(UndecodableMessageError) as raised:
        decode(data)
    return raised.value


def test_a_v1_event_and_its_retry_state_still_decode():
    envelope = decode(json.dumps({"v": 1, "event": EVENT, "retry": RETRY}).encode())
    assert envelope.event.to_dict() == EVENT and envelope.retry == RetryState(**RETRY)
    assert decode(retry_message(envelope.event, envelope.retry)[0]) == envelope
    # Integral Unix seconds are Unix seconds; a retry state without last_error is one.
    assert decode(json.dumps({"v": 1, "event": EVENT, "retry": {"attempt": 0, "first_failure": 5,
                                                                 "next_due": 6}}).encode()).retry.last_error == ""


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(st.binary(max_size=200))
@example(b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
@example(b"[" * 5000)
def test_any_bytes_decode_or_raise_undecodable_message_error(data):
    try:
        decode(data)
    except UndecodableMessageError:
        pass


@given(st.sampled_from(["v", "event", "retry", *EVENT, *RETRY]), _json_values)
@example("attempt", float("inf"))
@example("next_due", "nan")
@example("user_id", "\udfff")
@example("last_error", "\ud800")
def test_any_value_in_any_field_decodes_or_raises_undecodable_message_error(field, value):
    body = {"v": 1, "event": dict(EVENT), "retry": dict(RETRY)}
    if field in EVENT:
        body["event"][field] = value
    elif field in RETRY:
        body["retry"][field] = value
    else:
        body[field] = value
    try:
        envelope = decode(json.dumps(body).encode())
    except UndecodableMessageError:
        return
    # Whatever decodes can be handed on: re-encoded as the retry and dead-letter messages it may become.
    retry_message(envelope.event, envelope.retry or RetryState(**RETRY))
    dead_letter_message("expired", f"last error: {(envelope.retry or RetryState(**RETRY)).last_error}", 1.0,
                        event=envelope.event)


def test_a_dead_letter_keeps_no_more_attributes_than_pub_sub_takes():
    # A message may arrive with Pub/Sub's 100 attributes; its dead letter adds "kind", and a
    # publish Pub/Sub refuses would bring the message round again for ever.
    original = {f"a{i:03}": str(i) for i in range(MAX_ATTRIBUTES)}
    _, attributes = dead_letter_message("undecodable", "not JSON", 1.5, raw=b"{", attributes=original)
    assert len(attributes) == MAX_ATTRIBUTES and attributes["kind"] == "undecodable"
    assert set(attributes) - {"kind"} <= set(original)
    _, attributes = dead_letter_message("undecodable", "not JSON", 1.5, raw=b"{", attributes={"kind": "x", "a": "1"})
    assert attributes == {"a": "1", "kind": "undecodable"}
