"""The AIMD concurrency limit, driven by a fake clock."""

import random
import threading

import pytest

from measure.pipeline.concurrency import ConcurrencyLimit, congested
from measure.tune.outcome import Kind, Outcome, unreachable

DELIVERED = Outcome(Kind.DELIVERED, "success", 200)
HTTP_500 = Outcome(Kind.TRANSIENT, "HTTP 500", 500, outage=True)
HTTP_503 = Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True)


def throttled(retry_after=None):
    return Outcome(Kind.TRANSIENT, "HTTP 429", 429, outage=True, retry_after=retry_after)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def settle(limit, outcome):
    assert limit.acquire()
    limit.release(outcome)


def congest(limit, last):
    """Seven answers that say "too much", then `last`: enough of them for the limit to act on."""
    for _ in range(7):
        settle(limit, HTTP_503)
    settle(limit, last)


def test_which_answers_mean_too_much():
    assert congested(HTTP_503) and congested(throttled()) and congested(unreachable("timeout"))
    assert not congested(HTTP_500) and not congested(unreachable("connection error: ConnectionResetError"))
    assert not congested(DELIVERED)


def test_starts_at_the_maximum_and_cuts_multiplicatively_once_a_period():
    clock = Clock()
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    assert limit.limit == 64
    for _ in range(7):  # too few answers to say anything yet
        settle(limit, HTTP_503)
    assert limit.limit == 64
    settle(limit, HTTP_503)  # eight, every one "too much"
    assert limit.limit == 48
    for _ in range(10):  # answers of attempts already in flight under the old limit
        settle(limit, HTTP_503)
    assert limit.limit == 48
    clock.now = 1.0
    settle(limit, unreachable("timeout"))
    assert limit.limit == 36


def test_grows_additively_about_one_a_round_of_successes():
    clock = Clock()
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    congest(limit, HTTP_503)
    assert limit.limit == 48
    for _ in range(45):
        settle(limit, DELIVERED)
    assert limit.limit == 48
    for _ in range(5):
        settle(limit, DELIVERED)
    assert limit.limit == 49  # a round of 48-odd successes: one more
    for _ in range(10_000):
        settle(limit, DELIVERED)
    assert limit.limit == 64  # never above the maximum


def test_back_off_on_429_with_retry_after():
    clock = Clock()
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    congest(limit, throttled(retry_after=5))
    assert limit.limit == 48
    clock.now = 1.0  # past the usual period, but the API asked for 5 s
    settle(limit, throttled(retry_after=5))
    clock.now = 4.9
    settle(limit, throttled(retry_after=5))
    assert limit.limit == 48
    clock.now = 5.0
    settle(limit, throttled(retry_after=5))
    assert limit.limit == 36


def test_a_minority_of_congestion_answers_does_not_cut_it():
    """Below half of the recent answers, a 429, 503 or timeout is bad luck, not a sign of load."""
    clock = Clock()
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    for second in range(30):
        clock.now = float(second)
        for outcome in (DELIVERED, HTTP_503, DELIVERED, unreachable("timeout"), DELIVERED, DELIVERED, throttled(1),
                        DELIVERED):
            settle(limit, outcome)
        assert limit.limit == 64
    for second in range(30, 40):  # now most answers say "too much"
        clock.now = float(second)
        for outcome in (DELIVERED, HTTP_503, throttled(1), unreachable("timeout")):
            settle(limit, outcome)
    assert limit.limit < 20


def test_the_chaos_runs_faults_keep_it_at_the_maximum():
    """A quarter of the answers 429, 503 or a timeout at random, as make chaos injects them: the
    rule of cutting on every one held the limit near 15 of 64."""
    clock, rng = Clock(), random.Random(5)
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    lowest = 64
    for i in range(20_000):
        clock.now = i / 500
        draw = rng.random()
        settle(limit, HTTP_503 if draw < 0.10 else throttled(1) if draw < 0.15 else unreachable("timeout")
               if draw < 0.25 else HTTP_500 if draw < 0.45 else DELIVERED)
        lowest = min(lowest, limit.limit)
    assert lowest >= 56


def test_an_api_answering_only_429_brings_it_to_the_minimum():
    clock = Clock()
    limit = ConcurrencyLimit(maximum=64, minimum=2, clock=clock)
    for second in range(20):
        clock.now = float(second)
        settle(limit, throttled(retry_after=1))
    assert limit.limit == 2


def test_forty_percent_random_failures_keep_it_near_the_maximum():
    """20 ms answers, 64 at a time: 3,200 answers a second, a fifth of them 429 or 503."""
    clock, rng = Clock(), random.Random(17)
    limit = ConcurrencyLimit(maximum=64, clock=clock)
    lowest = 64
    for i in range(3200 * 10):
        clock.now = i / 3200
        draw = rng.random()
        settle(limit, HTTP_503 if draw < 0.1 else throttled(1) if draw < 0.2 else HTTP_500 if draw < 0.4
               else DELIVERED)
        lowest = min(lowest, limit.limit)
    assert lowest >= 40


def test_acquire_waits_for_a_free_slot_and_times_out():
    limit = ConcurrencyLimit(maximum=2)
    assert limit.acquire() and limit.acquire()
    assert limit.room() == 0 and not limit.acquire(timeout=0.01)
    freed = threading.Timer(0.05, limit.release)
    freed.start()
    assert limit.acquire(timeout=5)
    freed.join()
    assert limit.in_flight == 2


def test_bad_bounds():
    with pytest.raises(ValueError, match="minimum"):
        ConcurrencyLimit(maximum=1, minimum=2)
