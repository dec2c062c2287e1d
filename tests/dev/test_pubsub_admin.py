"""measure.dev.pubsub_admin against the real emulator, checked with the client library as an independent reader."""

from __future__ import annotations

import pytest

from measure.dev import pubsub_admin as admin
from measure.dev.emulator import subscriber_client
from measure.gcp import credentials, googleapi

pytestmark = pytest.mark.emulator


def test_creates_are_idempotent_and_a_push_subscription_is_re_pointed(pubsub_emulator):
    project = pubsub_emulator.project
    api = googleapi.Api(f"http://{pubsub_emulator.host}", credentials.http(None, 4))
    topic, subscription = f"projects/{project}/topics/admin-t", f"projects/{project}/subscriptions/admin-s"

    assert admin.create_topic(api, topic) is True
    assert admin.create_topic(api, topic) is False
    assert admin.create_subscription(api, subscription, topic, ack_deadline_seconds=42,
                                     push_endpoint="http://127.0.0.1:1/a") is True
    assert admin.create_subscription(api, subscription, topic, push_endpoint="http://127.0.0.1:1/b") is False

    client = subscriber_client(pubsub_emulator.host)
    try:
        made = client.get_subscription(request={"subscription": subscription})
    finally:
        client.close()
    assert (made.topic, made.ack_deadline_seconds, made.push_config.push_endpoint) == (
        topic, 42, "http://127.0.0.1:1/b")


def test_a_subscription_on_a_missing_topic_is_an_error_naming_it(pubsub_emulator):
    api = googleapi.Api(f"http://{pubsub_emulator.host}", credentials.http(None, 4))
    project = pubsub_emulator.project
    with pytest.raises(googleapi.ApiError, match=r"create subscription .*admin-orphan: HTTP 404"):
        admin.create_subscription(api, f"projects/{project}/subscriptions/admin-orphan",
                                  f"projects/{project}/topics/no-such-topic")
