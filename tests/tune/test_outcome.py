import json

import pytest

from measure.tune.outcome import Kind, classify, unreachable

SUCCESS = {"success": True, "site_event_type": "session", "tracking_id": "t", "advertiser_ref_id": None,
           "log_id": "b2f3ce90d42e12e895-20140709-877", "message": [], "log_action": True}
DUPLICATE = {"success": False, "log_id": "7d6d2f08db789514af-20140709-877", "message": ["Duplicate request detected."]}
REJECTED = {"success": False, "log_id": None, "message": ["Invalid site_id"]}


def body(obj):
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("status", "headers", "payload", "kind"),
    [
        (200, {}, body(SUCCESS), Kind.DELIVERED),
        (200, {}, body(DUPLICATE), Kind.DUPLICATE),
        (400, {"X-MAT-Responder": "x"}, body(DUPLICATE), Kind.DUPLICATE),
        (400, {"x-mat-responder": "x"}, b"", Kind.REJECTED),
        (200, {}, body(REJECTED), Kind.REJECTED),
        (401, {}, body(REJECTED), Kind.REJECTED),
        (400, {}, b"<html>bad request</html>", Kind.TRANSIENT),
        (500, {}, body(SUCCESS), Kind.TRANSIENT),
        (503, {"X-MAT-Responder": "x"}, body(REJECTED), Kind.TRANSIENT),
        (429, {}, body(REJECTED), Kind.TRANSIENT),
        (408, {}, b"", Kind.TRANSIENT),
        (404, {}, b"not found", Kind.TRANSIENT),
        (200, {}, b"not json", Kind.TRANSIENT),
        (302, {}, b"", Kind.TRANSIENT),
    ],
)
def test_rules(status, headers, payload, kind):
    assert classify(status, headers, payload).kind is kind


def test_delivered_carries_log_id_status_and_latency():
    outcome = classify(200, {}, body(SUCCESS), latency=0.25)
    assert (outcome.log_id, outcome.status, outcome.latency) == ("b2f3ce90d42e12e895-20140709-877", 200, 0.25)
    assert outcome.kind.done and not outcome.outage
    assert outcome.to_log()["latency_ms"] == 250.0


def test_rejected_reason_is_the_api_message():
    assert classify(200, {}, body(REJECTED)).reason == "Invalid site_id"


def test_outage_marks_server_trouble_only():
    assert classify(502, {}, b"").outage
    assert unreachable("timeout").outage and unreachable("timeout").kind is Kind.TRANSIENT
    assert not classify(200, {}, body(REJECTED)).outage
    assert not Kind.TRANSIENT.done and not Kind.REJECTED.done and Kind.DUPLICATE.done


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),  # an HTTP date, 30 s after `now`
        ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # already past: go now
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_kept_in_seconds(headers, wait):
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    outcome = classify(429, headers, b"", now=now)
    assert outcome.kind is Kind.TRANSIENT
    assert outcome.retry_after == wait


def test_retry_after_reaches_the_log_line_only_when_given():
    assert classify(503, {"Retry-After": "1"}, b"").to_log()["retry_after_s"] == 1.0
    assert "retry_after_s" not in classify(503, {}, b"").to_log()


def test_what_tune_answered_is_kept_for_the_log_line():
    # Seed 004's success answer: an install resolved as "install", with its log_id.
    seed = {**SUCCESS, "site_event_type": "install"}
    line = classify(200, {}, body(seed), latency=0.01).to_log()
    assert {k: line[k] for k in ("outcome", "http_status", "log_id", "site_event_type")} == {
        "outcome": "delivered", "http_status": 200, "log_id": "b2f3ce90d42e12e895-20140709-877",
        "site_event_type": "install"}
    seed_duplicate = {**DUPLICATE, "site_event_type": "install"}
    assert classify(200, {}, body(seed_duplicate)).site_event_type == "install"


def test_an_answer_without_a_type_or_that_is_not_the_api_s_has_none():
    assert classify(200, {}, body(DUPLICATE)).to_log()["site_event_type"] is None
    assert classify(502, {}, b'{"site_event_type": "x"}').site_event_type is None
    assert unreachable("timeout").to_log()["http_status"] is None
