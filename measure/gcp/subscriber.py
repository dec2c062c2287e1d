"""Pulling from a Pub/Sub subscription over REST: pull, acknowledge, modify ack deadlines.

The sweeper's side of measure-retry-sweeper. It answers to the same calls, request dicts and
result attributes as the client library's SubscriberClient (`pull(request=..., timeout=...)`
giving `.received_messages`, each with `.ack_id` and `.message.data/.attributes/.message_id`),
so code written against one runs against the other; measure.gcp.googleapi says why not the library.
Every call is retried while transient (409 ABORTED, 429, 5xx, no answer) within its timeout.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from measure.gcp import googleapi

CALL_TIMEOUT = 30.0  # acknowledge / modify: small calls, retried while transient within this


@dataclass(frozen=True)
class PubsubMessage:
    data: bytes
    attributes: dict[str, str]
    message_id: str
    publish_time: datetime | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    ack_id: str
    message: PubsubMessage
    delivery_attempt: int = 0


@dataclass(frozen=True)
class PullResponse:
    received_messages: list[ReceivedMessage] = field(default_factory=list)


def _received(item: dict[str, Any]) -> ReceivedMessage:
    message = item.get("message", {})
    published = message.get("publishTime")
    return ReceivedMessage(
        ack_id=item["ackId"],
        message=PubsubMessage(
            data=base64.b64decode(message.get("data", "")),
            attributes=dict(message.get("attributes") or {}),
            message_id=str(message.get("messageId", "")),
            publish_time=datetime.fromisoformat(published.replace("Z", "+00:00")) if published else None,
        ),
        delivery_attempt=int(item.get("deliveryAttempt") or 0),
    )


class Subscriber:
    def __init__(self, api: googleapi.Api | None = None):
        self._api = api

    @property
    def api(self) -> googleapi.Api:
        if self._api is None:
            self._api = googleapi.pubsub()
        return self._api

    def close(self) -> None:
        """Close the connections of the session (a command-line run that is done with it)."""
        if self._api is not None:
            self._api.session.close()

    @staticmethod
    def subscription_path(project: str, subscription: str) -> str:
        return f"projects/{project}/subscriptions/{subscription}"

    def pull(self, request: dict[str, Any], timeout: float) -> PullResponse:
        """Up to `max_messages`; an empty answer when none came within `timeout` seconds."""
        body = {"maxMessages": request["max_messages"]}
        if request.get("return_immediately"):
            body["returnImmediately"] = True
        try:
            # A pull that is slow to answer is the real service's normal "nothing to do".
            answer = self.api.call("POST", f"/v1/{request['subscription']}:pull", body, timeout=timeout,
                                   what=f"pull from {request['subscription']}")
        except googleapi.DeadlineExceededError:
            return PullResponse()
        return PullResponse([_received(item) for item in answer.get("receivedMessages", ())])

    def acknowledge(self, request: dict[str, Any]) -> None:
        self.api.call("POST", f"/v1/{request['subscription']}:acknowledge", {"ackIds": list(request["ack_ids"])},
                      timeout=CALL_TIMEOUT, what=f"acknowledge on {request['subscription']}")

    def modify_ack_deadline(self, request: dict[str, Any]) -> None:
        self.api.call("POST", f"/v1/{request['subscription']}:modifyAckDeadline",
                      {"ackIds": list(request["ack_ids"]), "ackDeadlineSeconds": request["ack_deadline_seconds"]},
                      timeout=CALL_TIMEOUT, what=f"modify ack deadline on {request['subscription']}")
