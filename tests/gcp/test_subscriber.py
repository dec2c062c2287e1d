"""measure.gcp.subscriber.Subscriber against the real emulator: what the sweeper relies on."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from measure.dev.pubsubproxy import PubsubProxy
from measure.gcp import credentials, googleapi
from measure.gcp.googleapi import ApiError
from measure.gcp.publisher import Publisher
from measure.gcp.subscriber import Subscriber

pytestmark = pytest.mark.emulator


def pull_all(subscriber: Subscriber, path: str, expect: int, timeout: float = 10.0) -> list:
    received: list = []
    deadline = time.monotonic() + timeout
    while len(received) < expect and time.monotonic() < deadline:
        received += subscriber.pull(request={"subscription": path, "max_messages": 100,
                                             "return_immediately": True}, timeout=5).received_messages
    return received


def test_pull_gives_the_library_shaped_messages_and_ack_and_release_work(topology):
    subscriber = Subscriber()
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    assert path == topology.subscription_path(topology.names.retry_subscription)
    ids = {topology.publish(topology.names.retry_topic, f"r{i}".encode(), n=str(i)) for i in range(3)}

    received = pull_all(subscriber, path, 3)
    assert {m.message.message_id for m in received} == ids
    assert sorted(m.message.data for m in received) == [b"r0", b"r1", b"r2"]
    assert {m.message.attributes["n"] for m in received} == {"0", "1", "2"}
    assert all(isinstance(m.message.publish_time, datetime) for m in received)

    keep, give_back = received[:2], received[2]
    subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in keep]})
    subscriber.modify_ack_deadline(request={"subscription": path, "ack_ids": [give_back.ack_id],
                                            "ack_deadline_seconds": 0})
    [again] = pull_all(subscriber, path, 1)
    assert again.message.data == give_back.message.data
    subscriber.acknowledge(request={"subscription": path, "ack_ids": [again.ack_id]})
    assert pull_all(subscriber, path, 1, timeout=1.0) == []


def test_a_pull_with_nothing_to_give_answers_empty_by_its_timeout(topology):
    subscriber = Subscriber()
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    began = time.monotonic()
    response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=1.0)
    assert response.received_messages == []
    assert time.monotonic() - began < 5


def test_a_missing_subscription_is_an_error_naming_it(topology):
    subscriber = Subscriber()
    path = subscriber.subscription_path(topology.project, "no-such-subscription")
    with pytest.raises(ApiError, match=r"no-such-subscription.*HTTP 404"):
        subscriber.pull(request={"subscription": path, "max_messages": 1, "return_immediately": True}, timeout=5)


# --- through the Pub/Sub stand-in (measure.dev.pubsubproxy), which fails as the service can


@pytest.fixture(name="proxy")
def proxy_fixture(topology):
    with PubsubProxy(topology.emulator_host, pull_latency=(0.1, 0.2), empty_hold=0.5).start() as proxy:
        yield proxy


def through(proxy) -> Subscriber:
    return Subscriber(googleapi.Api(f"http://{proxy.host}", credentials.http(None, 4), googleapi.Backoff(first=0.05)))


def test_a_pull_that_gets_no_answer_in_time_is_empty(proxy, topology):
    subscriber = through(proxy)
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    proxy.set_faults("pull", schedule=["hang"] * 5, hang_s=5)
    began = time.monotonic()
    assert subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=1.5).received_messages == []
    assert time.monotonic() - began < 2.5


@pytest.mark.parametrize("faults", [["499"] * 80, ["499", "reset"] + ["503"] * 80])
def test_a_pull_that_keeps_failing_raises_a_transient_error_by_its_timeout(proxy, topology, faults):
    """The sweep counts it as an empty pull; an operator's command says what failed."""
    subscriber = through(proxy)
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    topology.publish(topology.names.retry_topic, b"leased to a broken pull")
    proxy.set_faults("pull", schedule=faults)
    began = time.monotonic()
    with pytest.raises(ApiError) as caught:
        subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=1.5)
    assert caught.value.transient and time.monotonic() - began < 2.5


def test_acknowledge_and_modify_go_out_in_chunks_the_service_accepts(proxy, topology):
    subscriber = through(proxy)
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    Publisher(topology.project).publish(topology.names.retry_topic, [(f"m{i}".encode(), {}) for i in range(2500)])
    received = topology.pull(topology.names.retry_subscription, expect=2500, timeout=60, max_messages=1000,
                             ack=False)
    assert len(received) == 2500
    ack_ids = [m.ack_id for m in received]
    subscriber.modify_ack_deadline(request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": 60})
    subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
    stats = proxy.stats()
    assert stats.get("refused", 0) == 0 and stats["acknowledge"] == 3 and stats["modifyAckDeadline"] == 3
    assert pull_all(subscriber, path, 1, timeout=1.0) == []


def test_a_hung_acknowledge_ends_by_the_timeout_it_was_given(proxy, topology):
    subscriber = through(proxy)
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    proxy.set_faults("acknowledge", hang_rate=1.0, hang_s=30)
    began = time.monotonic()
    with pytest.raises(ApiError):
        subscriber.acknowledge(request={"subscription": path, "ack_ids": ["a"] * 1500}, timeout=1.0)
    assert time.monotonic() - began < 2.0
