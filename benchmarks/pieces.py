"""receive's own pieces of work for one form event, each timed alone, in interleaved rounds.

    python -m benchmarks.pieces [--rounds 7] [--number 3000]

A sampling profile of a server on a busy machine smears (py-spy's --gil samples whoever held the
GIL when the OS took the CPU away); these are the same pieces as benchmarks/profiles.py names,
called directly in one process pinned to CPU 0: the token check, body parsing, validation (with
the event id derived), message encoding, the log line (to /dev/null), the answer's JSON and the
tracing decorator, then Webhook.handle end to end with a publisher that returns at once (so
everything but the Publish call and the server around it). Every round runs every piece once, in
the same order, so a piece's median and its share of the sum come from the same stretches of the
machine. The Publish call itself is benchmarks/publish_call.py's; receive pays it once for every
`messages a Publish call` requests (benchmarks/latency.py counts those).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import timeit
from contextlib import redirect_stdout
from urllib.parse import urlencode

from benchmarks.common import SERVER_CPUS, SITE_IDS, TOKEN, pinned_children, seed_event


class _Request:
    """What Webhook.handle reads of a Flask request."""

    def __init__(self, body: bytes):
        self.path = "/measure"
        self.method = "POST"
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
        self.content_length = len(body)
        self._body = body

    @property
    def stream(self):
        return io.BytesIO(self._body)


class _Publisher:
    def publish(self, topic, messages, timeout=None):
        return [str(i) for i in range(len(messages))]


def pieces() -> dict[str, object]:
    import json

    from measure import events, logs
    from measure.config import Config
    from measure.functions.receive import Webhook, bearer_token, token_valid
    from measure.pipeline.message import event_message

    now = int(time.time())
    body = urlencode(seed_event(1, now)).encode()
    form = "application/x-www-form-urlencoded"
    raw = events.parse_body(body, form)
    accepted = events.validate(raw, site_ids=SITE_IDS, now=now)
    ids = [e.event_id for e in accepted]
    config = Config(advertiser_id="877", site_ids=SITE_IDS, endpoint="http://127.0.0.1:9/serve", project="bench")
    webhook = Webhook(config, lambda: (TOKEN,), _Publisher(), clock=lambda: now)  # type: ignore[arg-type]  # a stand-in publisher
    request = _Request(body)
    traced = logs.traced(lambda request: None)
    return {
        "token check (bearer_token, token_valid)": lambda: token_valid(bearer_token(f"Bearer {TOKEN}"), (TOKEN,)),
        "body parsing (events.parse_body)": lambda: events.parse_body(body, form),
        "validation, event id included (events.validate)": lambda: events.validate(raw, site_ids=SITE_IDS, now=now),
        "message encoding (event_message)": lambda: [event_message(e) for e in accepted],
        "the log line (logs.info, to /dev/null)": lambda: logs.info(
            "accepted", component="receive", events=1, event_id=ids[0], event_name=accepted[0].event_name),
        "the answer's JSON": lambda: json.dumps({"accepted": len(ids), "event_ids": ids}),
        "the tracing decorator (logs.traced)": lambda: traced(request),
        "Webhook.handle end to end, Publish returning at once": lambda: webhook.handle(request),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pieces")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=3000)
    args = parser.parse_args(argv)
    with pinned_children(SERVER_CPUS), open("/dev/null", "w") as devnull, redirect_stdout(devnull):
        import os

        os.sched_setaffinity(0, {int(SERVER_CPUS)})
        work = pieces()
        times: dict[str, list[float]] = {name: [] for name in work}
        for call in work.values():
            call()
        for _ in range(args.rounds):
            for name, call in work.items():
                times[name].append(1e6 * timeit.timeit(call, number=args.number) / args.number)
    whole = "Webhook.handle end to end, Publish returning at once"
    rounds_whole = times[whole]
    print("| piece | µs (median of rounds) | share of Webhook.handle (median of rounds) | rounds |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        share = statistics.median(v / w for v, w in zip(values, rounds_whole, strict=True))
        print(f"| {name} | {statistics.median(values):.1f} | {share:.0%} | {', '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
