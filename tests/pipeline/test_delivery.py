"""One delivery attempt (measure.pipeline.delivery) on the real emulator against the sandbox: every outcome path.

The stack itself (and its fixtures) is tests/pipeline/stack.py."""

import time

from measure import events
from measure.pipeline.delivery import Result
from measure.pipeline.message import Envelope
from tests.pipeline.stack import Pipeline, make_event, pipeline_fixture, sandbox_fixture  # noqa: F401


def test_delivered_signed_and_recorded_by_the_sandbox(pipeline, sandbox):
    event = make_event()
    assert pipeline.send(event) == "delivered"
    (seen,) = sandbox.requests(transaction_id=event.event_id)
    assert seen["outcome"] == "accepted" and seen["log_id"]
    assert pipeline.retries(timeout=0.3) == [] and pipeline.dead_letters(timeout=0.3) == []


def test_the_same_event_twice_is_a_duplicate(pipeline, sandbox):
    event = make_event()
    assert [pipeline.send(event), pipeline.send(event)] == ["delivered", "duplicate"]
    assert sandbox.accepted_ids()[event.event_id] == 1


def test_rejected_goes_to_the_dead_letter_with_the_reason(topology, sandbox, monkeypatch):
    pipeline = Pipeline(topology, sandbox, monkeypatch, private_key="not-the-key")
    event = make_event()
    assert pipeline.send(event) == "dead_lettered"
    ((body, attributes),) = pipeline.dead_letters()
    assert body["dead"]["kind"] == "rejected" and "signature" in body["dead"]["reason"].lower()
    assert body["event"]["event_id"] == event.event_id and attributes["kind"] == "rejected"


def test_transient_goes_to_retry_with_its_state(pipeline, sandbox):
    sandbox.set_faults(status={503: 1.0})
    event = make_event()
    before = time.time()
    assert pipeline.send(event) == "retried"
    (envelope,) = pipeline.retries()
    assert envelope.event == event
    assert envelope.retry.attempt == 1 and envelope.retry.last_error == "HTTP 503"
    assert before <= envelope.retry.first_failure <= envelope.retry.next_due


def test_an_event_without_a_site_id_is_dead_lettered(pipeline):
    event = make_event()
    stray = events.Event.from_dict({**event.to_dict(), "platform": "switch", "storefront": "eshop"})
    assert pipeline.send(stray) == "dead_lettered"
    ((body, _),) = pipeline.dead_letters()
    assert "switch/eshop" in body["dead"]["reason"]


def test_open_circuit_routes_straight_to_retry_without_an_attempt(pipeline, sandbox):
    sandbox.set_faults(status={503: 1.0})
    for i in range(3):
        pipeline.send(make_event(user_id=f"u{i}"))
    assert pipeline.breaker.is_open
    received_before = sandbox.stats()["received"]
    assert pipeline.send(make_event(user_id="late")) == "deferred"
    assert sandbox.stats()["received"] == received_before
    assert len(pipeline.retries(expect=4)) == 4


def test_no_free_slot_in_time_defers_without_an_attempt(topology, sandbox, monkeypatch):
    pipeline = Pipeline(topology, sandbox, monkeypatch)
    limit = pipeline.delivery.limit
    taken = [limit.acquire() for _ in range(limit.maximum)]
    assert all(taken) and limit.room() == 0
    event = make_event()
    handled = pipeline.delivery.attempt(Envelope(event), "send", wait=0.05)
    assert handled.result is Result.DEFERRED and sandbox.stats()["received"] == 0
    (envelope,) = pipeline.retries()
    assert envelope.event == event and envelope.retry.attempt == 0
    assert "concurrency limit" in envelope.retry.last_error


# --- what TUNE answered is kept (issue 27) -------------------------------------------------------


def _lines(capsys, message):
    import json

    return [line for line in (json.loads(raw) for raw in capsys.readouterr().out.splitlines() if raw.startswith("{"))
            if line["message"] == message]


def test_the_delivery_line_carries_what_tune_answered(pipeline, sandbox, capsys):
    event = make_event(event_name="install")
    assert pipeline.send(event) == "delivered"
    (line,) = _lines(capsys, "delivery")
    (seen,) = sandbox.requests(transaction_id=event.event_id)
    assert {k: line[k] for k in ("event_id", "attempt", "outcome", "http_status", "log_id", "site_event_type")} == {
        "event_id": event.event_id, "attempt": 1, "outcome": "delivered", "http_status": 200,
        "log_id": seen["log_id"], "site_event_type": "install"}


def test_a_recorded_event_of_another_type_than_its_action_is_a_type_mismatch_warning(topology, monkeypatch, capsys):
    from measure.dev.sandbox import Sandbox
    from measure.ops.resolution import EventDefinition
    from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, seed_form

    # The events guide's "Potential Conflicts": Login2 is defined in TUNE with type login.
    definitions = [EventDefinition(1, "Login", "login"), EventDefinition(2, "Login2", "login")]
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER, definitions=definitions).start() as box:
        pipeline = Pipeline(topology, box, monkeypatch)
        by_ref_form = {k: v for k, v in seed_form(event_ref="login2").items() if k != "event_name"}
        by_id, by_ref, session = (make_event(event_name="boss", site_event_id="2"),
                                  *events.validate([by_ref_form], site_ids=SITE_IDS), make_event())
        assert [pipeline.send(e) for e in (by_id, by_ref, session)] == ["delivered"] * 3
    # By id it resolved to login, not conversion; the ref call named its event (of type login) on purpose.
    warnings = _lines(capsys, "type mismatch")
    assert [(w["severity"], w["component"], w["event_id"], w["action"], w["site_event_type"]) for w in warnings] == [
        ("WARNING", "send", by_id.event_id, "conversion", "login")]
