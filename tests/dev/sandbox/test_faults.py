"""The sandbox's faults: each kind, outages, seeds, and settings over HTTP."""

import time

import pytest
import requests

from measure.dev.sandbox import DUPLICATE_MESSAGE, RESPONDER_HEADER, Faults, FaultsError, Sandbox
from measure.signing import MeasureAuth
from tests.dev.sandbox.client import CONSUMER, PRIVATE, event, post

# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 429])
def test_status_fault_at_rate_one(sandbox, session, code):
    sandbox.set_faults(status={code: 1.0})
    params = event()
    response = post(session, sandbox, params)
    assert response.status_code == code
    assert RESPONDER_HEADER not in response.headers
    assert sandbox.accepted_ids() == {}
    assert sandbox.stats()["faulted"] == {str(code): 1}
    sandbox.clear_faults()
    assert post(session, sandbox, params).json()["success"] is True  # the faulted one was not accepted


def test_drop_fault_closes_the_connection_without_an_answer(sandbox, session):
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())
    assert sandbox.stats()["faulted"] == {"drop": 1}
    assert sandbox.accepted_ids() == {}
    sandbox.clear_faults()
    assert post(session, sandbox, event()).status_code == 200


def test_timeout_fault_accepts_then_holds_the_answer_so_the_retry_is_a_duplicate(sandbox, session):
    sandbox.set_faults(timeout_rate=1.0, hang_s=1.0)
    params = event()
    with pytest.raises(requests.ReadTimeout):
        post(session, sandbox, params, timeout=(2, 0.2))
    sandbox.clear_faults()
    retry = post(session, sandbox, params)
    assert retry.json()["message"] == [DUPLICATE_MESSAGE]
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}
    assert sandbox.stats()["faulted"] == {"timeout": 1}


def test_latency_delays_every_answer(sandbox, session):
    sandbox.set_faults(latency_ms=150)
    started = time.monotonic()
    post(session, sandbox, event())
    assert time.monotonic() - started >= 0.15


def test_outage_answers_503(sandbox, session):
    sandbox.set_faults(outage_for=60)
    response = post(session, sandbox, event())
    assert response.status_code == 503
    assert RESPONDER_HEADER not in response.headers
    assert sandbox.stats()["faulted"] == {"outage": 1}


def test_outage_can_drop_connections(sandbox, session):
    sandbox.set_faults(outage_for=60, outage_mode="drop")
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())


def test_outage_window_in_absolute_time(sandbox, session):
    now = time.time()
    sandbox.set_faults(outage_start=now - 120, outage_end=now - 60)
    assert post(session, sandbox, event()).status_code == 200
    sandbox.set_faults(outage_start=now - 1, outage_end=now + 60)
    assert post(session, sandbox, event()).status_code == 503


def test_outage_ends(session):
    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731
    auth = MeasureAuth(CONSUMER, PRIVATE, clock=clock)
    with Sandbox({CONSUMER: PRIVATE}, faults={"outage_for": 30}, clock=clock).start() as down:
        assert post(session, down, event(), auth=auth).status_code == 503
        now[0] += 31
        assert post(session, down, event(), auth=auth).status_code == 200


def test_seeded_faults_are_reproducible(session):
    def outcomes():
        with Sandbox({CONSUMER: PRIVATE}, faults={"status": {"500": 0.5}, "seed": 7}).start() as seeded:
            return [post(session, seeded, event()).status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert {200, 500} == set(first)


def test_faults_over_http(sandbox, session):
    faults_url = f"{sandbox.url}/_sandbox/faults"
    answer = session.post(faults_url, json={"status": {"502": 1.0}, "latency_ms": 1}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == {"502": 1.0}
    assert session.get(faults_url, timeout=5).json()["latency_ms"] == 1
    assert post(session, sandbox, event()).status_code == 502
    assert session.delete(faults_url, timeout=5).status_code == 200
    assert post(session, sandbox, event()).status_code == 200


@pytest.mark.parametrize(
    "settings",
    [
        {"status": {"200": 0.5}},
        {"drop_rate": 2},
        {"status": {"500": 0.6}, "drop_rate": 0.6},
        {"outage_start": 10},
        {"outage_for": 5, "outage_end": 10},
        {"outage_mode": "explode"},
        {"latency": 5},
    ],
)
def test_invalid_faults_are_refused(sandbox, session, settings):
    answer = session.post(f"{sandbox.url}/_sandbox/faults", json=settings, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]
    with pytest.raises(FaultsError):
        Faults.from_mapping(settings)


def test_faults_draw_in_order():
    faults = Faults.from_mapping({"drop_rate": 0.1, "status": {"500": 0.2}, "timeout_rate": 0.3})

    class Fixed:
        def __init__(self, value):
            self.value = value

        def random(self):
            return self.value

    assert [faults.draw(Fixed(u), 0) for u in (0.05, 0.15, 0.45, 0.7)] == ["drop", "500", "timeout", None]
