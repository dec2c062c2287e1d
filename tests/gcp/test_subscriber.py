"""measure.gcp.subscriber.Subscriber against the real emulator: what the sweeper relies on."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

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
    from measure.gcp.googleapi import ApiError

    subscriber = Subscriber()
    path = subscriber.subscription_path(topology.project, "no-such-subscription")
    with pytest.raises(ApiError, match=r"no-such-subscription.*HTTP 404"):
        subscriber.pull(request={"subscription": path, "max_messages": 1, "return_immediately": True}, timeout=5)
