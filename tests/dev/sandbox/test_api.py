"""The sandbox Measurement API's answers: what a signed client sees, each rejection, duplicates,
the request log, resolution and concurrency."""

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from measure.dev.sandbox import DUPLICATE_MESSAGE, RESPONDER_HEADER, Sandbox
from measure.ops.resolution import EventDefinition
from measure.signing import HEADER_CONSUMER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP, MeasureAuth, generate_signature
from tests.dev.sandbox.client import AUTH, CONSUMER, PRIVATE, assert_rejected, event, post

# --- accepted -------------------------------------------------------------------------------


def test_signed_post_is_accepted_with_the_seeds_success_shape(sandbox, session):
    params = event(action="purchase", advertiser_ref_id="order-7")
    response = post(session, sandbox, params)
    assert response.status_code == 200
    assert RESPONDER_HEADER not in response.headers
    body = response.json()
    assert set(body) == {"success", "site_event_type", "tracking_id", "advertiser_ref_id", "log_id", "message",
                         "log_action"}
    assert body["success"] is True
    assert body["site_event_type"] == "purchase"
    assert re.fullmatch(r"[0-9a-f]{32}", body["tracking_id"])
    assert body["advertiser_ref_id"] == "order-7"
    assert re.fullmatch(r"[0-9a-f]{18}-\d{8}-877", body["log_id"])
    assert body["message"] == []
    assert body["log_action"] is True
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}


def test_signed_get_with_a_query_string_is_accepted(sandbox, session):
    response = session.get(sandbox.serve_url, params=event(), auth=AUTH, timeout=5)
    assert response.status_code == 200
    assert response.json()["success"] is True


def test_custom_event_with_site_event_name_is_accepted(sandbox, session):
    response = post(session, sandbox, event(action="conversion", site_event_name="review_submitted"))
    assert response.json()["site_event_type"] == "conversion"
    assert sandbox.requests()[-1]["event"] == "review_submitted"


# --- rejected -------------------------------------------------------------------------------


def test_unknown_consumer_key_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(), auth=MeasureAuth("someone-else", PRIVATE)), "unknown consumer key")


@pytest.mark.parametrize("header", [HEADER_CONSUMER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP])
def test_missing_header_is_rejected(sandbox, session, header):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    del prepared.headers[header]
    assert_rejected(session.send(prepared, timeout=5), f"missing header: {header}")


def test_stale_timestamp_is_rejected(sandbox, session):
    stale = MeasureAuth(CONSUMER, PRIVATE, clock=lambda: time.time() - 1000)
    assert_rejected(post(session, sandbox, event(), auth=stale), "timestamp outside tolerance")


def test_tolerance_is_configurable(session):
    late = MeasureAuth(CONSUMER, PRIVATE, clock=lambda: time.time() - 1000)
    with Sandbox({CONSUMER: PRIVATE}, tolerance=2000).start() as lenient:
        assert post(session, lenient, event(), auth=late).status_code == 200


def test_signature_made_with_another_private_key_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong")), "signature mismatch")


def test_body_changed_after_signing_is_rejected(sandbox, session):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    prepared.body = prepared.body.replace("player-1", "player-2")
    assert_rejected(session.send(prepared, timeout=5), "signature mismatch")


def test_signature_covers_the_host_header(sandbox, session):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    prepared.headers["Host"] = "877.measure.mobileapptracking.com"
    assert_rejected(session.send(prepared, timeout=5), "signature mismatch")


@pytest.mark.parametrize("name", ["action", "advertiser_id", "site_id", "sdk"])
def test_missing_required_parameter_is_rejected(sandbox, session, name):
    assert_rejected(post(session, sandbox, event(**{name: None})), f"missing parameter: {name}")


def test_conversion_without_event_name_or_id_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(action="conversion")), "site_event_name or site_event_id")


def test_wrong_advertiser_id_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(advertiser_id="999")), "advertiser_id 999")


def test_repeated_parameter_is_rejected(sandbox, session):
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        HEADER_CONSUMER_KEY: CONSUMER,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: generate_signature(PRIVATE, "POST", "x", "/serve", timestamp),
    }
    response = session.post(sandbox.serve_url, data="action=session&action=login", headers=headers, timeout=5)
    assert_rejected(response, "invalid parameters")


def test_rejections_are_not_accepted_and_are_counted_by_reason(sandbox, session):
    post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong"))
    post(session, sandbox, event(site_id=None))
    stats = sandbox.stats()
    assert stats["rejected"] == 2 and stats["accepted"] == 0
    assert stats["rejected_reasons"] == {"signature mismatch": 1, "parameters": 1}
    assert not sandbox.accepted_ids()


# --- duplicates -----------------------------------------------------------------------------


def test_repeated_transaction_id_is_a_duplicate_with_the_seeds_shape(sandbox, session):
    params = event()
    first = post(session, sandbox, params).json()
    again = post(session, sandbox, params)
    assert again.status_code == 200
    assert RESPONDER_HEADER not in again.headers
    body = again.json()
    assert body["success"] is False
    assert body["message"] == [DUPLICATE_MESSAGE]
    assert body["log_id"] == first["log_id"]
    assert sandbox.accepted_ids()[params["transaction_id"]] == 1
    assert sandbox.stats()["duplicates"] == 1


def test_duplicate_window_expires(session):
    now = [1_700_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    auth = MeasureAuth(CONSUMER, PRIVATE, clock=clock)
    params = event()
    with Sandbox({CONSUMER: PRIVATE}, duplicate_window=60, clock=clock).start() as windowed:
        assert post(session, windowed, params, auth=auth).json()["success"] is True
        now[0] += 59
        assert post(session, windowed, params, auth=auth).json()["message"] == [DUPLICATE_MESSAGE]
        now[0] += 2
        assert post(session, windowed, params, auth=auth).json()["success"] is True
        assert windowed.accepted_ids()[params["transaction_id"]] == 2


def test_events_without_transaction_id_are_each_accepted(sandbox, session):
    params = event(transaction_id=None)
    assert post(session, sandbox, params).json()["success"] is True
    assert post(session, sandbox, params).json()["success"] is True
    assert sandbox.stats()["accepted"] == 2
    assert "no transaction_id" in sandbox.requests()[-1]["reasons"][0]


def test_reset_forgets_requests_stats_and_accepted_ids(sandbox, session):
    params = event()
    post(session, sandbox, params)
    answer = session.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    assert answer.json()["received"] == 0
    assert sandbox.requests() == [] and sandbox.accepted_ids() == {}
    assert post(session, sandbox, params).json()["success"] is True


def test_request_log_is_bounded_and_keeps_the_newest(session):
    with Sandbox({CONSUMER: PRIVATE}, log_size=3).start() as small:
        ids = [event() for _ in range(5)]
        for params in ids:
            post(session, small, params)
        assert [entry["transaction_id"] for entry in small.requests()] == [p["transaction_id"] for p in ids[2:]]
        assert small.stats()["accepted"] == 5


def test_private_key_is_not_in_the_request_log(sandbox, session):
    post(session, sandbox, event())
    assert PRIVATE not in json.dumps(sandbox.requests())


# --- resolution -----------------------------------------------------------------------------


def test_no_resolution_without_definitions(sandbox, session):
    assert "resolution" not in post(session, sandbox, event(action="login")).json()


def test_resolution_in_the_answer_and_created_events_are_remembered(session):
    definitions = [EventDefinition(1, "Purchase", "purchase")]
    with Sandbox({CONSUMER: PRIVATE}, definitions=definitions).start() as resolving:
        first = post(session, resolving, event(action="login")).json()
        assert first["resolution"] == {
            "event": {"id": 2, "name": "login", "ref": "login", "type": "login"},
            "created": True,
            "matched_by": "new",
            "warnings": [],
        }
        second = post(session, resolving, event(action="login")).json()["resolution"]
        assert (second["event"]["id"], second["created"], second["matched_by"]) == (2, False, "type+ref")
        listed = session.get(f"{resolving.url}/_sandbox/definitions", timeout=5).json()
        assert [entry["id"] for entry in listed] == [1, 2]
        assert definitions == [EventDefinition(1, "Purchase", "purchase")]  # the caller's list is untouched
        resolving.reset()
        assert resolving.definitions() == definitions


def test_resolution_warnings_reach_the_answer_and_the_page(session):
    with Sandbox({CONSUMER: PRIVATE}, definitions=[EventDefinition(1, "Purchase", "login")]).start() as resolving:
        answer = post(session, resolving, event(action="purchase")).json()
        assert answer["success"] is True
        assert "Potential conflict" in answer["resolution"]["warnings"][0]
        page = session.get(f"{resolving.url}/_sandbox", timeout=5).text
        assert "Potential conflict" in page and "Purchase (id 1, login) by ref" in page


def test_the_answer_s_site_event_type_is_the_resolved_event_s_type(session):
    # The events guide's second conflict: a custom call landing on an event defined with type login.
    definitions = [EventDefinition(1, "Login", "login"), EventDefinition(2, "Login2", "login")]
    with Sandbox({CONSUMER: PRIVATE}, definitions=definitions).start() as resolving:
        by_id = post(session, resolving, event(action="conversion", site_event_id="2")).json()
        assert (by_id["site_event_type"], by_id["resolution"]["event"]["name"]) == ("login", "Login2")
        assert post(session, resolving, event(action="login2")).json()["site_event_type"] == "login"
        assert post(session, resolving, event(action="install")).json()["site_event_type"] == "install"


def test_the_default_duplicate_window_is_the_retry_age(sandbox):
    # TUNE's window is undocumented; a retry may come up to MEASURE_RETRY_MAX_AGE after the first try.
    from measure.config import Config

    assert sandbox.duplicate_window == Config.retry_max_age


def test_unknown_site_event_id_is_rejected_when_definitions_are_loaded(session):
    with Sandbox({CONSUMER: PRIVATE}, definitions=[]).start() as resolving:
        response = post(session, resolving, event(action="conversion", site_event_id="42"))
        assert_rejected(response, "site_event_id 42")
        assert resolving.stats()["rejected_reasons"] == {"event": 1}


# --- concurrency ----------------------------------------------------------------------------


def _parallel(sandbox, batch, workers=40):
    local = threading.local()

    def send(params):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post(local.session, sandbox, params, timeout=10)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, batch))


def test_200_parallel_requests_are_each_accepted_once(sandbox):
    batch = [event() for _ in range(200)]
    responses = _parallel(sandbox, batch)
    assert all(response.json()["success"] is True for response in responses)
    accepted = sandbox.accepted_ids()
    assert len(accepted) == 200 and set(accepted.values()) == {1}
    assert sandbox.stats()["accepted"] == 200


def test_the_same_event_sent_in_parallel_is_accepted_exactly_once(sandbox):
    params = event()
    responses = _parallel(sandbox, [params] * 30, workers=30)
    assert sum(response.json()["success"] is True for response in responses) == 1
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}
    assert sandbox.stats()["duplicates"] == 29
