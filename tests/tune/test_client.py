"""The Measurement API client against the sandbox: signing on the wire, outcomes, connection handling."""

import socket

import pytest

from measure.tools.sandbox import Sandbox
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY

PARAMS = {"action": "session", "advertiser_id": ADVERTISER, "site_id": "2960", "sdk": "server",
          "response_format": "json", "user_id": "u 1+&=", "device_ip": "175.124.248.15",
          "system_date": "1795459363", "transaction_id": "t-1"}


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as box:
        yield box


def client_for(url, private_key=PRIVATE_KEY, **kwargs):
    return MeasurementClient(url, lambda: (CONSUMER_KEY, private_key), **kwargs)


def test_a_signed_post_is_verified_and_delivered(sandbox):
    outcome = client_for(sandbox.serve_url).deliver(PARAMS)
    assert outcome.kind is Kind.DELIVERED and outcome.status == 200 and outcome.log_id
    (seen,) = sandbox.requests(transaction_id="t-1")
    assert seen["params"]["user_id"] == "u 1+&="  # escaped in the body, intact at the other end


def test_wrong_key_is_rejected_and_a_repeat_is_a_duplicate(sandbox):
    assert client_for(sandbox.serve_url, private_key="wrong").deliver(PARAMS).kind is Kind.REJECTED
    client = client_for(sandbox.serve_url)
    assert [client.deliver(PARAMS).kind, client.deliver(PARAMS).kind] == [Kind.DELIVERED, Kind.DUPLICATE]


def test_read_timeout_and_refused_connection_are_transient_outages(sandbox):
    sandbox.set_faults(timeout_rate=1.0, hang_s=2)
    outcome = client_for(sandbox.serve_url, read_timeout=0.3).deliver(PARAMS)
    assert (outcome.kind, outcome.reason, outcome.outage) == (Kind.TRANSIENT, "timeout", True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = client_for(f"http://127.0.0.1:{port}/serve").deliver(PARAMS)
    assert refused.kind is Kind.TRANSIENT and refused.reason.startswith("connection error")


def test_dropped_connection_and_5xx_are_transient(sandbox):
    sandbox.set_faults(drop_rate=1.0)
    assert client_for(sandbox.serve_url).deliver(PARAMS).kind is Kind.TRANSIENT
    sandbox.set_faults(status={503: 1.0})
    outcome = client_for(sandbox.serve_url).deliver(PARAMS)
    assert (outcome.kind, outcome.status) == (Kind.TRANSIENT, 503)


def test_connections_are_reused(sandbox):
    client = client_for(sandbox.serve_url)
    for i in range(20):
        client.deliver({**PARAMS, "transaction_id": f"reuse-{i}"})
    assert (client.pool.connections_made, client.pool.requests_sent) == (1, 20)


def test_plain_http_to_a_remote_host_and_unsafe_parameter_names_are_refused():
    with pytest.raises(ValueError, match="https"):
        client_for("http://203.0.113.7/serve")
    with pytest.raises(ValueError, match="parameter name"):
        client_for("http://127.0.0.1:9/serve").deliver({"a&b": "1"})
