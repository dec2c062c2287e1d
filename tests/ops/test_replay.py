"""`python -m measure replay` on the emulator: a seek of the replay subscription re-delivers exactly
the events published inside the window, and TUNE (the sandbox) counts each once."""

from __future__ import annotations

import io
import itertools
import time

import pytest

from measure.dev.emulator import Names, create_topology
from measure.ops import replay
from measure.pipeline.message import decode, event_message
from tests.pipeline.stack import Pipeline, make_event, sandbox_fixture  # noqa: F401

_suffixes = itertools.count(1)


@pytest.fixture
def replay_topology(pubsub_emulator, monkeypatch):
    names = Names().suffixed(f"-replay{next(_suffixes)}")
    topology = create_topology(pubsub_emulator.project, emulator_host=pubsub_emulator.host, names=names, tap=True,
                               replay=True)
    for name, value in topology.env().items():
        monkeypatch.setenv(name, value)
    return topology


def run(topology, *argv: str, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {**topology.env(), "MEASURE_REPLAY_SUBSCRIPTION": topology.names.events_replay_subscription, **env}
    code = replay.main(list(argv), env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def publish(pipeline, events) -> None:
    pipeline.publisher.publish(pipeline.config.events_topic, [event_message(e) for e in events])


def deliver_what_the_events_topic_carries(pipeline, expect: int, timeout: float = 5.0) -> list[str]:
    """What Eventarc does for send: every message on the events topic (read on the tap) to send."""
    received = pipeline.topology.pull(pipeline.topology.names.events_tap_subscription, max_messages=1000,
                                      expect=expect, timeout=timeout)
    for item in received:
        pipeline.sender.process(item.message.data, dict(item.message.attributes))
    return [decode(item.message.data).event.event_id for item in received]


def test_replay_redelivers_exactly_the_window_once_each_as_tune_sees_it(replay_topology, sandbox, monkeypatch):
    pipeline = Pipeline(replay_topology, sandbox, monkeypatch)
    before = [make_event(user_id=f"before-{i}") for i in range(3)]
    inside = [make_event(user_id=f"inside-{i}") for i in range(25)]
    after = [make_event(user_id=f"after-{i}") for i in range(4)]
    publish(pipeline, before)
    time.sleep(1.0)
    since = time.time()
    publish(pipeline, inside[:10])
    publish(pipeline, inside[10:])
    until = time.time()
    time.sleep(1.0)
    publish(pipeline, after)
    # Delivered once already, as send did when they were published.
    assert len(deliver_what_the_events_topic_carries(pipeline, expect=32)) == 32
    assert sandbox.stats()["accepted"] == 32

    code, _, err = run(replay_topology, "--since", str(since), "--until", str(until), "--dry-run")
    assert code == 0, err
    assert "25 event(s) were published in the window" in _
    assert deliver_what_the_events_topic_carries(pipeline, expect=1, timeout=1.0) == []  # a dry run publishes nothing

    code, out, err = run(replay_topology, "--since", str(since), "--until", str(until))
    assert code == 0, err
    assert "replayed 25 event(s)" in out and "pulled" in err
    replayed = deliver_what_the_events_topic_carries(pipeline, expect=25)
    assert sorted(replayed) == sorted(e.event_id for e in inside)
    stats = sandbox.stats()
    assert stats["duplicates"] == 25 and stats["accepted"] == 32  # TUNE counted none of them twice
    assert set(sandbox.accepted_ids().values()) == {1}


def test_a_window_that_ends_before_it_starts_is_refused(replay_topology):
    code, _, err = run(replay_topology, "--since", "1h", "--until", "2h")
    assert code == replay.USAGE and "must be before --until" in err
    code, _, err = run(replay_topology, "--since", "tuesday")
    assert code == replay.USAGE and "--since" in err


def test_a_missing_replay_subscription_is_named(replay_topology):
    code, _, err = run(replay_topology, "--since", "1h", "--subscription", "no-such-subscription")
    assert code == replay.FAILED and "terraform creates it" in err
