"""The sweep (measure.functions.sweep) on the real emulator, against the sandbox."""

import concurrent.futures
import contextlib
import dataclasses
import io
import itertools
import queue
import threading
import time
from collections import Counter

import pytest
import requests

from measure.config import load
from measure.dev.pubsubproxy import PubsubProxy
from measure.functions.send import Sender
from measure.functions.sweep import (
    ACK_DEADLINE_S,
    DEADLINE_STEPS,
    EMPTY_PULL_S,
    MIN_PULL_S,
    Clock,
    Sweeper,
    Tally,
    deadline_step,
)
from measure.gcp.googleapi import ApiError, DeadlineExceededError
from measure.gcp.publisher import PublishError
from measure.gcp.secrets import SecretUnavailableError
from measure.gcp.subscriber import PubsubMessage, PullResponse, ReceivedMessage, Subscriber
from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker, State
from measure.pipeline.concurrency import ConcurrencyLimit
from measure.pipeline.delivery import Delivery, Result
from measure.pipeline.message import event_message, retry_message
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
    pipeline.delivery = Delivery(pipeline.config, pipeline.delivery.client, pipeline.publisher, breaker)
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


@pytest.mark.parametrize("budget", [2, 3])
def test_a_short_budget_still_pulls_and_delivers_what_is_due(pipeline, sandbox, budget):
    # A run of a few seconds once ended without a pull: its first pull had less than the window it
    # asked for (MEASURE_SWEEP_BUDGET=3 delivered nothing, run after run).
    sandbox.set_faults(status={503: 1.0})
    event = make_event()
    pipeline.send(event)
    sandbox.clear_faults()
    summary = pipeline.sweeper.run(budget=budget)
    assert (summary["pulled"], summary["delivered"]) == (1, 1), summary
    assert sandbox.accepted_ids()[event.event_id] == 1


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


def test_sweep_stops_early_when_the_api_is_down_and_loses_nothing(topology, sandbox, monkeypatch):
    # A short cooldown: an attempt under way when the circuit opened is deferred by it (the delivery
    # asks the breaker; the sweep asked once, when it started the attempt), and comes due after it.
    pipeline = Pipeline(topology, sandbox, monkeypatch)
    pipeline.breaker = CircuitBreaker(cooldown=2, min_attempts=3)
    pipeline.config = dataclasses.replace(pipeline.config, retry_schedule=(0,))
    pipeline.delivery = Delivery(pipeline.config, pipeline.delivery.client, pipeline.publisher, pipeline.breaker)
    pipeline.sweeper = Sweeper(pipeline.config, pipeline.delivery, Subscriber(), return_immediately=True)
    events_sent = [make_event(user_id=f"d{i}") for i in range(20)]
    state = retry.RetryState(attempt=1, first_failure=time.time(), next_due=time.time() - 1, last_error="x")
    pipeline.publisher.publish(pipeline.config.retry_topic, [retry_message(e, state) for e in events_sent])
    sandbox.set_faults(status={503: 1.0})
    summary = pipeline.sweeper.run(budget=20)
    assert summary["stopped_early"] and "circuit open" in summary["stopped_early"]
    assert sandbox.stats()["received"] < 20
    assert summary["retried"] + summary["deferred"] + summary["released"] == summary["pulled"]
    # Every event is still on the retry subscription, as a retry, deferred or released back.
    sandbox.clear_faults()
    pipeline.breaker.record(Outcome(Kind.DELIVERED, "the API is back"))
    for _ in range(8):
        pipeline.sweeper.run(budget=8)
        if len(sandbox.accepted_ids()) == 20:
            break
        time.sleep(0.5)
    assert sorted(sandbox.accepted_ids()) == sorted(e.event_id for e in events_sent)


def test_sweep_function_answers_a_json_summary(topology, sandbox, function_server):
    url = function_server("sweep", {**base_env(sandbox.serve_url), **topology.env()})
    response = requests.post(url, timeout=30)
    assert response.status_code == 200
    assert set(response.json()) == {"pulled", *Result, *Tally, "elapsed", "stopped_early"}


# ---------------------------------------------------------------------------------------------
# On a fake clock: the sweep's rules, each in milliseconds, through the seams production uses
# (the Clock, the subscriber, the delivery's client and publisher).


class FakeClock(Clock):
    """Time passes only when the sweep waits (or a fake says so)."""

    def __init__(self):
        self.t = 1000.0
        self._lock = threading.Lock()

    def now(self):
        return self.t

    def wall(self):
        return 1_800_000_000.0 + self.t

    def advance(self, seconds):
        with self._lock:
            self.t += max(0.0, seconds)

    def wait(self, events, timeout):
        try:
            return events.get(timeout=0.002)  # what the threads of the pool have finished by now
        except queue.Empty:
            self.advance(timeout)
            return None


class FakeSubscription:
    """A pull subscription on the fake clock: leases, acks, deadlines; calls recorded; faults on demand."""

    def __init__(self, clock, ack_deadline=60.0):
        self.clock = clock
        self.ack_deadline = ack_deadline
        self.messages: dict[str, tuple[bytes, dict]] = {}
        self.leased_until: dict[str, float] = {}
        self.acked: list[str] = []
        self.calls: list[tuple[str, int, float]] = []  # (call, ack ids or max messages, timeout)
        self.hung: set[str] = set()  # calls that take their whole timeout and fail, as a hung call does
        self.blocked: dict[str, threading.Event] = {}  # calls that block (real time) until the event is set
        self.failing: set[str] = set()  # calls answered by an error at once
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def subscription_path(self, project, subscription):
        return f"projects/{project}/subscriptions/{subscription}"

    def publish(self, data, attributes):
        with self._lock:
            ack_id = f"ack-{next(self._ids)}"
            self.messages[ack_id] = (data, attributes)
            return ack_id

    def _fault(self, call, timeout):
        self.calls.append((call, -1, timeout))
        if call in self.blocked:
            self.blocked.pop(call).wait(30)
        if call in self.hung:
            self.clock.advance(timeout)
            raise DeadlineExceededError(call)
        if call in self.failing:
            raise ApiError(call, 503, "injected", transient=True)

    def pull(self, request, timeout):
        self._fault("pull", timeout)
        now = self.clock.now()
        with self._lock:
            free = [a for a in self.messages if self.leased_until.get(a, 0.0) <= now][:request["max_messages"]]
            for ack_id in free:
                self.leased_until[ack_id] = now + self.ack_deadline
        self.calls[-1] = ("pull", request["max_messages"], timeout)
        return PullResponse([ReceivedMessage(a, PubsubMessage(*self.messages[a], message_id=a)) for a in free])

    def acknowledge(self, request, timeout=30.0):
        self._fault("acknowledge", timeout)
        self.calls[-1] = ("acknowledge", len(request["ack_ids"]), timeout)
        with self._lock:
            for ack_id in request["ack_ids"]:
                if self.messages.pop(ack_id, None) is not None:
                    self.acked.append(ack_id)

    def modify_ack_deadline(self, request, timeout=30.0):
        self._fault("modify", timeout)
        seconds = request["ack_deadline_seconds"]
        self.calls[-1] = (f"modify {seconds}", len(request["ack_ids"]), timeout)
        with self._lock:
            for ack_id in request["ack_ids"]:
                self.leased_until[ack_id] = self.clock.now() + seconds

    def count(self, call):
        return sum(1 for name, _, _ in self.calls if name == call)


class FakePublisher:
    """Retries land on the fake subscription (so the sweep meets them again); dead letters in a list."""

    def __init__(self, subscription, config):
        self.subscription = subscription
        self.config = config
        self.dead: list = []
        self.failing = False

    def publish_one(self, topic, message):
        if self.failing:
            raise PublishError(topic, 1, 1, "injected")
        if topic == self.config.retry_topic:
            return self.subscription.publish(*message)
        self.dead.append(message)
        return "dead"


class FakeClient:
    """The Measurement API: `answer(params)` decides each outcome; every call is recorded by user id."""

    def __init__(self, clock, answer=None):
        self.clock = clock
        self.answer = answer or (lambda params: Outcome(Kind.DELIVERED, "success"))
        self.attempted: Counter[str] = Counter()
        self._lock = threading.Lock()

    def deliver(self, params):
        with self._lock:
            self.attempted[params["user_id"]] += 1
        return self.answer(params)


class Fakes:
    def __init__(self, budget=60, schedule=(1, 2, 4), slots=4, answer=None, **env):
        self.clock = FakeClock()
        self.config = dataclasses.replace(load({**base_env(), "MEASURE_SWEEP_BUDGET": str(budget), **env}),
                                          retry_schedule=tuple(schedule))
        self.subscription = FakeSubscription(self.clock)
        self.publisher = FakePublisher(self.subscription, self.config)
        self.client = FakeClient(self.clock, answer)
        self.breaker = CircuitBreaker(cooldown=30, clock=self.clock.now, min_attempts=3)
        self.delivery = Delivery(self.config, self.client, self.publisher, self.breaker, clock=self.clock.wall,
                                 limit=ConcurrencyLimit(maximum=slots))
        self.sweeper = Sweeper(self.config, self.delivery, self.subscription, clock=self.clock)

    def due(self, count, prefix="e", due_in=lambda i: -1.0):
        wall = self.clock.wall()
        for i in range(count):
            event = make_event(user_id=f"{prefix}{i}")
            state = retry.RetryState(1, wall - 5, wall + due_in(i), "HTTP 503")
            self.subscription.publish(*retry_message(event, state))


def quietly(run, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return run(*args, **kwargs)


def test_a_pull_waits_seconds_for_its_answer_within_the_budget():
    fakes = Fakes(budget=60)
    fakes.due(3)
    summary = quietly(fakes.sweeper.run)
    assert summary["delivered"] == 3
    pulls = [timeout for call, _, timeout in fakes.subscription.calls if call == "pull"]
    assert pulls and all(MIN_PULL_S <= timeout <= EMPTY_PULL_S for timeout in pulls), pulls
    assert EMPTY_PULL_S >= 5  # longer than the service takes to answer a pull with messages


def test_hung_calls_end_with_the_budget_and_the_run_hands_back_what_it_did_not_finish():
    fakes = Fakes(budget=20)
    fakes.due(6)
    fakes.subscription.hung |= {"acknowledge", "modify"}
    started = fakes.clock.now()
    summary = quietly(fakes.sweeper.run)
    assert fakes.clock.now() - started <= 20.0 + 0.01  # not 30 s a call
    assert summary["delivered"] == 6 and summary["call_failures"] >= 1
    assert all(timeout <= 20.0 for _, _, timeout in fakes.subscription.calls)
    # Nothing acknowledged: every message comes back after its deadline, none lost.
    assert fakes.subscription.acked == [] and len(fakes.subscription.messages) == 6


def test_an_attempt_still_running_at_the_end_of_the_budget_is_left_to_its_lease():
    release = threading.Event()

    def answer(params):
        if params["user_id"] == "e0":
            release.wait(30)  # hung (real time): the fake clock runs on meanwhile
        return Outcome(Kind.DELIVERED, "success")

    fakes = Fakes(budget=20, answer=answer)
    fakes.due(3)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            summary = fakes.sweeper.run()
        finally:
            release.set()
            time.sleep(0.05)  # its late "delivery" line is not this test's output
    assert summary["unfinished"] == 1 and summary["delivered"] == 2
    assert len(fakes.subscription.acked) == 2 and len(fakes.subscription.messages) == 1


def test_a_message_being_attempted_keeps_its_lease_and_is_not_pulled_again():
    def slow(params):  # 90 s an attempt, in fake seconds, a little at a time
        for _ in range(90):
            fakes.clock.advance(1.0)
            time.sleep(0.001)
        return Outcome(Kind.DELIVERED, "success")

    fakes = Fakes(budget=240, slots=1, answer=slow, MEASURE_API_TIMEOUT="120")
    fakes.due(2)
    summary = quietly(fakes.sweeper.run)
    assert summary["delivered"] == 2 and summary["pulled"] == 2
    assert set(fakes.client.attempted.values()) == {1}  # not pulled (and attempted) a second time
    assert fakes.subscription.count("modify 60") >= 1


def test_the_end_of_a_run_acknowledges_first_then_gives_back():
    def answer(params):
        if params["user_id"].startswith("bad"):
            return Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True)
        return Outcome(Kind.DELIVERED, "success")

    fakes = Fakes(budget=30, answer=answer)
    fakes.due(2, prefix="good")
    fakes.due(1, prefix="bad")
    fakes.publisher.failing = True  # the bad one's retry is not confirmed: it is given back
    fakes.subscription.failing.add("acknowledge")
    summary = quietly(fakes.sweeper.run)
    assert (summary["delivered"], summary["errors"]) == (2, 1) and summary["call_failures"] >= 1
    names = [name for name, _, _ in fakes.subscription.calls if name != "pull"]
    assert names[-2:] == ["acknowledge", "modify 0"], names


def test_an_unexpected_exception_in_an_attempt_hands_its_message_back_and_the_run_goes_on():
    def answer(params):
        if params["user_id"] == "e1":
            raise SecretUnavailableError("measure-private-key: unavailable")
        return Outcome(Kind.DELIVERED, "success")

    fakes = Fakes(budget=30, answer=answer)
    fakes.due(3)
    summary = quietly(fakes.sweeper.run)
    assert (summary["delivered"], summary["errors"]) == (2, 1)
    assert len(fakes.subscription.acked) == 2 and fakes.subscription.count("modify 0") == 1


def test_an_unexpected_exception_in_the_half_open_trial_releases_the_trial():
    def answer(params):
        raise SecretUnavailableError("measure-private-key: unavailable")

    fakes = Fakes(budget=30, answer=answer)
    for _ in range(3):
        fakes.breaker.allow()
        fakes.breaker.record(Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True))
    fakes.clock.advance(31)  # the cooldown has passed: one trial may go out
    fakes.due(3)
    summary = quietly(fakes.sweeper.run)
    assert summary["pulled"] >= 1 and summary["errors"] >= 1
    assert fakes.breaker.ready()  # the trial came back, not stuck for another cooldown
    assert fakes.subscription.count("modify 0") >= 1 and fakes.subscription.acked == []


def test_a_run_that_overran_its_budget_does_not_hold_the_next_one_back():
    fakes = Fakes(budget=10)
    fakes.due(1)
    stuck = threading.Event()
    fakes.subscription.blocked["acknowledge"] = stuck  # ignores its timeout, as no call should
    first = threading.Thread(target=quietly, args=(fakes.sweeper.run,), daemon=True)
    first.start()
    while fakes.subscription.count("acknowledge") == 0 and first.is_alive():
        time.sleep(0.01)
    second: list[dict] = []
    later = threading.Thread(target=lambda: second.append(quietly(fakes.sweeper.run)), daemon=True)
    later.start()
    later.join(timeout=20)
    stuck.set()
    first.join(timeout=5)
    assert second and second[0]["pulled"] == 0, "the second run waited behind the first for ever"


def test_retries_published_by_the_run_are_pulled_again_before_it_ends():
    answers = iter([Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True)])

    def answer(params):
        return next(answers, Outcome(Kind.DELIVERED, "success"))

    fakes = Fakes(budget=60, schedule=(1, 2, 4), answer=answer)
    fakes.due(1)
    summary = quietly(fakes.sweeper.run)
    assert (summary["retried"], summary["delivered"], summary["pulled"]) == (1, 1, 2)
    assert fakes.subscription.messages == {}


# ---------------------------------------------------------------------------------------------
# Acceptance (issue 24): Pub/Sub as slow as the real service, the API failing 30 % of calls.

SLOW_PULL_EVENTS = 300
SLOW_PULL_SCHEDULE = (1.0, 2.0, 4.0)


def schedule_floor(attempts: int, schedule=SLOW_PULL_SCHEDULE) -> float:
    """The seconds an event attempted `attempts` times must wait by the schedule alone (its last step repeats)."""
    return sum(schedule[min(i, len(schedule) - 1)] for i in range(attempts - 1))


@pytest.mark.slow
def test_with_slow_pulls_every_event_is_delivered_once_within_twice_the_schedules_floor(
        topology, sandbox, monkeypatch, function_server):
    """Pulls answered after 0.6-1.2 s, empty pulls held 5 s, the retry subscription's 60 s ack
    deadline (the emulator's, as deployed), the sandbox failing 30 % of calls at random, the 1,2,4 s
    schedule; `send` in this process, `sweep` as deployed, POSTed back to back as a scheduler would."""
    assert ACK_DEADLINE_S == 60  # the emulator's retry subscription takes sweep's, as Terraform does
    with PubsubProxy(topology.emulator_host, pull_latency=(0.6, 1.2), empty_hold=5.0, seed=24).start() as proxy:
        env = {**base_env(sandbox.serve_url), **topology.env(), "PUBSUB_EMULATOR_HOST": proxy.host,
               "MEASURE_RETRY_SCHEDULE": ",".join(f"{s:g}" for s in SLOW_PULL_SCHEDULE)}
        pipeline = Pipeline(topology, sandbox, monkeypatch, **env)
        delivery = Delivery(pipeline.config, pipeline.delivery.client, pipeline.publisher)
        sender = Sender(delivery)
        sweep_url = function_server("sweep", env)
        made = [make_event(user_id=f"slow{i}") for i in range(SLOW_PULL_EVENTS)]
        sandbox.set_faults(status={503: 0.3}, seed=24)

        answers: list[int] = []
        summaries: list[dict] = []
        stop = threading.Event()

        def scheduler():
            while not stop.is_set():
                response = requests.post(sweep_url, timeout=300)
                answers.append(response.status_code)
                if response.status_code == 200:
                    summaries.append(response.json())

        sweeps = threading.Thread(target=scheduler, daemon=True)
        began = time.monotonic()
        sweeps.start()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda e: sender.process(*event_message(e)), made))
        wanted = {e.event_id for e in made}
        while time.monotonic() - began < 60 and not wanted <= set(sandbox.accepted_ids()):
            time.sleep(0.1)
        drained = time.monotonic() - began
        stop.set()
        sweeps.join(timeout=60)
        stats = proxy.stats()

    accepted = sandbox.accepted_ids()
    attempts = Counter(entry["transaction_id"] for entry in sandbox.requests())
    floor = schedule_floor(max(attempts.values()))
    print(f"\nslow pulls: {SLOW_PULL_EVENTS} events delivered in {drained:.1f} s; the unluckiest was attempted "
          f"{max(attempts.values())} times (schedule floor {floor:g} s, bound {2 * floor:g} s); "
          f"sweeps {len(answers)} ({Counter(answers)}), proxy {stats}")
    assert wanted <= set(accepted) and set(accepted[i] for i in wanted) == {1}
    assert drained <= max(2 * floor, 2 * sum(SLOW_PULL_SCHEDULE)), (drained, floor)
    assert set(answers) == {200}
    assert sum(s["call_failures"] for s in summaries) == 0 and sum(s["errors"] for s in summaries) == 0
    assert stats.get("abandoned", 0) == 0  # no pull was given up before the service answered it


def test_a_failed_pull_is_an_empty_pull_not_a_failed_sweep():
    fakes = Fakes(budget=30)
    fakes.due(2)
    fakes.subscription.failing.add("pull")
    summary = quietly(fakes.sweeper.run)
    assert summary["pulled"] == 0 and summary["call_failures"] >= 1
    fakes.subscription.failing.clear()
    assert quietly(fakes.sweeper.run)["delivered"] == 2


def test_a_sweep_through_broken_pulls_answers_its_summary(topology, sandbox, monkeypatch):
    """Resets half-way through the answer, 499 and 5xx: the sweep goes on; no 500."""
    with PubsubProxy(topology.emulator_host, pull_latency=(0.1, 0.2), empty_hold=1.0).start() as proxy:
        pipeline = Pipeline(topology, sandbox, monkeypatch, PUBSUB_EMULATOR_HOST=proxy.host)
        publish_retries(pipeline, 2, lambda i: -1)
        proxy.set_faults("pull", schedule=["reset", "499", "500", "503"] * 30)
        summary = pipeline.sweeper.run(budget=12)
    assert summary["call_failures"] >= 1 and summary["stopped_early"] is None


def test_a_sweep_whose_acknowledge_hangs_ends_by_its_budget(topology, sandbox, monkeypatch):
    """Against the stand-in: every acknowledge is held without an answer; the run still ends on time
    and the messages come back after their deadline (a repeat the API recognises)."""
    with PubsubProxy(topology.emulator_host, pull_latency=(0.1, 0.2), empty_hold=1.0).start() as proxy:
        pipeline = Pipeline(topology, sandbox, monkeypatch, PUBSUB_EMULATOR_HOST=proxy.host)
        publish_retries(pipeline, 3, lambda i: -1)
        proxy.set_faults("acknowledge", hang_rate=1.0, hang_s=60)
        began = time.monotonic()
        summary = pipeline.sweeper.run(budget=6)
        took = time.monotonic() - began
    assert took < 6.5 and summary["delivered"] == 3 and summary["call_failures"] >= 1, (took, summary)


def test_a_hung_acknowledge_leaves_the_last_calls_their_share_of_the_budget():
    """The chaos run found it: an acknowledge that hung took every second left, and the run's
    give-back then had none (its messages waited out their 60 s lease)."""
    def answer(params):
        if params["user_id"].startswith("bad"):
            return Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True)
        return Outcome(Kind.DELIVERED, "success")

    fakes = Fakes(budget=20, answer=answer)
    fakes.due(2, prefix="good")
    fakes.due(1, prefix="bad")
    fakes.publisher.failing = True  # the bad one's retry is not confirmed: it must be given back
    fakes.subscription.hung.add("acknowledge")
    started = fakes.clock.now()
    summary = quietly(fakes.sweeper.run)
    assert fakes.clock.now() - started <= 20.0 + 0.01
    assert summary["errors"] == 1 and fakes.subscription.count("modify 0") == 1
    give_back = [timeout for name, _, timeout in fakes.subscription.calls if name == "modify 0"]
    assert give_back[0] > 0.5, give_back


def test_no_attempt_starts_beyond_the_first_round_until_all_of_it_has_come_back(topology, sandbox, monkeypatch):
    """Against an API that answers the first attempt of a round a little sooner than the others,
    as a hung API's timeouts come back a few ms apart: the sweep waits for the whole first round
    (and so for the breaker it opens) before it widens."""
    pipeline = Pipeline(topology, sandbox, monkeypatch)
    breaker = CircuitBreaker(cooldown=60)  # the deployed rule: 8 attempts, 90 % outages
    pipeline.delivery = Delivery(pipeline.config, pipeline.delivery.client, pipeline.publisher, breaker)
    sandbox.set_faults(status={503: 1.0})
    publish_retries(pipeline, 60, lambda i: -1)
    real_attempt = pipeline.delivery.attempt
    started, gate = itertools.count(1), threading.Event()

    def attempt(envelope, component, wait):
        if next(started) > 1:  # the first answers at once, the rest once the test lets them
            gate.wait(10)
        return real_attempt(envelope, component, wait=wait)

    monkeypatch.setattr(pipeline.delivery, "attempt", attempt)
    sweeper = sweeper_with(pipeline, CountingSubscriber())
    running = concurrent.futures.ThreadPoolExecutor(1).submit(sweeper.run, 10)
    time.sleep(1.5)  # the first answer is in; a sweep that widened on it would have started more
    begun = next(started) - 1
    gate.set()
    summary = running.result(timeout=30)
    assert begun == 8, f"{begun} attempts started before the first round had come back"
    assert breaker.state is State.OPEN and summary["stopped_early"]
    assert sandbox.stats()["received"] == 8
