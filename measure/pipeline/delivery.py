"""One delivery attempt of one event, and where the event goes after it (`send`, and `sweep`'s re-sends).

    delivered / duplicate -> done
    rejected              -> measure-dead-letter, with the reason
    transient             -> measure-retry, with attempt count, first failure, next due time, last error

While the circuit breaker is open no attempt is made: the event goes straight to the retry topic.
Every hand-on is confirmed by Pub/Sub before the attempt counts as handled; if it cannot be, the
PublishError propagates so Eventarc redelivers the message (a repeat is harmless: the
transaction_id is stable and the Measurement API answers "Duplicate request detected").
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

from measure import events, logs
from measure.config import Config
from measure.gcp.publisher import Publisher
from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.message import Envelope, UndecodableMessageError, dead_letter_message, decode, retry_message
from measure.tune import params as tune_params
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind, Outcome


@dataclass(frozen=True)
class Handled:
    """What became of one event: `result` is delivered, duplicate, dead_lettered, retried or deferred."""

    result: str
    outcome: Outcome | None = None


class Delivery:
    def __init__(
        self,
        config: Config,
        client: MeasurementClient,
        publisher: Publisher,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
        schedule: tuple[float, ...] | None = None,
    ):
        self.config = config
        self.client = client
        self.publisher = publisher
        self.breaker = breaker or CircuitBreaker()
        self.clock = clock
        self.schedule = schedule or retry.schedule_from_env()

    # --- send: a Pub/Sub message from measure-events ---------------------------------------
    def handle_cloud_event(self, cloud_event) -> Handled:
        """The `send` function: the CloudEvent of a messagePublished (or a raw push converted to one)."""
        message = (cloud_event.data or {}).get("message") or {}
        try:
            data = base64.b64decode(message.get("data") or "", validate=True)
        except (ValueError, TypeError):
            data = str(message.get("data")).encode()
        return self.process(data, message.get("attributes") or {}, component="send")

    def process(self, data: bytes, attributes: dict[str, str], component: str = "send") -> Handled:
        try:
            envelope = decode(data)
        except UndecodableMessageError as exc:
            self.dead_letter_raw(data, attributes, str(exc), component)
            return Handled("dead_lettered")
        return self.attempt(envelope, component)

    def dead_letter_raw(self, data: bytes, attributes: dict[str, str], reason: str, component: str) -> None:
        self.publisher.publish_one(
            self.config.dead_letter_topic,
            dead_letter_message("undecodable", reason, self.clock(), raw=data, attributes=attributes),
        )
        logs.warning("dead-lettered an undecodable message", component=component, reason=reason,
                     event_id=attributes.get("event_id"), outcome="undecodable")

    # --- the attempt itself, shared with sweep ------------------------------------------------
    def attempt(self, envelope: Envelope, component: str) -> Handled:
        event, state = envelope.event, envelope.retry
        site_id = self.config.site_id(event.platform, event.storefront)
        if site_id is None:
            reason = f"no site id configured for {event.platform}/{event.storefront} (MEASURE_SITE_IDS)"
            return self._dead(envelope, "rejected", reason, component)
        if not self.breaker.allow():
            now = self.clock()
            # It waits out the circuit's cooldown, when the next trial attempt may go out.
            next_state = retry.deferred(state, "circuit open: the Measurement API keeps failing", now,
                                        self.breaker.cooldown)
            self.publisher.publish_one(self.config.retry_topic, retry_message(event, next_state))
            logs.info("deferred: circuit open", component=component, event_id=event.event_id, outcome="deferred")
            return Handled("deferred")
        params = tune_params.to_params(event, advertiser_id=self.config.advertiser_id, site_id=site_id)
        outcome = self.client.deliver(params)
        self.breaker.record(outcome)
        self._log(event, outcome, component, state)
        if outcome.kind.done:
            return Handled(outcome.kind.value, outcome)
        if outcome.kind is Kind.REJECTED:
            return self._dead(envelope, "rejected", outcome.reason, component, outcome)
        next_state = retry.after_failure(state, outcome.reason, self.clock(), self.schedule)
        self.publisher.publish_one(self.config.retry_topic, retry_message(event, next_state))
        return Handled("retried", outcome)

    def _dead(self, envelope: Envelope, kind: str, reason: str, component: str,
              outcome: Outcome | None = None) -> Handled:
        attempts = (envelope.retry.attempt if envelope.retry else 0) + (1 if outcome else 0)
        self.publisher.publish_one(
            self.config.dead_letter_topic,
            dead_letter_message(kind, reason, self.clock(), event=envelope.event, attempts=attempts),
        )
        logs.warning("dead-lettered", component=component, event_id=envelope.event.event_id, kind=kind,
                     reason=reason, outcome=None if outcome else kind)
        return Handled("dead_lettered", outcome)

    def _log(self, event: events.Event, outcome: Outcome, component: str, state: retry.RetryState | None) -> None:
        # The line the log-based metrics count: message "delivery", outcome, latency_ms, event_age_s.
        logs.log(
            "WARNING" if outcome.kind in (Kind.REJECTED, Kind.TRANSIENT) else "INFO",
            "delivery",
            component=component,
            event_id=event.event_id,
            event_name=event.event_name,
            attempt=(state.attempt if state else 0) + 1,
            event_age_s=round(self.clock() - event.time_stamp, 1),
            **outcome.to_log(),
        )
