"""The Pub/Sub contract measure relies on, one suite run against two backends: the emulator and
measure.dev.memorypubsub. What passes here on the fake is what the functions and pipeline tests,
which run on the fake, may take for granted; anything else belongs on the emulator's tiers.

Everything goes through measure's own REST clients (Publisher, Subscriber, pubsub_admin), as
the functions and the tools call Pub/Sub.
"""

from __future__ import annotations

import itertools
import time

import pytest

from measure.dev import pubsub_admin as admin
from measure.dev.memorypubsub import MemoryPubsub
from measure.gcp import credentials, googleapi
from measure.gcp.publisher import Publisher, PublishError
from measure.gcp.subscriber import Subscriber

_names = itertools.count(1)


class Backend:
    def __init__(self, host: str, project: str):
        self.host, self.project = host, project
        self.api = googleapi.Api(f"http://{host}", credentials.http(None, 4))
        self.publisher = Publisher(project, self.api)
        self.subscriber = Subscriber(self.api)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def topic(self) -> str:
        """A new topic's name (Publisher takes names; the admin calls take paths)."""
        name = f"contract-{next(_names)}-{time.monotonic_ns()}"
        assert admin.create_topic(self.api, self.topic_path(name)) is True
        return name

    def subscription(self, topic: str, ack_deadline_seconds: int = 60) -> str:
        path = f"projects/{self.project}/subscriptions/contract-{next(_names)}-{time.monotonic_ns()}"
        assert admin.create_subscription(self.api, path, self.topic_path(topic),
                                         ack_deadline_seconds=ack_deadline_seconds) is True
        return path

    def pull(self, subscription: str, max_messages: int = 100, expect: int = 0, within: float = 5.0) -> list:
        """Pull until `expect` messages came (or `within` passed); expect=0: one immediate pull."""
        received: list = []
        deadline = time.monotonic() + within
        while True:
            response = self.subscriber.pull({"subscription": subscription, "max_messages": max_messages,
                                             "return_immediately": True}, timeout=10)
            received.extend(response.received_messages)
            if len(received) >= expect or time.monotonic() >= deadline:
                return received
            time.sleep(0.05)

    def ack(self, subscription: str, received: list) -> None:
        self.subscriber.acknowledge({"subscription": subscription, "ack_ids": [m.ack_id for m in received]})

    def hide(self, subscription: str, received: list, seconds: int) -> None:
        self.subscriber.modify_ack_deadline({"subscription": subscription, "ack_ids": [m.ack_id for m in received],
                                             "ack_deadline_seconds": seconds})


@pytest.fixture(scope="module")
def memory():
    with MemoryPubsub().start() as pubsub:
        yield pubsub


@pytest.fixture(params=["memory", pytest.param("emulator", marks=pytest.mark.emulator)])
def pubsub(request):
    if request.param == "memory":
        fake = request.getfixturevalue("memory")
        backend = Backend(fake.host, fake.project)
    else:
        emulator = request.getfixturevalue("pubsub_emulator")
        backend = Backend(emulator.host, emulator.project)
    yield backend
    backend.api.close()


def test_what_is_published_is_pulled_with_its_data_attributes_and_id(pubsub):
    topic = pubsub.topic()
    subscription = pubsub.subscription(topic)
    ids = pubsub.publisher.publish(topic, [(b"one", {"kind": "a"}), (b"\x00two", {"kind": "b", "n": "2"})])
    received = pubsub.pull(subscription, expect=2)
    assert sorted((m.message.data, m.message.attributes, m.message.message_id) for m in received) == sorted(
        [(b"one", {"kind": "a"}, ids[0]), (b"\x00two", {"kind": "b", "n": "2"}, ids[1])])
    assert len(set(ids)) == 2 and all(m.message.publish_time is not None for m in received)


def test_a_message_goes_to_every_subscription_its_topic_had_when_it_was_published(pubsub):
    topic = pubsub.topic()
    first, second = pubsub.subscription(topic), pubsub.subscription(topic)
    pubsub.publisher.publish_one(topic, (b"both", {}))
    late = pubsub.subscription(topic)
    assert [m.message.data for m in pubsub.pull(first, expect=1)] == [b"both"]
    assert [m.message.data for m in pubsub.pull(second, expect=1)] == [b"both"]
    assert pubsub.pull(late, within=0.5, expect=1) == []


def test_an_acknowledged_message_is_not_delivered_again(pubsub):
    topic = pubsub.topic()
    subscription = pubsub.subscription(topic)
    pubsub.publisher.publish(topic, [(b"keep", {}), (b"done", {})])
    received = pubsub.pull(subscription, expect=2)
    done = [m for m in received if m.message.data == b"done"]
    pubsub.ack(subscription, done)
    pubsub.hide(subscription, [m for m in received if m.message.data == b"keep"], 0)  # give it back now
    again = pubsub.pull(subscription, expect=1)
    assert [m.message.data for m in again] == [b"keep"]
    pubsub.ack(subscription, again)
    assert pubsub.pull(subscription, within=0.5, expect=1) == []


def test_an_unacknowledged_message_comes_back_after_its_ack_deadline(pubsub):
    topic = pubsub.topic()
    subscription = pubsub.subscription(topic)
    pubsub.publisher.publish_one(topic, (b"slow", {}))
    (first,) = pubsub.pull(subscription, expect=1)
    pubsub.hide(subscription, [first], 1)  # what sweep does to a message not yet due
    assert pubsub.pull(subscription) == []  # hidden for now
    (again,) = pubsub.pull(subscription, expect=1, within=10)
    assert again.message.message_id == first.message.message_id


def test_a_pull_takes_at_most_max_messages(pubsub):
    topic = pubsub.topic()
    subscription = pubsub.subscription(topic)
    pubsub.publisher.publish(topic, [(str(i).encode(), {}) for i in range(5)])
    time.sleep(0.3)  # all five published and routed
    response = pubsub.subscriber.pull({"subscription": subscription, "max_messages": 2, "return_immediately": True},
                                      timeout=10)
    assert 1 <= len(response.received_messages) <= 2
    rest = pubsub.pull(subscription, expect=5 - len(response.received_messages))
    assert sorted(m.message.data for m in [*response.received_messages, *rest]) == [str(i).encode() for i in range(5)]


def test_an_empty_subscription_answers_an_immediate_pull_with_nothing(pubsub):
    subscription = pubsub.subscription(pubsub.topic())
    began = time.monotonic()
    assert pubsub.pull(subscription) == []
    assert time.monotonic() - began < 5


def test_creating_what_exists_is_already_exists_and_kept(pubsub):
    topic = pubsub.topic()
    subscription = pubsub.subscription(topic)
    assert admin.create_topic(pubsub.api, pubsub.topic_path(topic)) is False
    assert admin.create_subscription(pubsub.api, subscription, pubsub.topic_path(topic)) is False


def test_publishing_to_a_missing_topic_is_a_permanent_not_found(pubsub):
    missing = f"never-made-{time.monotonic_ns()}"
    with pytest.raises(googleapi.ApiError) as caught:
        pubsub.api.call("POST", f"/v1/{pubsub.topic_path(missing)}:publish", {"messages": [{"data": "eA=="}]},
                        timeout=10)
    assert (caught.value.status, caught.value.transient) == (404, False)
    with pytest.raises(PublishError):
        pubsub.publisher.publish_one(missing, (b"x", {}), timeout=5)


def test_a_subscription_on_a_missing_topic_is_not_found(pubsub):
    missing = f"projects/{pubsub.project}/topics/never-made-{time.monotonic_ns()}"
    with pytest.raises(googleapi.ApiError) as caught:
        admin.create_subscription(pubsub.api, f"projects/{pubsub.project}/subscriptions/orphan-{next(_names)}", missing)
    assert caught.value.status == 404
