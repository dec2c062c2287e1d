"""The sandbox's HTTP plumbing: keep-alive, the inspection endpoints, unknown routes, stopping."""

import time

import pytest
import requests

from measure.dev.sandbox import Sandbox
from measure.signing import MeasureAuth
from tests.dev.sandbox.client import CONSUMER, PRIVATE, event, post


def test_keep_alive_connection_serves_many_requests(sandbox, session):
    for _ in range(5):
        assert post(session, sandbox, event()).json()["success"] is True
    assert sandbox.stats()["accepted"] == 5


# --- inspection -----------------------------------------------------------------------------


def test_requests_endpoint_filters_by_transaction_id_since_and_limit(sandbox, session):
    first, second = event(), event()
    post(session, sandbox, first)
    middle = time.time()
    time.sleep(0.01)
    post(session, sandbox, second)
    post(session, sandbox, second)
    url = f"{sandbox.url}/_sandbox/requests"
    everything = session.get(url, timeout=5).json()
    ids = [first["transaction_id"], second["transaction_id"], second["transaction_id"]]
    assert [entry["transaction_id"] for entry in everything] == ids
    assert [entry["outcome"] for entry in everything] == ["accepted", "accepted", "duplicate"]
    only = session.get(url, params={"transaction_id": second["transaction_id"]}, timeout=5).json()
    assert len(only) == 2
    recent = session.get(url, params={"since": middle}, timeout=5).json()
    assert [entry["transaction_id"] for entry in recent] == [second["transaction_id"]] * 2
    assert len(session.get(url, params={"limit": 1}, timeout=5).json()) == 1
    assert session.get(url, params={"since": "yesterday"}, timeout=5).status_code == 400
    assert everything[0]["params"]["user_id"] == "player-1"
    assert everything[0]["signature"] == "valid"


def test_stats_endpoint_counts_every_outcome(sandbox, session):
    params = event()
    post(session, sandbox, params)
    post(session, sandbox, params)
    post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong"))
    sandbox.set_faults(status={"500": 1.0})
    post(session, sandbox, event())
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())
    stats = session.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    assert stats["received"] == 5
    assert (stats["accepted"], stats["duplicates"], stats["rejected"]) == (1, 1, 1)
    assert stats["faulted"] == {"500": 1, "drop": 1}
    assert stats["distinct_accepted"] == 1


def test_unknown_endpoint_and_method(sandbox, session):
    assert session.get(f"{sandbox.url}/nowhere", timeout=5).status_code == 404
    answer = session.put(sandbox.serve_url, timeout=5)
    assert answer.status_code == 405
    assert "POST" in answer.headers["Allow"]


def test_stop_returns_promptly_with_idle_keep_alive_connections(session):
    running = Sandbox({CONSUMER: PRIVATE}).start()
    post(session, running, event())
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 2
