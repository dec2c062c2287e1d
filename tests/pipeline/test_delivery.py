"""send and sweep on the real emulator against the sandbox: every outcome path."""

import base64
import json
import time

import pytest
import requests

from measure import config as config_module
from measure import events
from measure.functions.sweep import Sweeper
from measure.gcp.publisher import Publisher
from measure.gcp.subscriber import Subscriber
from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.delivery import Delivery
from measure.pipeline.message import decode, event_message, retry_message
from measure.tools.emulator import create_topology
from measure.tools.sandbox import Sandbox
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind, Outcome
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, base_env, seed_form


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as box:
        yield box


def make_event(**overrides):
    (event,) = events.validate([seed_form(**overrides)], site_ids=SITE_IDS)
    return event


class Pipeline:
    def __init__(self, topology, sandbox, monkeypatch, private_key=PRIVATE_KEY, **env):
        for name, value in {**base_env(sandbox.serve_url), **topology.env(), **env}.items():
            monkeypatch.setenv(name, value)
        self.topology = topology
        self.config = config_module.load()
        self.publisher = Publisher(self.config.project)
        client = MeasurementClient(self.config.endpoint, lambda: (CONSUMER_KEY, private_key), read_timeout=2)
        self.breaker = CircuitBreaker(threshold=3, cooldown=60)
        self.delivery = Delivery(self.config, client, self.publisher, self.breaker, schedule=(0, 0, 0))
        self.sweeper = Sweeper(self.config, self.delivery, Subscriber(), parallelism=4,
                               return_immediately=True)

    def send(self, event):
        data, attributes = event_message(event)
        return self.delivery.process(data, attributes).result

    def retries(self, expect=1, timeout=3.0):
        received = self.topology.pull(self.topology.names.retry_subscription, expect=expect, timeout=timeout)
        return [decode(m.message.data) for m in received]

    def dead_letters(self, expect=1, timeout=3.0):
        received = self.topology.pull(self.topology.names.dead_letter_subscription, expect=expect, timeout=timeout)
        return [(json.loads(m.message.data), dict(m.message.attributes)) for m in received]


@pytest.fixture
def pipeline(topology, sandbox, monkeypatch):
    return Pipeline(topology, sandbox, monkeypatch)


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


def test_undecodable_messages_are_dead_lettered_not_crash_looped(pipeline):
    assert pipeline.delivery.process(b"\xff not json", {"event_id": "x"}).result == "dead_lettered"
    ((body, attributes),) = pipeline.dead_letters()
    assert body["event"] is None and body["dead"]["kind"] == "undecodable"
    assert base64.b64decode(body["raw"]) == b"\xff not json" and attributes["event_id"] == "x"


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


def test_sweep_redelivers_due_retries(pipeline, sandbox):
    sandbox.set_faults(status={503: 1.0})
    event = make_event()
    pipeline.send(event)
    sandbox.clear_faults()
    summary = pipeline.sweeper.run(budget=10)
    assert summary["pulled"] == 1 and summary["delivered"] == 1
    assert sandbox.accepted_ids()[event.event_id] == 1
    assert pipeline.sweeper.run(budget=2)["pulled"] == 0  # drained


def test_sweep_defers_what_is_not_due_without_an_attempt(pipeline, sandbox):
    event = make_event()
    state = retry.RetryState(attempt=3, first_failure=time.time() - 60, next_due=time.time() + 3600, last_error="x")
    pipeline.publisher.publish_one(pipeline.config.retry_topic, retry_message(event, state))
    summary = pipeline.sweeper.run(budget=5)
    assert (summary["pulled"], summary["deferred"], summary["delivered"]) == (1, 1, 0)
    assert sandbox.stats()["received"] == 0
    # Held out of sight by its ack deadline: the next sweep does not see it again.
    assert pipeline.sweeper.run(budget=2)["pulled"] == 0


def test_sweep_dead_letters_events_retried_past_the_maximum_age(pipeline, sandbox):
    event = make_event()
    old = time.time() - pipeline.config.retry_max_age - 10
    state = retry.RetryState(attempt=9, first_failure=old, next_due=time.time() - 1, last_error="HTTP 503")
    pipeline.publisher.publish_one(pipeline.config.retry_topic, retry_message(event, state))
    assert pipeline.sweeper.run(budget=5)["dead_lettered"] == 1
    ((body, _),) = pipeline.dead_letters()
    assert body["dead"]["kind"] == "expired"
    assert "9 attempts" in body["dead"]["reason"] and "HTTP 503" in body["dead"]["reason"]
    assert sandbox.stats()["received"] == 0


def test_sweep_stops_early_when_the_api_is_down_and_loses_nothing(pipeline, sandbox):
    events_sent = [make_event(user_id=f"d{i}") for i in range(20)]
    state = retry.RetryState(attempt=1, first_failure=time.time(), next_due=time.time() - 1, last_error="x")
    pipeline.publisher.publish(pipeline.config.retry_topic, [retry_message(e, state) for e in events_sent])
    sandbox.set_faults(status={503: 1.0})
    summary = pipeline.sweeper.run(budget=20)
    assert summary["stopped_early"] and "circuit open" in summary["stopped_early"]
    assert sandbox.stats()["received"] < 20
    assert summary["retried"] + summary["released"] == summary["pulled"]
    # Every event is still on the retry subscription, as a retry or released back.
    sandbox.clear_faults()
    pipeline.breaker.record(Outcome(Kind.DELIVERED, "the API is back"))
    for _ in range(5):
        pipeline.sweeper.run(budget=5)
        if len(sandbox.accepted_ids()) == 20:
            break
        time.sleep(0.5)
    assert sorted(sandbox.accepted_ids()) == sorted(e.event_id for e in events_sent)


def test_raw_pubsub_push_to_a_real_send_server(topology, sandbox, function_server):
    env = {**base_env(sandbox.serve_url), **topology.env()}
    url = function_server("send", env, signature_type="cloudevent")
    create_topology(topology.project, emulator_host=topology.emulator_host, push_endpoint=url,
                    names=topology.names)
    event = make_event()
    data, attributes = event_message(event)
    topology.publish(topology.names.events_topic, data, **attributes)
    deadline = time.time() + 20
    while time.time() < deadline and not sandbox.requests(transaction_id=event.event_id):
        time.sleep(0.2)
    (seen,) = sandbox.requests(transaction_id=event.event_id)
    assert seen["outcome"] == "accepted"


def test_sweep_function_answers_a_json_summary(topology, sandbox, function_server):
    url = function_server("sweep", {**base_env(sandbox.serve_url), **topology.env()})
    response = requests.post(url, timeout=30)
    assert response.status_code == 200
    assert set(response.json()) >= {"pulled", "delivered", "duplicates", "retried", "deferred", "dead_lettered",
                                    "elapsed"}
