import pytest

from measure.pipeline import retry
from measure.pipeline.breaker import CircuitBreaker
from measure.tune.outcome import Kind, Outcome, unreachable


@pytest.mark.parametrize(("attempt", "base"), [(1, 30), (2, 120), (3, 600), (4, 3600), (5, 21600), (6, 86400),
                                               (40, 86400)])
def test_backoff_schedule_with_jitter_bounds(attempt, base):
    assert retry.backoff(attempt, rng=lambda: 0.0) == pytest.approx(base * 0.9)
    assert retry.backoff(attempt, rng=lambda: 1.0) == pytest.approx(base * 1.1)
    assert retry.backoff(attempt, rng=lambda: 0.5) == pytest.approx(base)


def test_after_failure_counts_attempts_and_keeps_first_failure():
    first = retry.after_failure(None, "HTTP 503", now=1000.0)
    second = retry.after_failure(first, "timeout", now=1100.0)
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.first_failure == 1000.0
    assert 1100 + 108 <= second.next_due <= 1100 + 132
    assert second.last_error == "timeout"
    assert retry.RetryState.from_dict(second.to_dict()) == second


def test_deferred_keeps_attempt_count():
    state = retry.after_failure(None, "x", now=0)
    assert retry.deferred(state, "circuit open", now=10, delay=30).attempt == 1
    assert retry.deferred(state, "circuit open", now=10, delay=30).next_due == 40


def test_schedule_from_env(monkeypatch):
    monkeypatch.setenv("MEASURE_RETRY_SCHEDULE", "0.5,1,2")
    assert retry.schedule_from_env() == (0.5, 1.0, 2.0)
    monkeypatch.setenv("MEASURE_RETRY_SCHEDULE", "soon")
    with pytest.raises(ValueError, match="MEASURE_RETRY_SCHEDULE"):
        retry.schedule_from_env()


def test_malformed_retry_state():
    with pytest.raises(ValueError, match="malformed"):
        retry.RetryState.from_dict({"attempt": "x"})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_breaker_opens_after_threshold_outages_then_half_opens():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record(unreachable("timeout"))
    assert not breaker.is_open
    breaker.record(unreachable("timeout"))
    assert breaker.is_open and not breaker.allow()
    clock.now = 10.5
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one
    breaker.record(Outcome(Kind.DELIVERED, "success", 200))
    assert not breaker.is_open and breaker.allow()


def test_breaker_reopens_when_the_trial_fails_and_ignores_rejections():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=5, clock=clock)
    breaker.record(Outcome(Kind.REJECTED, "bad", 400))
    assert not breaker.is_open
    breaker.record(unreachable("timeout"))
    clock.now = 6
    assert breaker.allow()
    breaker.record(unreachable("timeout"))
    assert not breaker.allow()


def test_ready_asks_without_taking_the_trial():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=5, clock=clock)
    assert breaker.ready()
    breaker.record(unreachable("timeout"))
    assert not breaker.ready()
    clock.now = 6
    assert breaker.ready() and breaker.ready()  # asking twice takes nothing
    assert breaker.allow() and not breaker.ready()  # the trial is out
