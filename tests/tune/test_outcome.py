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
