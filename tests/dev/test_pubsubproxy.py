"""measure.dev.pubsubproxy in front of the real emulator: it behaves as the service does."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from measure.dev.pubsubproxy import CallFaults, FaultsError, PubsubProxy
from measure.gcp import credentials, googleapi
from measure.gcp.subscriber import Subscriber

pytestmark = pytest.mark.emulator
# A reset half-way through the answer: the client's read of the body fails.
BROKEN_ANSWER = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


@pytest.fixture(name="proxy")
def proxy_fixture(topology):
    with PubsubProxy(topology.emulator_host, pull_latency=(0.6, 0.8), empty_hold=1.5, seed=1).start() as proxy:
        yield proxy


def raw_pull(proxy, topology, timeout: float, max_messages: int = 10) -> requests.Response:
    path = topology.subscription_path(topology.names.retry_subscription)
    return requests.post(f"http://{proxy.host}/v1/{path}:pull", json={"maxMessages": max_messages,
                                                                     "returnImmediately": True}, timeout=timeout)


def subscriber_through(proxy) -> Subscriber:
    return Subscriber(googleapi.Api(f"http://{proxy.host}", credentials.http(None, 4), googleapi.Backoff(first=0.05)))


def test_a_pull_leases_at_once_and_answers_after_its_latency(proxy, topology):
    topology.publish(topology.names.retry_topic, b"one")
    began = time.monotonic()
    answer = raw_pull(proxy, topology, timeout=5)
    assert 0.6 <= time.monotonic() - began < 2
    assert len(answer.json()["receivedMessages"]) == 1


def test_a_client_that_hangs_up_early_loses_the_messages_until_their_deadline(proxy, topology):
    topology.publish(topology.names.retry_topic, b"lost for now")
    with pytest.raises(requests.Timeout):
        raw_pull(proxy, topology, timeout=0.3)
    time.sleep(1.0)  # the proxy has answered into a closed connection by now
    assert proxy.stats()["abandoned"] == 1
    # Leased to the pull that gave up: the next pull does not see it (the deadline is 60 s).
    assert raw_pull(proxy, topology, timeout=5).json().get("receivedMessages", []) == []


def test_an_empty_pull_is_held_open_and_answers_when_a_message_arrives(proxy, topology):
    began = time.monotonic()
    assert raw_pull(proxy, topology, timeout=5).json().get("receivedMessages", []) == []
    assert 1.5 <= time.monotonic() - began < 3  # returnImmediately ignored, as deprecated
    threading.Timer(0.5, topology.publish, (topology.names.retry_topic, b"late")).start()
    began = time.monotonic()
    assert len(raw_pull(proxy, topology, timeout=5).json()["receivedMessages"]) == 1
    assert time.monotonic() - began < 1.5


def test_over_limit_acknowledge_and_modify_requests_are_refused_with_400(proxy, topology):
    path = topology.subscription_path(topology.names.retry_subscription)
    for call, extra in (("acknowledge", {}), ("modifyAckDeadline", {"ackDeadlineSeconds": 10})):
        answer = requests.post(f"http://{proxy.host}/v1/{path}:{call}",
                               json={"ackIds": [f"id-{i}" for i in range(1001)], **extra}, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    big = requests.post(f"http://{proxy.host}/v1/{path}:acknowledge", json={"ackIds": ["x" * 600_000]}, timeout=5)
    assert big.status_code == 400
    assert requests.post(f"http://{proxy.host}/v1/{path}:modifyAckDeadline",
                         json={"ackIds": ["a"], "ackDeadlineSeconds": 601}, timeout=5).status_code == 400
    assert proxy.stats()["refused"] == 4


def test_scheduled_faults_answer_each_status_reset_the_connection_or_hang(proxy, topology):
    path = topology.subscription_path(topology.names.retry_subscription)
    url = f"http://{proxy.host}/v1/{path}:acknowledge"
    topology.publish(topology.names.retry_topic, b"acked")
    ack = {"ackIds": [raw_pull(proxy, topology, timeout=5).json()["receivedMessages"][0]["ackId"]]}
    proxy.set_faults("acknowledge", schedule=["429", "499", "500", "503", "reset", "hang", None], hang_s=1.0)
    statuses = [requests.post(url, json=ack, timeout=5).status_code for _ in range(4)]
    assert statuses == [429, 499, 500, 503]
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(url, json={"ackIds": []}, timeout=5).json()
    began = time.monotonic()
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(url, json=ack, timeout=5)
    assert 1.0 <= time.monotonic() - began < 3
    assert requests.post(url, json=ack, timeout=5).status_code == 200
    stats = proxy.stats()
    assert stats["acknowledge"] == 7 and stats["fault reset"] == 1 and stats["fault hang"] == 1


def test_a_reset_pull_took_effect_the_messages_are_leased_and_not_seen(proxy, topology):
    topology.publish(topology.names.retry_topic, b"reset")
    proxy.set_faults("pull", schedule=["reset"])
    with pytest.raises(BROKEN_ANSWER):
        raw_pull(proxy, topology, timeout=5)
    assert proxy.stats()["leased"] == 1
    assert raw_pull(proxy, topology, timeout=5).json().get("receivedMessages", []) == []


def test_a_hung_publish_holds_the_caller_until_its_timeout(proxy, topology):
    proxy.set_faults("publish", hang_rate=1.0, hang_s=30)
    path = topology.topic_path(topology.names.retry_topic)
    began = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.post(f"http://{proxy.host}/v1/{path}:publish", json={"messages": [{"data": "eA=="}]}, timeout=0.5)
    assert time.monotonic() - began < 2
    proxy.clear_faults()
    answer = requests.post(f"http://{proxy.host}/v1/{path}:publish", json={"messages": [{"data": "eA=="}]}, timeout=5)
    assert answer.status_code == 200 and answer.json()["messageIds"]


def test_random_faults_come_at_about_their_rate(proxy, topology):
    proxy.set_faults("modifyAckDeadline", status={503: 0.5})
    path = topology.subscription_path(topology.names.retry_subscription)
    url = f"http://{proxy.host}/v1/{path}:modifyAckDeadline"
    statuses = [requests.post(url, json={"ackIds": [], "ackDeadlineSeconds": 0}, timeout=5).status_code
                for _ in range(100)]
    # The emulator refuses an empty list (400); what matters is which calls reached it.
    assert 30 <= statuses.count(503) <= 70 and proxy.stats()["fault 503"] == statuses.count(503)


def test_the_rest_of_the_api_is_forwarded_so_the_subscriber_works_through_it(proxy, topology):
    subscriber = subscriber_through(proxy)
    path = topology.subscription_path(topology.names.retry_subscription)
    topology.publish(topology.names.retry_topic, b"through")
    [received] = subscriber.pull(request={"subscription": path, "max_messages": 5}, timeout=5).received_messages
    subscriber.acknowledge(request={"subscription": path, "ack_ids": [received.ack_id]})
    assert requests.get(f"http://{proxy.host}/v1/{path}", timeout=5).json()["name"] == path


def test_bad_fault_settings_name_the_setting():
    with pytest.raises(FaultsError, match="status 502"):
        CallFaults(status={502: 0.1})
    with pytest.raises(FaultsError, match="add up to"):
        CallFaults(status={503: 0.6}, reset_rate=0.6)
    with pytest.raises(FaultsError, match="schedule entry 'boom'"):
        CallFaults(schedule=("boom",))
    with pytest.raises(FaultsError, match="call 'push'"):
        PubsubProxy("127.0.0.1:1").set_faults("push", hang_rate=1.0)
