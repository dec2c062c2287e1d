"""The `send` function: one Pub/Sub message from measure-events, as Eventarc's CloudEvent (or a raw
push converted to one), decoded and given one delivery attempt (measure.pipeline.delivery).

A message that is not a measure event is dead-lettered with its raw bytes, never crash-looped.
A PublishError (a hand-on Pub/Sub did not confirm) propagates: the function fails and Eventarc
delivers the message again.
"""

from __future__ import annotations

import base64
from typing import Any

from measure.pipeline.delivery import Delivery, Handled
from measure.pipeline.message import UndecodableMessageError, decode


class Sender:
    def __init__(self, delivery: Delivery):
        self.delivery = delivery

    def handle(self, cloud_event: Any) -> Handled:  # a cloudevents CloudEvent
        """The entry point: the messagePublished CloudEvent's message."""
        message = (cloud_event.data or {}).get("message") or {}
        try:
            data = base64.b64decode(message.get("data") or "", validate=True)
        except (ValueError, TypeError):
            data = str(message.get("data")).encode()
        return self.process(data, message.get("attributes") or {})

    def process(self, data: bytes, attributes: dict[str, str]) -> Handled:
        try:
            envelope = decode(data)
        except UndecodableMessageError as exc:
            return self.delivery.dead_letter("undecodable", str(exc), "send", raw=data, attributes=attributes)
        return self.delivery.attempt(envelope, "send")
