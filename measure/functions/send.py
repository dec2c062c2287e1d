"""The `send` function: one Pub/Sub message from measure-events, as Eventarc's CloudEvent (or a raw
push converted to one), decoded and given one delivery attempt (measure.pipeline.delivery).

Eventarc pushes a binary-mode CloudEvent whose data is `{"message": {"data": <base64>, "attributes":
{...}, ...}, "subscription": ...}`, `data` absent when the message has none. A message that is not a
measure event, and a CloudEvent that does not carry a Pub/Sub message at all, is dead-lettered as
undecodable with its raw bytes and answered 2xx, never crash-looped: Eventarc would redeliver it for
24 hours and then drop it. A PublishError (a hand-on Pub/Sub did not confirm) propagates: the
function fails and Eventarc delivers the message again.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from measure.pipeline.delivery import Delivery, Handled
from measure.pipeline.message import UndecodableMessageError, decode


class Sender:
    def __init__(self, delivery: Delivery):
        self.delivery = delivery

    def handle(self, cloud_event: Any) -> Handled:  # a cloudevents CloudEvent
        """The entry point: the messagePublished CloudEvent's message."""
        envelope = cloud_event.data
        message = envelope.get("message") if isinstance(envelope, dict) else None
        if not isinstance(message, dict):
            reason = "the CloudEvent's data is not a Pub/Sub messagePublished envelope (no message object)"
            return self.delivery.dead_letter("undecodable", reason, "send", raw=_raw(envelope))
        raw_attributes = message.get("attributes")
        # Pub/Sub's attributes are strings; anything else is kept as text, so its dead letter can carry it.
        attributes = ({str(key): str(value) for key, value in raw_attributes.items()}
                      if isinstance(raw_attributes, dict) else {})
        encoded = message.get("data")
        data = _base64(encoded)
        if data is None:
            return self.delivery.dead_letter("undecodable", "the CloudEvent's message.data is not base64", "send",
                                             raw=_raw(encoded), attributes=attributes)
        return self.process(data, attributes)

    def process(self, data: bytes, attributes: dict[str, str]) -> Handled:
        try:
            envelope = decode(data)
        except UndecodableMessageError as exc:
            return self.delivery.dead_letter("undecodable", str(exc), "send", raw=data, attributes=attributes)
        return self.delivery.attempt(envelope, "send")


def _base64(encoded: object) -> bytes | None:
    """A message's data from its base64 text (Eventarc leaves `data` out of a message that has none,
    which is the empty message); None when it is not base64 text."""
    if encoded is None:
        return b""
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _raw(event_data: object) -> bytes:
    """What arrived, as bytes, for the dead letter of a CloudEvent that carried no readable message:
    a body functions-framework could not parse as JSON comes as bytes or text, anything else as JSON."""
    if event_data is None:  # an empty body
        return b""
    if isinstance(event_data, bytes):
        return event_data
    if isinstance(event_data, str):
        return event_data.encode("utf-8", "backslashreplace")
    return json.dumps(event_data, default=str).encode()
