"""measure.events.problems: what a refused client is told, as JSON and as text."""

from __future__ import annotations

import json

import pytest

from measure.events import InvalidEvents, Problem
from tests.events.cases import body_error, check, problems_of, raw_event


def test_error_bodies_are_json_with_field_and_problem():
    error = body_error(b"x", "text/plain")
    assert json.loads(json.dumps(error.to_dict())) == {
        "error": "unsupported media type",
        "problems": [{"index": None, "field": "Content-Type", "problem": error.problem}],
    }
    with pytest.raises(InvalidEvents) as caught:
        check(raw_event(ip=...))
    assert caught.value.status == 400
    assert caught.value.to_dict() == {
        "error": "invalid events",
        "problems": [{"index": 0, "field": "ip", "problem": "is required"}],
    }
    assert "ip: is required" in str(caught.value)


def test_every_problem_of_a_batch_serialises_to_its_index_field_and_problem():
    with pytest.raises(InvalidEvents) as caught:
        check(raw_event(), raw_event(ip="10.0.0.1"), raw_event(user_id=..., revenue="-1"))
    body = json.loads(json.dumps(caught.value.to_dict()))
    assert body["error"] == "invalid events"
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(1, "ip"), (2, "user_id"), (2, "revenue")]
    assert all(set(p) == {"index", "field", "problem"} and p["problem"] for p in body["problems"])


def test_a_problem_reads_as_where_field_and_what():
    [problem] = problems_of(raw_event(), raw_event(ip=...))
    assert problem == Problem(1, "ip", "is required")
    assert str(problem) == "event 1: ip: is required"
    assert str(body_error(b"{", "application/json").problems[0]).startswith("body: ")


def test_the_message_of_many_problems_shows_five_and_counts_the_rest():
    with pytest.raises(InvalidEvents) as caught:
        check(*(raw_event(ip=...) for _ in range(7)))
    message = str(caught.value)
    assert message.startswith("7 problem(s): event 0: ip: is required; ")
    assert "event 4: ip" in message and "event 5" not in message
    assert message.endswith("; and 2 more")
