"""The whole delivery stack on the real emulator against the sandbox, for the tests of delivery,
send and sweep: `Pipeline`, and the `sandbox` and `pipeline` fixtures (import sandbox_fixture and pipeline_fixture)."""

import json

import pytest

from measure import config as config_module
from measure import events
from measure.dev.sandbox import Sandbox
from measure.functions.send import Sender
from measure.functions.sweep import Sweeper
from measure.gcp.publisher import Publisher
from measure.gcp.subscriber import Subscriber
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.delivery import Delivery
from measure.pipeline.message import decode, event_message
from measure.tune.client import MeasurementClient
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, base_env, seed_form


@pytest.fixture(name="sandbox")
def sandbox_fixture():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as box:
        yield box


def make_event(**overrides):
    (event,) = events.validate([seed_form(**overrides)], site_ids=SITE_IDS)
    return event


class Pipeline:
    def __init__(self, topology, sandbox, monkeypatch, private_key=PRIVATE_KEY, **env):
        # Retries come due at once unless a test says otherwise (Config's schedule, from the environment).
        env = {"MEASURE_RETRY_SCHEDULE": "0,0,0", **env}
        for name, value in {**base_env(sandbox.serve_url), **topology.env(), **env}.items():
            monkeypatch.setenv(name, value)
        self.topology = topology
        self.config = config_module.load()
        self.publisher = Publisher(self.config.project)
        client = MeasurementClient(self.config.endpoint, lambda: (CONSUMER_KEY, private_key), read_timeout=2)
        self.breaker = CircuitBreaker(cooldown=60, min_attempts=3)
        self.delivery = Delivery(self.config, client, self.publisher, self.breaker)
        self.sender = Sender(self.delivery)
        # As runtime builds it for the emulator (return_immediately: the emulator would otherwise hold
        # an empty pull for its whole timeout).
        self.sweeper = Sweeper(self.config, self.delivery, Subscriber(), return_immediately=True)

    def send(self, event):
        data, attributes = event_message(event)
        return self.sender.process(data, attributes).result

    def retries(self, expect=1, timeout=3.0):
        received = self.topology.pull(self.topology.names.retry_subscription, expect=expect, timeout=timeout)
        return [decode(m.message.data) for m in received]

    def dead_letters(self, expect=1, timeout=3.0):
        received = self.topology.pull(self.topology.names.dead_letter_subscription, expect=expect, timeout=timeout)
        return [(json.loads(m.message.data), dict(m.message.attributes)) for m in received]


@pytest.fixture(name="pipeline")
def pipeline_fixture(topology, sandbox, monkeypatch):
    return Pipeline(topology, sandbox, monkeypatch)
