"""The sweep (measure.functions.sweep) on the real emulator, against the sandbox."""

import threading
import time

import requests

from measure.dev.pubsubproxy import PubsubProxy
from measure.functions.sweep import DEADLINE_STEPS, Sweeper, Tally, deadline_step
from measure.gcp.subscriber import Subscriber
from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker, State
from measure.pipeline.delivery import Delivery, Result
from measure.pipeline.message import retry_message
from measure.tune.outcome import Kind, Outcome
from tests.helpers import base_env
from tests.pipeline.stack import Pipeline, make_event, pipeline_fixture, sandbox_fixture  # noqa: F401


class CountingSubscriber(Subscriber):
    """The real REST subscriber, counting its calls."""

    def __init__(self):
        super().__init__()
        self.pulls: list[int] = []
        self.modifies: list[tuple[int, int]] = []  # (ack ids, deadline seconds) a call

    def pull(self, request, timeout):
        self.pulls.append(request["max_messages"])
        return super().pull(request, timeout)

    def modify_ack_deadline(self, request, timeout=30.0):
        self.modifies.append((len(request["ack_ids"]), request["ack_deadline_seconds"]))
        super().modify_ack_deadline(request, timeout)


def sweeper_with(pipeline, subscriber, **kwargs) -> Sweeper:
    kwargs = {"return_immediately": True, **kwargs}
    return Sweeper(pipeline.config, pipeline.delivery, subscriber, **kwargs)


def publish_retries(pipeline, count, due_in, prefix="r", attempt=1):
    now = time.time()
    made = [make_event(user_id=f"{prefix}{i}") for i in range(count)]
    messages = [retry_message(e, retry.RetryState(attempt, now - 5, now + due_in(i), "HTTP 503"))
                for i, e in enumerate(made)]
    pipeline.publisher.publish(pipeline.config.retry_topic, messages)
    return made


def test_deadline_steps_hide_a_message_at_least_as_long_as_asked_and_little_longer():
    for wait in [0.2, 1, 1.5, 9.9, 10.5, 61, 100, 599, 600]:
        step = deadline_step(wait)
        assert wait <= step <= max(wait + 1, wait * 1.25)  # whole seconds up to 10
    assert deadline_step(5000) == 600 == DEADLINE_STEPS[-1]


def test_an_idle_sweep_makes_one_pull_and_ends_when_the_service_answers_it_empty(topology, sandbox, monkeypatch):
    """The stand-in holds an empty pull open for 2 s, as the service does (until the client's timeout)."""
    with PubsubProxy(topology.emulator_host, empty_hold=2.0).start() as proxy:
        pipeline = Pipeline(topology, sandbox, monkeypatch, PUBSUB_EMULATOR_HOST=proxy.host)
        subscriber = CountingSubscriber()
        summary = sweeper_with(pipeline, subscriber, return_immediately=False).run(budget=30)
    assert summary["pulled"] == 0 and subscriber.pulls == [8]
    assert 2.0 <= summary["elapsed"] < 3.5


def test_ack_deadline_extensions_are_one_call_per_distinct_deadline(pipeline, sandbox):
    publish_retries(pipeline, 30, lambda i: 100 + i / 3, prefix="soon")  # 100-110 s: hidden 120 s
    publish_retries(pipeline, 10, lambda i: 7200 + i, prefix="later")  # hours: hidden the most Pub/Sub allows
    subscriber = CountingSubscriber()
    sweeper = sweeper_with(pipeline, subscriber)
    pulled = 0
    for _ in range(10):  # the emulator may hand the backlog out over a few pulls
        summary = sweeper.run(budget=5)
        pulled += summary["pulled"]
        if pulled == 40:
            break
    assert pulled == 40 and sandbox.stats()["received"] == 0
    assert sorted({seconds for _, seconds in subscriber.modifies}) == [120, 600]
    assert len(subscriber.modifies) <= 2 * len(subscriber.pulls)  # not one call per message
    assert sum(n for n, _ in subscriber.modifies) == 40
    assert sweeper.run(budget=2)["pulled"] == 0  # all out of sight


def test_a_busy_sweep_waits_for_the_retries_published_while_it_runs(topology, sandbox, monkeypatch):
    """Against the Pub/Sub stand-in, which holds an empty pull open (5 s) as the service does."""
    with PubsubProxy(topology.emulator_host, empty_hold=5.0).start() as proxy:
        pipeline = Pipeline(topology, sandbox, monkeypatch, PUBSUB_EMULATOR_HOST=proxy.host)
        publish_retries(pipeline, 1, lambda i: -1, prefix="first")
        later = threading.Timer(2.0, publish_retries, (pipeline, 1, lambda i: -1), {"prefix": "later"})
        later.start()
        summary = pipeline.sweeper.run(budget=30)
        later.join()
    assert (summary["pulled"], summary["delivered"]) == (2, 2)
    assert 2.0 + 5.0 <= summary["elapsed"] < 20  # it stopped once a held-open pull found nothing


def test_a_retry_due_in_a_few_seconds_is_attempted_in_the_same_sweep(pipeline, sandbox):
    (event,) = publish_retries(pipeline, 1, lambda i: 1.5)
    began = time.monotonic()
    summary = pipeline.sweeper.run(budget=10)
    assert (summary["pulled"], summary["not_due"], summary["delivered"]) == (1, 0, 1)
    assert sandbox.accepted_ids()[event.event_id] == 1
    assert 1.0 <= time.monotonic() - began < 5


def test_with_the_circuit_half_open_a_sweep_pulls_only_the_trial(topology, sandbox, monkeypatch):
    clock = [0.0]
    pipeline = Pipeline(topology, sandbox, monkeypatch)
    breaker = CircuitBreaker(cooldown=60, clock=lambda: clock[0], min_attempts=3)
    pipeline.delivery = Delivery(pipeline.config, pipeline.delivery.client, pipeline.publisher, breaker,
                                 schedule=(0,))
    for _ in range(3):
        breaker.allow()
        breaker.record(Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True))
    assert breaker.state is State.OPEN
    made = publish_retries(pipeline, 20, lambda i: -1)
    subscriber = CountingSubscriber()
    sweeper = sweeper_with(pipeline, subscriber)

    summary = sweeper.run(budget=5)  # cooling down: nothing pulled at all
    assert summary["pulled"] == 0 and "cooldown" in summary["stopped_early"]

    sandbox.set_faults(status={503: 1.0})
    clock[0] = 60
    summary = sweeper.run(budget=5)  # one trial, which fails
    assert (summary["pulled"], summary["retried"], summary["released"]) == (1, 1, 0)
    assert subscriber.pulls == [1] and sandbox.stats()["received"] == 1

    sandbox.clear_faults()
    clock[0] = 120
    for _ in range(10):
        sweeper.run(budget=5)
        if len(sandbox.accepted_ids()) == 20:
            break
    assert breaker.state is State.CLOSED
    assert sorted(sandbox.accepted_ids()) == sorted(e.event_id for e in made)


def test_sweep_redelivers_due_retries(pipeline, sandbox):
    sandbox.set_faults(status={503: 1.0})
    event = make_event()
    pipeline.send(event)
    sandbox.clear_faults()
    summary = pipeline.sweeper.run(budget=10)
    assert summary["pulled"] == 1 and summary["delivered"] == 1
    assert sandbox.accepted_ids()[event.event_id] == 1
    assert pipeline.sweeper.run(budget=2)["pulled"] == 0  # drained


def test_sweep_defers_what_is_not_due_without_an_attempt(pipeline, sandbox):
    event = make_event()
    state = retry.RetryState(attempt=3, first_failure=time.time() - 60, next_due=time.time() + 3600, last_error="x")
    pipeline.publisher.publish_one(pipeline.config.retry_topic, retry_message(event, state))
    summary = pipeline.sweeper.run(budget=5)
    assert (summary["pulled"], summary["not_due"], summary["delivered"]) == (1, 1, 0)
    assert sandbox.stats()["received"] == 0
    # Held out of sight by its ack deadline: the next sweep does not see it again.
    assert pipeline.sweeper.run(budget=2)["pulled"] == 0


def test_sweep_dead_letters_events_retried_past_the_maximum_age(pipeline, sandbox):
    event = make_event()
    old = time.time() - pipeline.config.retry_max_age - 10
    state = retry.RetryState(attempt=9, first_failure=old, next_due=time.time() - 1, last_error="HTTP 503")
    pipeline.publisher.publish_one(pipeline.config.retry_topic, retry_message(event, state))
    assert pipeline.sweeper.run(budget=5)["dead_lettered"] == 1
    ((body, _),) = pipeline.dead_letters()
    assert body["dead"]["kind"] == "expired"
    assert "9 attempts" in body["dead"]["reason"] and "HTTP 503" in body["dead"]["reason"]
    assert sandbox.stats()["received"] == 0


def test_sweep_stops_early_when_the_api_is_down_and_loses_nothing(pipeline, sandbox):
    events_sent = [make_event(user_id=f"d{i}") for i in range(20)]
    state = retry.RetryState(attempt=1, first_failure=time.time(), next_due=time.time() - 1, last_error="x")
    pipeline.publisher.publish(pipeline.config.retry_topic, [retry_message(e, state) for e in events_sent])
    sandbox.set_faults(status={503: 1.0})
    summary = pipeline.sweeper.run(budget=20)
    assert summary["stopped_early"] and "circuit open" in summary["stopped_early"]
    assert sandbox.stats()["received"] < 20
    assert summary["retried"] + summary["deferred"] + summary["released"] == summary["pulled"]
    # Every event is still on the retry subscription, as a retry or released back.
    sandbox.clear_faults()
    pipeline.breaker.record(Outcome(Kind.DELIVERED, "the API is back"))
    for _ in range(5):
        pipeline.sweeper.run(budget=5)
        if len(sandbox.accepted_ids()) == 20:
            break
        time.sleep(0.5)
    assert sorted(sandbox.accepted_ids()) == sorted(e.event_id for e in events_sent)


def test_sweep_function_answers_a_json_summary(topology, sandbox, function_server):
    url = function_server("sweep", {**base_env(sandbox.serve_url), **topology.env()})
    response = requests.post(url, timeout=30)
    assert response.status_code == 200
    assert set(response.json()) == {"pulled", *Result, *Tally, "elapsed", "stopped_early"}
