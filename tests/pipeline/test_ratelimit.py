"""The rate ceiling (measure.pipeline.ratelimit): a token bucket, its share of the deployment's
MEASURE_API_MAX_RPS, and Delivery deferring an attempt the ceiling leaves no room for."""

from __future__ import annotations

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
