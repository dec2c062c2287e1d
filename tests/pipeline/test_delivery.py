"""One delivery attempt (measure.pipeline.delivery) on the real emulator against the sandbox: every outcome path.

`Pipeline` is the whole delivery stack (send's Sender, the Sweeper) for tests/functions too."""

import json
import time

import pytest

from measure import config as config_module
from measure import events
from measure.functions.send import Sender
from measure.functions.sweep import Sweeper
from measure.gcp.publisher import Publisher
from measure.gcp.subscriber import Subscriber
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.delivery import Delivery, Result
from measure.pipeline.message import Envelope, decode, event_message
from measure.tools.sandbox import Sandbox
from measure.tune.client import MeasurementClient
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
        self.breaker = CircuitBreaker(cooldown=60, min_attempts=3)
        self.delivery = Delivery(self.config, client, self.publisher, self.breaker, schedule=(0, 0, 0))
        self.sender = Sender(self.delivery)
        self.sweeper = Sweeper(self.config, self.delivery, Subscriber(), parallelism=4,
                               return_immediately=True)

    def send(self, event):
        data, attributes = event_message(event)
        return self.sender.process(data, attributes).result

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
