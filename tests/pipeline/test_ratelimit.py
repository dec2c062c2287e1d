"""The rate ceiling (measure.pipeline.ratelimit): a token bucket, its share of the deployment's
MEASURE_API_MAX_RPS, and Delivery deferring an attempt the ceiling leaves no room for."""

from __future__ import annotations

import dataclasses
import io
import threading
import time

import pytest

from measure import config as config_module
from measure.pipeline.delivery import RATE_CEILING
from measure.pipeline.ratelimit import RateLimit
from tests.helpers import base_env
from tests.pipeline.stack import Pipeline, make_event, sandbox_fixture  # noqa: F401


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def busiest_second(times: list[float]) -> int:
    """The most of `times` inside any one-second window [t, t + 1)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_grants_are_evenly_spaced_at_the_rate():
    clock = FakeClock()
    bucket = RateLimit(10, clock=clock, sleep=clock.sleep)
    granted = []
    for _ in range(100):
        assert bucket.acquire()
        granted.append(clock.now)
    assert granted[1] - granted[0] == pytest.approx(0.1)
    assert granted[-1] - granted[0] == pytest.approx(9.9)
    assert busiest_second(granted) == 10


def test_a_burst_lets_that_many_out_at_once_then_paces():
    clock = FakeClock()
    bucket = RateLimit(10, burst=5, clock=clock, sleep=clock.sleep)
    granted = []
    for _ in range(7):
        bucket.acquire()
        granted.append(clock.now)
    assert granted[:5] == pytest.approx([1000.0] * 5) and granted[5] == pytest.approx(1000.1)


def test_a_wait_longer_than_the_timeout_is_refused_and_takes_nothing():
    clock = FakeClock()
    bucket = RateLimit(2, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(timeout=0)
    assert not bucket.acquire(timeout=0.4)  # the next token is 0.5 s away
    assert bucket.acquire(timeout=0.5) and clock.now == pytest.approx(1000.5)
    clock.now += 10  # idle: the bucket fills up to its burst, no further
    assert bucket.acquire(timeout=0) and not bucket.acquire(timeout=0.1)


def test_many_threads_share_one_bucket_without_exceeding_it():
    bucket = RateLimit(400)
    granted: list[float] = []
    lock = threading.Lock()

    def take():
        for _ in range(25):
            bucket.acquire()
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(8)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 200
    assert time.monotonic() - began >= 199 / 400 - 0.01
    assert busiest_second(granted) <= 401


def test_each_instance_takes_its_share_and_zero_is_no_ceiling():
    assert RateLimit.share(50, 2).rate == 25
    assert RateLimit.share(0, 4) is None
    with pytest.raises(ValueError, match="senders"):
        RateLimit.share(50, 0)
    with pytest.raises(ValueError, match="rate"):
        RateLimit(float("nan"))


@pytest.mark.parametrize("name, value, problem", [
    ("MEASURE_API_MAX_RPS", "fast", "requests a second"),
    ("MEASURE_API_MAX_RPS", "-1", "between 0"),
    ("MEASURE_API_MAX_RPS", "inf", "between 0"),
    ("MEASURE_API_SENDERS", "0", "at least 1"),
    ("MEASURE_API_SENDERS", "2.5", "whole number"),
])
def test_bad_settings_are_named(name, value, problem):
    with pytest.raises(config_module.ConfigError, match=problem) as raised:
        config_module.load({**base_env(), name: value})
    assert raised.value.name == name


def test_settings_are_read_and_default_to_no_ceiling():
    assert (config_module.load(base_env()).api_max_rps, config_module.load(base_env()).api_senders) == (0.0, 1)
    loaded = config_module.load({**base_env(), "MEASURE_API_MAX_RPS": "50", "MEASURE_API_SENDERS": "3"})
    assert (loaded.api_max_rps, loaded.api_senders) == (50.0, 3)


def test_delivery_defers_an_attempt_the_ceiling_has_no_room_for(topology, sandbox, monkeypatch, capsys):
    # Half a request a second: the second event's token is 2 s away, longer than the attempt may wait (1 s).
    pipeline = Pipeline(topology, sandbox, monkeypatch, MEASURE_API_MAX_RPS="1", MEASURE_API_SENDERS="2",
                        MEASURE_API_TIMEOUT="1")
    assert pipeline.delivery.rate.rate == 0.5
    assert pipeline.send(make_event(user_id="first")) == "delivered"
    late = make_event(user_id="second")
    assert pipeline.send(late) == "deferred"
    (envelope,) = pipeline.retries()
    assert envelope.event == late and envelope.retry.attempt == 0 and envelope.retry.last_error == RATE_CEILING
    assert sandbox.stats()["received"] == 1
    assert '"message":"deferred: rate ceiling"' in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timing  # busiest second at the sandbox: bunched by any other load on the machine
def test_replaying_2000_dead_letters_stays_under_the_ceiling_and_each_is_accepted_once(topology, sandbox,
                                                                                     monkeypatch, capsys):
    """The issue's figure: MEASURE_API_MAX_RPS=50, two sending instances (send and sweep, each with its
    own bucket of 25 a second), 2,000 dead letters replayed: at most 55 requests in any second at
    the sandbox, and every event accepted exactly once."""
    import concurrent.futures

    from measure.functions.sweep import Sweeper
    from measure.gcp.subscriber import Subscriber
    from measure.ops import deadletters
    from measure.pipeline.breaker import CircuitBreaker
    from measure.pipeline.delivery import Delivery
    from measure.pipeline.message import dead_letter_message
    from measure.tune.client import MeasurementClient
    from tests.helpers import CONSUMER_KEY, PRIVATE_KEY

    total = 2000
    # Send waits at most 1 s for its turn (MEASURE_API_TIMEOUT) and defers the rest to the retry
    # topic, so the sweep (the second instance) is kept busy too: both shares in use, the worst case.
    pipeline = Pipeline(topology, sandbox, monkeypatch, MEASURE_API_MAX_RPS="50", MEASURE_API_SENDERS="2",
                        MEASURE_API_TIMEOUT="1")
    sweep_config = dataclasses.replace(pipeline.config, retry_schedule=(0, 0, 0))
    sweep_delivery = Delivery(sweep_config, MeasurementClient(sweep_config.endpoint,
                                                              lambda: (CONSUMER_KEY, PRIVATE_KEY)),
                              pipeline.publisher, CircuitBreaker(cooldown=60, min_attempts=3))
    sweeper = Sweeper(sweep_config, sweep_delivery, Subscriber(), return_immediately=True)
    assert pipeline.delivery.rate.rate == sweep_delivery.rate.rate == 25
    letters = [dead_letter_message("rejected", "HTTP 400: site_id not found", time.time(),
                                   event=make_event(user_id=f"player-{i}"), attempts=1) for i in range(total)]
    for start in range(0, total, 500):
        pipeline.publisher.publish(pipeline.config.dead_letter_topic, letters[start:start + 500])
    done = threading.Event()

    def push() -> None:  # Eventarc's part: every message on the events topic to send, 32 at once
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            while not done.is_set():
                for item in topology.pull(topology.names.events_tap_subscription, max_messages=200, timeout=0.5):
                    pool.submit(pipeline.sender.process, item.message.data, dict(item.message.attributes))

    def sweep() -> None:  # Cloud Scheduler's part: what send deferred, re-sent by the other instance
        while not done.is_set():
            sweeper.run(budget=3)

    workers = [threading.Thread(target=push), threading.Thread(target=sweep)]
    for worker in workers:
        worker.start()
    try:
        out = io.StringIO()
        env = {**topology.env(), "MEASURE_DEAD_LETTER_SUBSCRIPTION": topology.names.dead_letter_subscription,
               "MEASURE_API_MAX_RPS": "50"}
        assert deadletters.main(["replay", "--all"], env=env, out=out, err=out) == 0, out.getvalue()
        assert f"replayed {total} of {total}" in out.getvalue()
        deadline = time.monotonic() + 180
        while len(sandbox.accepted_ids()) < total and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        done.set()
        for worker in workers:
            worker.join()
    deferred = capsys.readouterr().out.count('"message":"deferred: rate ceiling"')  # and 2,000 delivery lines
    accepted = sandbox.accepted_ids()
    assert len(accepted) == total and set(accepted.values()) == {1}
    arrivals = [entry["received_at"] for entry in sandbox.requests()]
    busiest = busiest_second(arrivals)
    print(f"\nrate ceiling 50/s: {len(arrivals)} requests, busiest second {busiest}, "
          f"{len(arrivals) / (max(arrivals) - min(arrivals)):.1f} a second on average, {deferred} deferred by send")
    assert deferred > 0  # the sweep had its share of the work
    assert busiest <= 55
