"""What a signed client sends the sandbox in these tests: its key pair, an event, a POST."""

from __future__ import annotations

import uuid

from measure.dev.sandbox import RESPONDER_HEADER
from measure.signing import MeasureAuth

CONSUMER = "sandbox-consumer"
PRIVATE = "sandbox-private-key-do-not-show"
ADVERTISER = "877"
AUTH = MeasureAuth(CONSUMER, PRIVATE)


def event(**overrides):
    params = {
        "action": "session",
        "advertiser_id": ADVERTISER,
        "site_id": "2960",
        "sdk": "server",
        "response_format": "json",
        "user_id": "player-1",
        "device_ip": "203.0.113.7",
        "transaction_id": uuid.uuid4().hex,
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


def post(session, sandbox, params, auth=AUTH, **kwargs):
    kwargs.setdefault("timeout", 5)
    return session.post(sandbox.serve_url, data=params, auth=auth, **kwargs)


def assert_rejected(response, fragment):
    assert response.status_code == 400
    assert response.headers[RESPONDER_HEADER] == "sandbox"
    body = response.json()
    assert body["success"] is False
    assert any(fragment in message for message in body["message"]), body["message"]
