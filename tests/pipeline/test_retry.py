import pytest

from measure.pipeline import retry


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


def test_the_apis_retry_after_is_a_floor_under_the_backoff():
    schedule = (1, 2, 4)
    assert retry.after_failure(None, "HTTP 429", now=0, schedule=schedule, retry_after=30).next_due == 30
    assert retry.after_failure(None, "HTTP 429", now=0, schedule=schedule, retry_after=0.1).next_due <= 1.1


def test_deferred_keeps_attempt_count():
    state = retry.after_failure(None, "x", now=0)
    assert retry.deferred(state, "circuit open", now=10, delay=30).attempt == 1
    assert retry.deferred(state, "circuit open", now=10, delay=30).next_due == 40


def test_malformed_retry_state():
    with pytest.raises(ValueError, match="malformed"):
        retry.RetryState.from_dict({"attempt": "x"})
