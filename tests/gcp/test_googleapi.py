"""Pub/Sub over REST against a local stand-in answering 409, 429 and 5xx: what is retried, how long
the pauses are, and that the whole stays inside the caller's deadline. The stand-in is reached the
way the client libraries reach the emulator, through PUBSUB_EMULATOR_HOST."""

from __future__ import annotations

import base64
import itertools
import json
import time

import pytest

from measure.dev.emulator import free_port
from measure.gcp import credentials, googleapi
from measure.gcp import publisher as publisher_module
from measure.gcp.publisher import Publisher, PublishError
from measure.gcp.subscriber import Subscriber
from tests.gcp.standins import PubsubStandIn


@pytest.fixture
def pubsub(monkeypatch):
    made = []

    def make(script=(), pull_messages=()) -> PubsubStandIn:
        made.append(PubsubStandIn(script, pull_messages))
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", made[-1].host)
        return made[-1]

    yield make
    for stand_in in made:
        stand_in.close()


def gaps(calls) -> list[float]:
    return [later - earlier for (earlier, _), (later, _) in itertools.pairwise(calls)]


def test_publish_retries_409_aborted(pubsub):
    stand_in = pubsub([(409, "ABORTED", {})])
    assert Publisher("p").publish("t", [(b"a", {})], timeout=10) == ["0"]
    assert len(stand_in.calls("publish")) == 2


def test_pull_retries_409_aborted(pubsub):
    message = {"ackId": "ack-1", "message": {"data": base64.b64encode(b"r").decode(), "messageId": "9"}}
    stand_in = pubsub([(409, "ABORTED", {})], pull_messages=[message])
    subscriber = Subscriber()
    response = subscriber.pull(request={"subscription": "projects/p/subscriptions/s", "max_messages": 5}, timeout=10)
    assert [(m.ack_id, m.message.data) for m in response.received_messages] == [("ack-1", b"r")]
    assert len(stand_in.calls("pull")) == 2


def test_the_first_pause_after_a_429_is_a_jittered_backoff_not_50_ms(pubsub):
    # Five runs: the pause is random, and each must be at least 100 ms.
    for _ in range(5):
        stand_in = pubsub([(429, "RESOURCE_EXHAUSTED", {})])
        Publisher("p").publish("t", [(b"a", {})], timeout=10)
        [pause] = gaps(stand_in.calls("publish"))
        assert 0.1 <= pause < 1.0, pause


def test_pauses_grow_between_retries(pubsub):
    stand_in = pubsub([(503, "UNAVAILABLE", {})] * 4)
    Publisher("p").publish("t", [(b"a", {})], timeout=20)
    pauses = gaps(stand_in.calls("publish"))
    assert len(pauses) == 4
    assert pauses[3] > pauses[0] * 2, pauses  # 4x the first step, jittered within [0.5, 1] of each


def test_retry_after_is_honoured(pubsub):
    stand_in = pubsub([(429, "RESOURCE_EXHAUSTED", {"Retry-After": "1"})])
    Publisher("p").publish("t", [(b"a", {})], timeout=10)
    [pause] = gaps(stand_in.calls("publish"))
    assert pause >= 0.95, pause


def test_retries_stop_at_the_callers_deadline(pubsub):
    stand_in = pubsub([(429, "RESOURCE_EXHAUSTED", {})] * 1000)
    began = time.monotonic()
    with pytest.raises(PublishError, match="HTTP 429"):
        Publisher("p").publish("t", [(b"a", {})], timeout=1.5)
    assert time.monotonic() - began < 2.5
    assert 2 <= len(stand_in.calls("publish")) <= 6  # backed off, not hammered


def test_409_already_exists_is_not_retried(pubsub):
    stand_in = pubsub([(409, "ALREADY_EXISTS", {})])
    api = googleapi.Api(stand_in.url, credentials.http(None, 4))
    with pytest.raises(googleapi.ApiError) as caught:
        api.call("PUT", "/v1/projects/p/topics/t", {}, timeout=10)
    assert (caught.value.transient, caught.value.code) == (False, "ALREADY_EXISTS")
    assert len(stand_in.requests) == 1


def test_a_permanent_answer_is_raised_at_once_with_googles_message(pubsub):
    stand_in = pubsub([(400, "INVALID_ARGUMENT", {})])
    api = googleapi.Api(stand_in.url, credentials.http(None, 4))
    with pytest.raises(googleapi.ApiError, match=r"publish to t: HTTP 400: scripted INVALID_ARGUMENT") as caught:
        api.call("POST", "/v1/x:publish", {"messages": []}, timeout=10, what="publish to t")
    assert caught.value.transient is False and caught.value.status == 400
    _, method, path, headers, body = stand_in.requests[0]
    assert (method, path, headers["Content-Type"], json.loads(body)) == (
        "POST", "/v1/x:publish", "application/json", {"messages": []})


def test_without_retry_a_transient_answer_is_raised_at_once(pubsub):
    stand_in = pubsub([(503, "UNAVAILABLE", {})])
    with pytest.raises(googleapi.ApiError) as caught:
        googleapi.Api(stand_in.url, credentials.http(None, 4)).call("POST", "/v1/x:pull", {}, timeout=10, retry=False)
    assert caught.value.transient is True
    assert len(stand_in.requests) == 1


def test_nobody_listening_is_retried_and_then_a_transient_error():
    api = googleapi.Api(f"http://127.0.0.1:{free_port()}", credentials.http(None, 4))
    with pytest.raises(googleapi.ApiError) as caught:
        api.call("POST", "/v1/x:publish", {}, timeout=0.5)
    assert caught.value.transient is True


def test_retry_after_as_an_http_date():
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < googleapi.retry_after({"Retry-After": future}) <= 30
    assert googleapi.retry_after({"Retry-After": "2"}) == 2.0
    assert googleapi.retry_after({}) is None and googleapi.retry_after({"Retry-After": "soon"}) is None


def test_with_pubsub_emulator_host_set_calls_go_there_over_http_without_credentials(pubsub):
    stand_in = pubsub()
    assert Publisher("p").publish("t", [(b"a", {})]) == ["0"]
    [(_, headers)] = stand_in.calls("publish")
    assert headers.get("Authorization") is None
    assert googleapi.pubsub().base_url == f"http://{stand_in.host}"


@pytest.mark.parametrize(("status", "code"), [(499, "CANCELLED"), (500, "UNKNOWN"), (500, "INTERNAL"),
                                              (504, "DEADLINE_EXCEEDED"), (409, "ABORTED"),
                                              (429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")])
def test_publish_retries_every_code_googles_publisher_retries(pubsub, status, code):
    stand_in = pubsub([(status, code, {})])
    assert Publisher("p").publish("t", [(b"a", {})], timeout=10) == ["0"]
    assert len(stand_in.calls("publish")) == 2


def test_cancelled_is_transient_whatever_the_status(pubsub):
    stand_in = pubsub([(400, "CANCELLED", {})])
    with pytest.raises(googleapi.ApiError) as caught:
        googleapi.Api(stand_in.url, credentials.http(None, 4)).call("POST", "/v1/x:publish", {}, timeout=10,
                                                                     retry=False)
    assert caught.value.transient is True


def test_a_publish_that_never_answers_is_retried_on_a_fresh_connection_within_the_deadline(pubsub, monkeypatch):
    monkeypatch.setattr(publisher_module, "ATTEMPT_TIMEOUT", 0.5)
    stand_in = pubsub()
    stand_in.hang_publishes = 1
    began = time.monotonic()
    assert Publisher("p").publish("t", [(b"a", {})], timeout=5) == ["0"]
    took = time.monotonic() - began
    assert 0.5 <= took < 1.5, took  # one attempt's timeout, a pause, the retry: not the 5 s deadline
    assert stand_in.hung == 1 and len(stand_in.calls("publish")) == 2
    assert len(stand_in.connections) == 2, "the retry went out on the connection that hung"


def test_the_pubsub_session_ignores_proxy_settings_in_the_environment(pubsub, monkeypatch):
    stand_in = pubsub()
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert Publisher("p").publish("t", [(b"a", {})], timeout=3) == ["0"]
    assert len(stand_in.calls("publish")) == 1
