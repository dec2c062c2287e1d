"""measure.gcp.publisher.Publisher: every caller's messages confirmed by the real emulator, concurrent
callers sharing Publish calls, and failures reaching every caller without hanging any."""

from __future__ import annotations

import threading
import time

import pytest

from measure.gcp import googleapi
from measure.gcp import publisher as queue
from measure.gcp.publisher import Publisher, PublishError

pytestmark = pytest.mark.emulator


class CountingApi(googleapi.Api):
    """The real REST client, counting the Publish calls it makes and the messages in each."""

    def __init__(self):
        real = googleapi.pubsub()
        super().__init__(real.base_url, real.http)
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def call(self, method, path, body=None, **kwargs):
        with self._lock:
            self.sizes.append(len(body["messages"]))
        return super().call(method, path, body, **kwargs)


def run_together(count: int, work) -> list:
    """Run work(i) in `count` threads released at once; results (or exceptions) by i."""
    results: list = [None] * count
    start = threading.Barrier(count)

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a publisher call hung"
    return results


def test_concurrent_callers_share_calls_and_each_gets_its_own_message_ids(topology):
    api = CountingApi()
    publisher = Publisher(topology.project, api)
    results = run_together(40, lambda i: publisher.publish(
        topology.names.events_topic, [(f"m{i}-a".encode(), {"caller": str(i)}), (f"m{i}-b".encode(), {})]))

    assert all(isinstance(r, list) and len(r) == 2 for r in results), results
    assert sum(api.sizes) == 80
    assert len(api.sizes) < 40, f"no call was shared: {api.sizes}"
    received = {m.message.data: m.message.message_id
                for m in topology.pull(topology.names.events_tap_subscription, expect=80, timeout=15)}
    assert len(received) == 80
    for i, (id_a, id_b) in enumerate(results):
        assert received[f"m{i}-a".encode()] == id_a
        assert received[f"m{i}-b".encode()] == id_b


def test_more_than_one_call_of_messages_is_split_and_all_confirmed(topology):
    api = CountingApi()
    messages = [(f"big-{i}".encode(), {"i": str(i)}) for i in range(2 * queue.MAX_PER_CALL + 500)]
    ids = Publisher(topology.project, api).publish(topology.names.events_topic, messages)

    assert len(set(ids)) == len(messages)
    assert api.sizes == [queue.MAX_PER_CALL, queue.MAX_PER_CALL, 500]
    received = topology.pull(topology.names.events_tap_subscription, max_messages=1000, expect=len(messages),
                             timeout=30)
    assert sorted(m.message.data for m in received) == sorted(data for data, _ in messages)


def test_a_missing_topic_fails_every_caller_with_the_topic_and_pubsubs_reason(topology):
    publisher = Publisher(topology.project)
    results = run_together(12, lambda i: publisher.publish("no-such-topic", [(b"x", {})]))

    assert all(isinstance(r, PublishError) for r in results), results
    assert "1 of 1 messages to no-such-topic not confirmed" in str(results[0])
    assert "HTTP 404" in str(results[0]) and "not found" in str(results[0]).lower()
    # The publisher is not wedged by the failures: the next publish works.
    assert publisher.publish_one(topology.names.events_topic, (b"after", {}))


class HeldApi:
    """A Publish endpoint that holds each call until released (to line callers up behind it)."""

    def __init__(self):
        self.release = threading.Event()
        self.calls: list[list[bytes]] = []
        self.entered = threading.Event()

    def call(self, method, path, body=None, *, timeout, **kwargs):
        self.calls.append([m["data"] for m in body["messages"]])
        self.entered.set()
        if not self.release.wait(timeout):
            raise googleapi.DeadlineExceededError("publish")
        return {"messageIds": [str(n) for n in range(len(body["messages"]))]}


def test_a_caller_still_queued_at_its_deadline_gives_up_and_its_messages_are_never_sent(monkeypatch):
    monkeypatch.setattr(queue, "MAX_CALLS_IN_FLIGHT", 1)
    api = HeldApi()
    publisher = Publisher("p", api)
    first: list = []
    holder = threading.Thread(target=lambda: first.append(publisher.publish("t", [(b"first", {})], timeout=10)))
    holder.start()
    assert api.entered.wait(5)

    with pytest.raises(PublishError, match="timed out waiting for an earlier Publish call"):
        publisher.publish("t", [(b"late", {})], timeout=0.2)
    api.release.set()
    holder.join(5)

    assert first == [["0"]]
    assert api.calls == [["Zmlyc3Q="]]  # base64 of b"first": b"late" never went out
    assert publisher.publish("t", [(b"next", {})], timeout=5) == ["0"]


def test_callers_queued_behind_a_call_go_out_together_in_the_next_one(monkeypatch):
    monkeypatch.setattr(queue, "MAX_CALLS_IN_FLIGHT", 1)
    api = HeldApi()
    publisher = Publisher("p", api)
    results: dict[int, list[str]] = {}
    threads = [threading.Thread(target=lambda i=i: results.update({i: publisher.publish("t", [(b"m%d" % i, {})])}))
               for i in range(6)]
    threads[0].start()
    assert api.entered.wait(5)
    for t in threads[1:]:
        t.start()
    while len(publisher._queued.get("t", ())) < 5:  # all five lined up behind the held call
        threading.Event().wait(0.01)
    api.release.set()
    for t in threads:
        t.join(5)

    assert [len(c) for c in api.calls] == [1, 5]
    assert sorted(results) == list(range(6))


def settled(call, *args):
    """call(*args) in a thread whose outcome the test does not look at."""
    try:
        call(*args)
    except PublishError:
        pass


class FirstCallStuckApi:
    """A Publish endpoint whose first call is stuck (until released); every later call answers at once."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.timeouts: list[float] = []

    def call(self, method, path, body=None, *, timeout, **kwargs):
        self.calls += 1
        self.timeouts.append(timeout)
        if self.calls == 1:
            self.entered.set()
            if not self.release.wait(timeout):
                raise googleapi.DeadlineExceededError("publish")
        return {"messageIds": [str(n) for n in range(len(body["messages"]))]}


def test_one_stuck_call_does_not_hold_the_callers_behind_it():
    api = FirstCallStuckApi()
    publisher = Publisher("p", api)
    stuck = threading.Thread(target=settled, args=(publisher.publish, "t", [(b"s", {})], 3))
    stuck.start()
    assert api.entered.wait(5)
    try:
        results = run_together(8, lambda i: publisher.publish("t", [(b"m%d" % i, {})], timeout=2))
        assert all(r == ["0"] for r in results), results
    finally:
        api.release.set()
        stuck.join(5)


def test_a_shared_call_waits_no_longer_than_the_earliest_deadline_of_its_callers(monkeypatch):
    monkeypatch.setattr(queue, "MAX_CALLS_IN_FLIGHT", 1)
    api = HeldApi()
    publisher = Publisher("p", api)
    holder = threading.Thread(target=settled, args=(publisher.publish, "t", [(b"h", {})], 0.5))
    holder.start()
    assert api.entered.wait(5)
    waited: list[float] = []

    def short(i: int):
        start = time.monotonic()
        try:
            return publisher.publish("t", [(b"q%d" % i, {})], timeout=1.0 if i == 0 else 30)
        finally:
            waited.append(time.monotonic() - start)

    results = run_together(3, short)
    holder.join(5)
    # The first call timed out at 0.5 s; the next one carried all three and was given the
    # earliest remaining deadline, not the latest (30 s).
    assert all(isinstance(r, PublishError) for r in results), results
    assert max(waited) < 2.0, waited
