"""Every state transition of the circuit breaker, driven by a fake clock."""

import random

from measure.pipeline.breaker import CircuitBreaker, State
from measure.tune.outcome import Kind, Outcome, unreachable

DELIVERED = Outcome(Kind.DELIVERED, "success", 200)
HTTP_503 = Outcome(Kind.TRANSIENT, "HTTP 503", 503, outage=True)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def attempt(breaker, outcome, clock=None, step=0.0):
    assert breaker.allow()
    if clock:
        clock.now += step
    breaker.record(outcome)


def test_forty_percent_random_failures_keep_it_closed():
    clock, rng = Clock(), random.Random(40)
    breaker = CircuitBreaker(cooldown=10, clock=clock)
    failures = 0
    for _ in range(20_000):  # a busy instance: an answer every 5 ms
        failed = rng.random() < 0.4
        failures += failed
        attempt(breaker, HTTP_503 if failed else DELIVERED, clock, step=0.005)
        assert breaker.state is State.CLOSED
    assert 7_600 < failures < 8_400


def test_a_sparse_instance_meeting_forty_percent_answered_failures_stays_closed():
    """The last events of a backlog against a degraded API: an attempt a second, 40 % of them 5xx or
    429 at random. The degraded benchmark's tail opened the circuit on five of those in a row."""
    clock, rng = Clock(), random.Random(41)
    breaker = CircuitBreaker(cooldown=10, clock=clock)
    longest = run = 0
    for _ in range(5_000):
        failed = rng.random() < 0.4
        run = run + 1 if failed else 0
        longest = max(longest, run)
        attempt(breaker, HTTP_503 if failed else DELIVERED, clock, step=1.0)
        assert breaker.state is State.CLOSED
    assert longest >= 6  # runs longer than MIN_FAILURES, more than SILENCE_S without a success


def test_the_old_five_in_a_row_rule_would_have_opened_on_that_luck():
    rng = random.Random(40)
    draws = [rng.random() < 0.4 for _ in range(20_000)]
    longest = run = 0
    for failed in draws:
        run = run + 1 if failed else 0
        longest = max(longest, run)
    assert longest >= 5  # so the test above tells the two rules apart


def test_a_full_outage_opens_it_within_a_handful_of_attempts():
    clock = Clock()
    breaker = CircuitBreaker(cooldown=10, clock=clock)
    for _ in range(7):
        attempt(breaker, HTTP_503, clock, step=0.01)
    assert breaker.state is State.CLOSED  # too few attempts to judge a rate
    attempt(breaker, HTTP_503, clock, step=0.01)
    assert breaker.state is State.OPEN and not breaker.allow()


def test_after_a_healthy_spell_an_outage_opens_it_on_the_failure_rate():
    clock = Clock()
    breaker = CircuitBreaker(cooldown=10, clock=clock)
    for _ in range(50):
        attempt(breaker, DELIVERED, clock, step=0.001)
    opened_after = next(n for n in range(1, 30) if (attempt(breaker, HTTP_503, clock, step=0.001),
                                                    breaker.state)[1] is State.OPEN)
    assert opened_after == 18  # 18 of the last 20 attempts


def test_silence_opens_it_after_a_few_slow_timeouts():
    """A sparse instance: each attempt a 10 s timeout; no success for that long is an outage."""
    clock = Clock()
    breaker = CircuitBreaker(cooldown=30, clock=clock)
    attempt(breaker, DELIVERED, clock)
    for _ in range(4):
        attempt(breaker, unreachable("timeout"), clock, step=10)
    assert breaker.state is State.CLOSED
    attempt(breaker, unreachable("timeout"), clock, step=10)
    assert breaker.state is State.OPEN


def test_rejections_are_not_failures():
    clock = Clock()
    breaker = CircuitBreaker(cooldown=10, clock=clock)
    for _ in range(40):
        attempt(breaker, Outcome(Kind.REJECTED, "bad signature", 400), clock, step=1)
    assert breaker.state is State.CLOSED


def open_breaker(cooldown=10.0):
    clock = Clock()
    breaker = CircuitBreaker(cooldown=cooldown, clock=clock)
    for _ in range(8):
        attempt(breaker, HTTP_503)
    assert breaker.state is State.OPEN
    return breaker, clock


def test_half_open_lets_one_trial_out_after_the_cooldown_and_its_success_closes():
    breaker, clock = open_breaker()
    clock.now = 9.9
    assert not breaker.ready() and not breaker.allow()
    clock.now = 10.0
    assert breaker.ready() and breaker.ready()  # asking takes nothing
    assert breaker.allow() and breaker.state is State.HALF_OPEN
    assert not breaker.allow() and not breaker.ready()  # one trial at a time
    breaker.record(DELIVERED)
    assert breaker.state is State.CLOSED and breaker.allow()
    # A clean window: a failure right after recovery does not reopen it.
    breaker.record(HTTP_503)
    assert breaker.state is State.CLOSED


def test_a_failed_trial_opens_it_for_another_cooldown():
    breaker, clock = open_breaker()
    clock.now = 10
    assert breaker.allow()
    breaker.record(unreachable("timeout"))
    assert breaker.state is State.OPEN and not breaker.allow()
    assert breaker.seconds_until_ready() == 10
    clock.now = 20
    assert breaker.allow()


def test_a_trial_that_never_reports_back_is_given_up_after_a_cooldown():
    breaker, clock = open_breaker()
    clock.now = 10
    assert breaker.allow()  # its caller dies without recording
    clock.now = 19.9
    assert not breaker.allow()
    clock.now = 20
    assert breaker.allow()


def test_the_apis_retry_after_keeps_it_open_longer_than_the_cooldown():
    breaker, clock = open_breaker(cooldown=5)
    clock.now = 5
    assert breaker.allow()
    throttled = Outcome(Kind.TRANSIENT, "HTTP 429", 429, outage=True, retry_after=60.0)
    breaker.record(throttled)
    clock.now = 64
    assert not breaker.allow()
    clock.now = 65
    assert breaker.allow()
