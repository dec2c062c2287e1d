"""Pulling from a Pub/Sub subscription over REST: pull, acknowledge, modify ack deadlines.

The sweeper's side of measure-retry-sweeper. It answers to the same calls, request dicts and
result attributes as the client library's SubscriberClient (`pull(request=..., timeout=...)`
giving `.received_messages`, each with `.ack_id` and `.message.data/.attributes/.message_id`),
so code written against one runs against the other; measure.gcp.googleapi says why not the library.
Every call is retried while transient (409 ABORTED, 429, 499 CANCELLED, 5xx, no answer) within its
timeout, which the caller bounds (a sweep: by the time left in its run).

A pull that gets no answer within its timeout answers empty (the service holds a pull of an empty
subscription open); one that fails otherwise (a connection broken while reading the answer, a 5xx
to the end) raises a transient ApiError, which the sweep counts as an empty pull and an operator's
command reports. acknowledge/modifyAckDeadline go out in
chunks of at most MAX_ACK_IDS ids (the service refuses larger requests with a 400 that no retry
cures; the client library's dispatcher sends 1,000 ids a request), every chunk tried even when one
before it failed.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from measure.gcp import googleapi

CALL_TIMEOUT = 30.0  # acknowledge / modify: small calls, retried while transient within this at most
MAX_ACK_IDS = 1000  # ack ids in one acknowledge/modifyAckDeadline request (python-pubsub's dispatcher)
# The service refuses a request over 512 KB; real ack ids are a few hundred bytes, so this only
# matters for ids far longer than usual.
MAX_ACK_BYTES = 400 * 1024


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
        """Close the pool's connections (a command-line run that is done with them)."""
        if self._api is not None:
            self._api.close()

    @staticmethod
    def subscription_path(project: str, subscription: str) -> str:
        return f"projects/{project}/subscriptions/{subscription}"

    def pull(self, request: dict[str, Any], timeout: float) -> PullResponse:
        """Up to `max_messages`; an empty answer when none came within `timeout` seconds."""
        body = {"maxMessages": request["max_messages"]}
        if request.get("return_immediately"):
            body["returnImmediately"] = True
        try:
            answer = self.api.call("POST", f"/v1/{request['subscription']}:pull", body, timeout=timeout,
                                   what=f"pull from {request['subscription']}")
        except googleapi.DeadlineExceededError:
            return PullResponse()
        return PullResponse([_received(item) for item in answer.get("receivedMessages", ())])

    def acknowledge(self, request: dict[str, Any], timeout: float = CALL_TIMEOUT) -> None:
        """Acknowledge `ack_ids`, in chunks, within `timeout` seconds for all of them."""
        self._each_chunk("acknowledge", request, {}, timeout)

    def modify_ack_deadline(self, request: dict[str, Any], timeout: float = CALL_TIMEOUT) -> None:
        """Set the ack deadline of `ack_ids` to `ack_deadline_seconds` (0: offer them again now)."""
        self._each_chunk("modifyAckDeadline", request, {"ackDeadlineSeconds": request["ack_deadline_seconds"]},
                         timeout)

    def _each_chunk(self, method: str, request: dict[str, Any], fields: dict[str, Any], timeout: float) -> None:
        subscription = request["subscription"]
        deadline = time.monotonic() + timeout
        failed: list[tuple[int, googleapi.ApiError]] = []
        for ack_ids in chunks(list(request["ack_ids"])):
            try:
                self.api.call("POST", f"/v1/{subscription}:{method}", {"ackIds": ack_ids, **fields},
                              timeout=max(0.0, deadline - time.monotonic()), what=f"{method} on {subscription}")
            except googleapi.ApiError as error:
                failed.append((len(ack_ids), error))
        if failed:
            count, first = sum(n for n, _ in failed), failed[0][1]
            raise googleapi.ApiError(f"{method} on {subscription}", first.status,
                                     f"{count} of {len(request['ack_ids'])} ack ids not confirmed: {first}",
                                     transient=first.transient, code=first.code) from first


def chunks(ack_ids: list[str]) -> list[list[str]]:
    """`ack_ids` in requests the service accepts: at most MAX_ACK_IDS ids and MAX_ACK_BYTES each."""
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for ack_id in ack_ids:
        cost = len(ack_id) + 3  # quotes and a comma in the JSON body
        if current and (len(current) >= MAX_ACK_IDS or size + cost > MAX_ACK_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(ack_id)
        size += cost
    if current:
        out.append(current)
    return out
