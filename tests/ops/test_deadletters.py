"""Dead-letter tools against the real Pub/Sub emulator: what is held stays held unless replayed or purged."""

from __future__ import annotations

import io
import json
import time

import pytest

from measure.events import Event
from measure.gcp.publisher import Publisher, PublishError
from measure.ops import deadletters
from measure.pipeline.message import dead_letter_message

# The events' own time (an hour ago), the same for every call: replay compares them whole.
EVENT_TIME = int(time.time()) - 3600


def event(n: int, name: str = "purchase") -> Event:
    return Event(event_id=f"ev-{n}", event_name=name, user_id=f"player-{n}", ip="175.124.248.15",
                 time_stamp=EVENT_TIME, platform="pc", storefront="steam", extras={"revenue": "4.99"})


@pytest.fixture
def held(topology):
    """Four dead letters: two rejected, one expired (3 days ago), one undecodable (raw, with an ip)."""
    # Ages are asserted to within a minute or two, so they count from when the letters are made
    # (a module-level time went stale when earlier emulator tests ran long).
    now = time.time()
    letters = [
        dead_letter_message("rejected", "Invalid site_id for advertiser", now - 7200, event=event(1), attempts=1),
        dead_letter_message("rejected", "Currency code XXX is not supported", now - 600, event=event(2, "level_up"),
                            attempts=1),
        dead_letter_message("expired", "gave up after 9 attempts; last error: HTTP 503", now - 3 * 86400,
                            event=event(3), attempts=9),
        dead_letter_message("undecodable", "data is not UTF-8 JSON", now - 60,
                            raw=b'{"user_id": "x", "ip": "81.2.69.142", broken', attributes={"source": "test"}),
    ]
    for data, attributes in letters:
        topology.publish(topology.names.dead_letter_topic, data, **attributes)
    return topology


def run(topology, *argv, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = deadletters.main([*argv, "--subscription", topology.names.dead_letter_subscription],
                              out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def listed(topology, *filters) -> list[dict]:
    status, out, err = run(topology, "list", "--json", *filters)
    assert status == 0, err
    return json.loads(out)


def replayed(topology, expect: int, timeout: float = 3.0) -> list[dict]:
    received = topology.pull(topology.names.events_tap_subscription, expect=expect, timeout=timeout)
    return [json.loads(m.message.data) for m in received]


def test_list_shows_everything_held_and_consumes_nothing(held):
    status, out, _ = run(held, "list")
    assert status == 0
    assert "4 dead letter(s) held, 4 shown; nothing was consumed." in out
    header, *rows = out.splitlines()[:5]
    assert header.split()[:4] == ["AGE", "KIND", "ATTEMPTS", "EVENT"]
    kinds = [next(k for k in deadletters.KINDS if f" {k} " in row) for row in rows]
    assert kinds == ["expired", "rejected", "rejected", "undecodable"]  # oldest first
    assert "ev-1" in out and "purchase" in out and "Invalid site_id" in out and "3d 0h" in out
    # Looking again sees the same four: list gave them back.
    again = listed(held)
    assert sorted(d["event_id"] for d in again) == ["", "ev-1", "ev-2", "ev-3"]
    first = next(d for d in again if d["event_id"] == "ev-1")
    assert first["kind"] == "rejected" and first["event_name"] == "purchase" and 7190 < first["age_s"] < 7300


@pytest.mark.parametrize(("filters", "expected"), [
    (("--reason", "CURRENCY"), ["ev-2"]),
    (("--kind", "rejected"), ["ev-1", "ev-2"]),
    (("--event-name", "purchase"), ["ev-3", "ev-1"]),
    (("--older-than", "1h"), ["ev-3", "ev-1"]),
    (("--newer-than", "2h30m"), ["ev-1", "ev-2", ""]),
    (("--older-than", "5m", "--newer-than", "1d"), ["ev-1", "ev-2"]),
    (("--event-id", "ev-2", "--event-id", "ev-3"), ["ev-3", "ev-2"]),
])
def test_filters(held, filters, expected):
    assert [d["event_id"] for d in listed(held, *filters)] == expected


def test_show_prints_the_whole_dead_letter_with_addresses_masked(held):
    status, out, _ = run(held, "show", "ev-1")
    assert status == 0
    shown = json.loads(out)
    assert shown["event"]["event_id"] == "ev-1" and shown["event"]["revenue"] == "4.99"
    assert shown["event"]["ip"] == "175.124.248.0/24" and "175.124.248.15" not in out
    assert shown["dead"]["kind"] == "rejected" and shown["dead"]["reason"] == "Invalid site_id for advertiser"
    # An undecodable one is found by its message id; its raw payload is shown, masked.
    [undecodable] = [d for d in listed(held) if d["kind"] == "undecodable"]
    status, out, _ = run(held, "show", undecodable["message_id"])
    assert status == 0 and json.loads(out)["event"] is None
    assert "81.2.69.0/24" in out and "81.2.69.142" not in out
    assert run(held, "show", "no-such-event")[0] == 1


def test_replay_puts_exactly_the_chosen_events_on_the_topic_and_removes_them(held):
    status, out, err = run(held, "replay", "--event-id", "ev-1", "--event-id", "ev-3")
    assert status == 0, err
    assert "replayed 2 of 2 selected (4 held)" in out
    bodies = replayed(held, 2)
    assert sorted(b["event"]["event_id"] for b in bodies) == ["ev-1", "ev-3"]
    # A fresh event message: the event as it was, retry state reset.
    assert all(b["v"] == 1 and "retry" not in b and "dead" not in b for b in bodies)
    assert next(b for b in bodies if b["event"]["event_id"] == "ev-1")["event"] == event(1).to_dict()
    assert replayed(held, 1, timeout=0.5) == []  # nothing else
    assert sorted(d["event_id"] for d in listed(held)) == ["", "ev-2"]


def test_replay_leaves_undecodable_ones_and_says_so(held):
    status, out, _ = run(held, "replay", "--all")
    assert status == 0
    assert "replayed 3 of 4 selected" in out and "cannot be replayed" in out
    assert sorted(b["event"]["event_id"] for b in replayed(held, 3)) == ["ev-1", "ev-2", "ev-3"]
    assert [d["kind"] for d in listed(held)] == ["undecodable"]


class FailingPublisher(Publisher):
    def publish(self, topic, messages, timeout=20.0):
        raise PublishError(topic, len(messages), len(messages), "injected")


def test_a_replay_whose_publish_fails_acks_nothing(held):
    status, _, err = run(held, "replay", "--kind", "rejected", publisher=FailingPublisher(held.project))
    assert status == 3
    assert "publishing failed, 2 not replayed and still held" in err
    assert len(listed(held)) == 4
    assert replayed(held, 1, timeout=0.5) == []


def test_replay_and_purge_need_a_selection(held):
    for command in (["replay"], ["purge", "--yes"]):
        status, _, err = run(held, *command)
        assert status == 2 and "--all" in err
    assert len(listed(held)) == 4


def test_purge_needs_yes_then_deletes_only_the_chosen(held):
    status, _, err = run(held, "purge", "--kind", "undecodable")
    assert status == 2 and "1 of 4 dead letter(s) would be deleted" in err and "--yes" in err
    assert len(listed(held)) == 4
    status, out, _ = run(held, "purge", "--kind", "undecodable", "--yes")
    assert status == 0 and "purged 1 of 4" in out
    assert sorted(d["event_id"] for d in listed(held)) == ["ev-1", "ev-2", "ev-3"]


def test_options_may_come_before_the_command(held, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    out = io.StringIO()
    status = deadletters.main(["--project", held.project, "--subscription", held.names.dead_letter_subscription,
                               "list", "--json"], out=out, err=io.StringIO())
    assert status == 0 and len(json.loads(out.getvalue())) == 4


def test_usage_errors(topology, monkeypatch):
    assert run(topology, "list", "--older-than", "2x")[0] == 2
    assert "is not a duration" in run(topology, "list", "--older-than", "2x")[2]
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    status, _, err = run(topology, "list")
    assert status == 2 and "GOOGLE_CLOUD_PROJECT" in err
    status, _, err = deadletters.main(["list", "--project", topology.project, "--subscription", "nope"],
                                      out=io.StringIO(), err=(err := io.StringIO())), None, err
    assert status == 2 and "does not exist" in err.getvalue()


def test_parse_duration_and_masking():
    assert [deadletters.parse_duration(t) for t in ("90", "90s", "30m", "2h", "3d", "1w", "1h30m")] == [
        90, 90, 1800, 7200, 259200, 604800, 5400]
    with pytest.raises(ValueError, match="is not a duration"):
        deadletters.parse_duration("3 days")
    assert deadletters.scrub("from 81.2.69.142 and 2001:4860:4860::8888 at 12:30:45, v1.2.3") == (
        "from 81.2.69.0/24 and 2001:4860:4860::/48 at 12:30:45, v1.2.3")


def test_replay_is_paced_at_the_deployments_ceiling(topology):
    now = time.time()
    for n in range(30):
        data, attributes = dead_letter_message("rejected", "Invalid site_id", now, event=event(n), attempts=1)
        topology.publish(topology.names.dead_letter_topic, data, **attributes)
    started = time.monotonic()
    # 10 a second, a second's worth a publish: 10 at once, 10 a second later, 10 a second after that.
    status, out, err = run(topology, "replay", "--all", env={**topology.env(), "MEASURE_API_MAX_RPS": "10"})
    assert status == 0, err
    assert "replayed 30 of 30" in out
    assert time.monotonic() - started >= 2.0
    assert len(replayed(topology, 30)) == 30
    assert run(topology, "replay", "--all", "--rate", "0")[0] == deadletters.USAGE
