"""Retry-After, read once for both API layers (measure.retryafter)."""

import pytest

from measure import retryafter

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP date, 30 s after NOW
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: go now
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),  # a date without a zone is UTC
        ("soon", None),
        ("-5", None),
        ("2.5", None),  # delay-seconds is a whole number
        (None, None),
    ],
)
def test_seconds(value, wait):
    assert retryafter.seconds(value, now=NOW) == wait
