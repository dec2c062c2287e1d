"""One delivery attempt of one event, and where the event goes after it (`send`, and `sweep`'s re-sends).

    delivered / duplicate -> done
    rejected              -> measure-dead-letter, with the reason
    transient             -> measure-retry, with attempt count, first failure, next due time, last error

No attempt is made while the circuit breaker is open, or while the instance already has as many
attempts in flight as the API currently bears (measure.pipeline.concurrency) and none comes free
in time: the event goes straight to the retry topic ("deferred"), its attempt count unchanged.
Every hand-on is confirmed by Pub/Sub before the attempt counts as handled; if it cannot be, the
PublishError propagates so the message is delivered again (a repeat is harmless: the
transaction_id is stable and the Measurement API answers "Duplicate request detected").

Dead letters from anywhere in the pipeline (rejected, expired, undecodable) go through
`Delivery.dead_letter`, so they share one shape and one log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from measure import events, logs
from measure.config import Config
from measure.gcp.publisher import Publisher
from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.concurrency import ConcurrencyLimit
from measure.pipeline.message import Envelope, dead_letter_message, retry_message
from measure.pipeline.ratelimit import RateLimit
from measure.tune import params as tune_params
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind, Outcome


class Result(StrEnum):
    """What became of one event after `send` or a sweep handled it."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"  # delivered before: done
    DEAD_LETTERED = "dead_lettered"
    RETRIED = "retried"  # attempted, failed for now: on the retry topic
    DEFERRED = "deferred"  # not attempted (circuit open, or no slot in time): on the retry topic


_DONE = {Kind.DELIVERED: Result.DELIVERED, Kind.DUPLICATE: Result.DUPLICATE}


# Why an event was not attempted (its log line, its retry state, a sweep that stopped at it).
CIRCUIT_OPEN = "circuit open: the Measurement API keeps failing"
RATE_CEILING = "rate ceiling: MEASURE_API_MAX_RPS leaves no room in time"

@dataclass(frozen=True)
class Handled:
    result: Result
    outcome: Outcome | None = None


class Delivery:
    def __init__(
        self,
        config: Config,
        client: MeasurementClient,
        publisher: Publisher,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
        limit: ConcurrencyLimit | None = None,
        rate: RateLimit | None = None,
    ):
        self.config = config
        self.client = client
        self.publisher = publisher
        self.breaker = breaker or CircuitBreaker(cooldown=config.breaker_cooldown)
        self.limit = limit or ConcurrencyLimit()
        self.clock = clock
        self.schedule = config.retry_schedule
        # This instance's share of MEASURE_API_MAX_RPS (None: no ceiling): every attempt passes here.
        self.rate = rate or RateLimit.share(config.api_max_rps, config.api_senders)

    def attempt(self, envelope: Envelope, component: str, wait: float | None = None) -> Handled:
        """One attempt, if the breaker and the concurrency limit let it out; `wait` bounds the
        seconds spent waiting for a slot (default: the API timeout, what one more attempt costs)."""
        event, state = envelope.event, envelope.retry
        site_id = self.config.site_id(event.platform, event.storefront)
        if site_id is None:
            reason = f"no site id configured for {event.platform}/{event.storefront} (MEASURE_SITE_IDS)"
            return self.dead_letter("rejected", reason, component, envelope=envelope)
        if not self.breaker.ready():  # asked first, so an open circuit costs no wait for a slot
            return self._defer(envelope, component, CIRCUIT_OPEN, self.breaker.seconds_until_ready())
        # Waited for before a concurrency slot is taken, so a paced attempt holds no slot meanwhile.
        if self.rate and not self.rate.acquire(self.config.api_timeout if wait is None else wait):
            return self._defer(envelope, component, RATE_CEILING, self.schedule[0])
        if not self.limit.acquire(self.config.api_timeout if wait is None else wait):
            return self._defer(envelope, component, "concurrency limit: the Measurement API is slow to answer",
                               self.schedule[0])
        outcome = None
        allowed = False
        try:
            if not self.breaker.allow():
                return self._defer(envelope, component, CIRCUIT_OPEN, self.breaker.seconds_until_ready())
            allowed = True
            params = tune_params.to_params(event, advertiser_id=self.config.advertiser_id, site_id=site_id)
            outcome = self.client.deliver(params)
        finally:
            self.limit.release(outcome)
            if allowed and outcome is None:  # it raised (a secret unavailable, ...): no outcome to record
                self.breaker.release()
        self.breaker.record(outcome)
        self._log(event, outcome, component, state, params)
        if outcome.kind.done:
            return Handled(_DONE[outcome.kind], outcome)
        if outcome.kind is Kind.REJECTED:
            return self.dead_letter("rejected", outcome.reason, component, envelope=envelope, outcome=outcome)
        next_state = retry.after_failure(state, outcome.reason, self.clock(), self.schedule, outcome.retry_after)
        self.publisher.publish_one(self.config.retry_topic, retry_message(event, next_state))
        # When the next attempt is due: what `python -m measure status` shows (failures only, so rare).
        logs.info("retry due", component=component, event_id=event.event_id, attempt=next_state.attempt,
                  retry_due=round(next_state.next_due, 3))
        return Handled(Result.RETRIED, outcome)

    def _defer(self, envelope: Envelope, component: str, reason: str, delay: float) -> Handled:
        # It waits out what held it back (the circuit's cooldown, or a first backoff step).
        next_state = retry.deferred(envelope.retry, reason, self.clock(), delay)
        self.publisher.publish_one(self.config.retry_topic, retry_message(envelope.event, next_state))
        logs.info(f"deferred: {reason.partition(':')[0]}", component=component, event_id=envelope.event.event_id,
                  outcome="deferred", retry_due=round(next_state.next_due, 3))
        return Handled(Result.DEFERRED)

    def dead_letter(self, kind: str, reason: str, component: str, *, envelope: Envelope | None = None,
                    outcome: Outcome | None = None, raw: bytes | None = None,
                    attributes: dict[str, str] | None = None) -> Handled:
        """Hand an event (or an undecodable message's raw bytes) to measure-dead-letter.

        kind: rejected (the API or our configuration said no), expired, undecodable."""
        event = envelope.event if envelope else None
        attempts = ((envelope.retry.attempt if envelope and envelope.retry else 0)
                    + (1 if outcome else 0))
        self.publisher.publish_one(
            self.config.dead_letter_topic,
            dead_letter_message(kind, reason, self.clock(), event=event, attempts=attempts, raw=raw,
                                attributes=attributes),
        )
        event_id = event.event_id if event else (attributes or {}).get("event_id")
        # An attempt's own "delivery" line already carries its outcome; other dead letters log theirs here.
        logs.warning("dead-lettered", component=component, event_id=event_id, kind=kind, reason=reason,
                     outcome=None if outcome else kind)
        return Handled(Result.DEAD_LETTERED, outcome)

    def _log(self, event: events.Event, outcome: Outcome, component: str, state: retry.RetryState | None,
             params: dict[str, str]) -> None:
        # The line the log-based metrics count: message "delivery", outcome, latency_ms, event_age_s;
        # and what TUNE answered: http_status, log_id, site_event_type (ops' `status` reads them).
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
        # A recorded event typed otherwise than its action (the events guide's "Potential Conflicts"):
        # Terraform's log-based metric measure_type_mismatch counts these lines.
        if outcome.kind.done and tune_params.type_mismatch(params, outcome.site_event_type):
            logs.warning("type mismatch", component=component, event_id=event.event_id, action=params.get("action"),
                         site_event_type=outcome.site_event_type)
