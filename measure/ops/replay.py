"""Replay a time window: `python -m measure replay --since T --until T [--dry-run]`.

measure-events keeps every message for 7 days (terraform's message_retention_duration). The replay
subscription (`<prefix>-events-replay`, MEASURE_REPLAY_SUBSCRIPTION; terraform creates it, nobody
else consumes it) retains acknowledged messages too, so a Pub/Sub seek to `--since` makes it deliver
again everything published from then on. This tool seeks it, pulls, keeps the messages whose
publishTime is inside [since, until), and republishes each, data and attributes unchanged, onto the
events topic; send then delivers them as it delivers any event.

Why republish rather than deliver from here: a replayed event then takes the pipeline's own path
(the rate ceiling, retries, the circuit breaker, dead letters, the log lines `status` reads), and
the operator needs only Pub/Sub rights, not the Measurement API's keys. Either way TUNE counts each
event once: the event id is the request's transaction_id, so an event it already has is answered
"Duplicate request detected" (delivered, duplicate).

Everything pulled is acknowledged (the window's messages once republished): the subscription has
no other reader, and the next replay seeks again. The republished copies reach the replay
subscription as well, with a publishTime after `--until`, and are passed over like any message
outside the window. Pub/Sub does not deliver in publish order, so the tool reads until the
subscription is drained, or until PAST_WINDOW_BATCHES full pulls in a row held nothing older than
`--until` (live traffic keeps arriving behind the window).

`--dry-run` seeks and counts, republishes nothing. `--rate` (default MEASURE_API_MAX_RPS) paces the
republishing, so send is not handed more than the ceiling lets it deliver at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

import google.auth.exceptions

from measure.ops.deadletters import ArgumentError, Parser, pulls
from measure.ops.status import parse_when

DEFAULT_SUBSCRIPTION = "measure-events-replay"
DEFAULT_EVENTS_TOPIC = "measure-events"
RETENTION_S = 7 * 86400
PULL_BATCH = 1000
PULL_TIMEOUT = 10.0
CALL_TIMEOUT = 30.0
PAST_WINDOW_BATCHES = 3
PUBLISH_CHUNK = 500
PROGRESS_EVERY_S = 2.0
OK, USAGE, FAILED = 0, 2, 3


@dataclass
class ReplayCount:
    pulled: int = 0
    in_window: int = 0
    undecodable: int = 0  # in the window, but not a measure event: send would only dead-letter it again
    republished: int = 0

    def line(self) -> str:
        return (f"pulled {self.pulled:,}, in the window {self.in_window:,}, republished {self.republished:,}"
                + (f", not events (left out) {self.undecodable:,}" if self.undecodable else ""))


def _rfc3339(seconds: float) -> str:
    whole, ms = divmod(round(seconds * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


class Progress:
    """One plain line on `out` every PROGRESS_EVERY_S seconds and at the end (no terminal tricks)."""

    def __init__(self, out: IO[str], label: str):
        self.out = out
        self.label = label
        self.shown = time.monotonic()

    def update(self, count: ReplayCount, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.shown >= PROGRESS_EVERY_S:
            self.shown = now
            self.out.write(f"{self.label}: {count.line()}\n")
            self.out.flush()


def replay(subscriber, publisher, *, subscription_path: str, topic: str, since: float, until: float,
           dry_run: bool = False, rate: float | None = None, return_immediately: bool = False,
           progress: Progress | None = None) -> ReplayCount:
    """Seek, pull, republish what was published in [since, until); returns the counts."""
    from measure.pipeline.message import UndecodableMessageError, decode
    from measure.pipeline.ratelimit import RateLimit

    subscriber.api.call("POST", f"/v1/{subscription_path}:seek", {"time": _rfc3339(since)}, timeout=CALL_TIMEOUT,
                        what=f"seek {subscription_path}")
    pace = RateLimit(rate, burst=min(PUBLISH_CHUNK, max(1, int(rate)))) if rate else None
    chunk = min(PUBLISH_CHUNK, max(1, int(rate))) if rate else PUBLISH_CHUNK
    count = ReplayCount()
    seen: set[str] = set()
    past = 0
    for received in pulls(subscriber, subscription_path, return_immediately=return_immediately,
                          timeout=PULL_TIMEOUT, batch=PULL_BATCH):
        count.pulled += len(received)
        chosen = []
        for item in received:
            message = item.message
            published = message.publish_time.timestamp() if message.publish_time else None
            if published is None or not since <= published < until or message.message_id in seen:
                continue
            seen.add(message.message_id)  # a message redelivered while we read is the same message
            try:
                decode(message.data)
            except UndecodableMessageError:
                count.undecodable += 1
                continue
            count.in_window += 1
            chosen.append((bytes(message.data), dict(message.attributes)))
        full_and_past = len(received) == PULL_BATCH and all(
            item.message.publish_time and item.message.publish_time.timestamp() >= until for item in received)
        past = past + 1 if full_and_past else 0
        if not dry_run:
            for start in range(0, len(chosen), chunk):
                part = chosen[start:start + chunk]
                if pace:
                    pace.acquire(tokens=len(part))
                publisher.publish(topic, part)  # PublishError: this pull's messages stay unacked
                count.republished += len(part)
                if progress:
                    progress.update(count)
        ack_ids = [item.ack_id for item in received]
        for start in range(0, len(ack_ids), 500):
            subscriber.acknowledge(request={"subscription": subscription_path, "ack_ids": ack_ids[start:start + 500]})
        if progress:
            progress.update(count)
        if past >= PAST_WINDOW_BATCHES:
            break  # full pulls of nothing but what came after the window: the rest is later still
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m measure replay",
                    description="Re-deliver what the events topic held in a time window: seek the replay "
                                "subscription to --since and republish what was published before --until. "
                                "TUNE counts each event once (its event id is the transaction_id).",
                    epilog="Times: 2h (that long ago), 2026-12-02T14:00:00Z (UTC unless it says), or Unix seconds. "
                           "Exit status: 0 done, 2 usage, 3 a Pub/Sub call failed (run it again: a repeat is "
                           "harmless).")
    parser.add_argument("--since", required=True, metavar="WHEN", help="start of the window (inclusive)")
    parser.add_argument("--until", default=None, metavar="WHEN", help="end of the window (exclusive; default now)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed; republish nothing")
    parser.add_argument("--project", help="Google Cloud project (default GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--subscription", help=f"the replay subscription (default MEASURE_REPLAY_SUBSCRIPTION or "
                                               f"{DEFAULT_SUBSCRIPTION})")
    parser.add_argument("--topic", help=f"events topic (default MEASURE_EVENTS_TOPIC or {DEFAULT_EVENTS_TOPIC})")
    parser.add_argument("--rate", type=float, metavar="N",
                        help="republish at most N events a second (default MEASURE_API_MAX_RPS; unset: no pacing)")
    return parser


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None, subscriber=None, publisher=None, now: float | None = None) -> int:
    """`python -m measure replay`; returns the exit status. Clients may be injected (tests)."""
    from measure.gcp.googleapi import ApiError
    from measure.gcp.publisher import PublishError

    env = os.environ if env is None else env
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    try:
        args = build_parser().parse_args(argv)
        since, until = _window(args, now)
        project = args.project or env.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not project:
            raise ArgumentError("replay: no project: set GOOGLE_CLOUD_PROJECT or pass --project")
        rate = args.rate if args.rate is not None else _env_rate(env)
        if rate is not None and not rate > 0:
            raise ArgumentError("replay: --rate must be a number of events a second above 0")
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except ArgumentError as error:
        err.write(f"{error}\n")
        return USAGE
    if since < now - RETENTION_S:
        err.write(f"replay: --since is more than {RETENTION_S // 86400} days ago; measure-events keeps messages "
                  "that long, so the window's start is already gone\n")
    subscription = (args.subscription or env.get("MEASURE_REPLAY_SUBSCRIPTION", "").strip()
                    or DEFAULT_SUBSCRIPTION)
    topic = args.topic or env.get("MEASURE_EVENTS_TOPIC", "").strip() or DEFAULT_EVENTS_TOPIC
    own = subscriber is None
    if own:
        from measure.gcp.subscriber import Subscriber

        subscriber = Subscriber()  # the functions' own REST client: PUBSUB_EMULATOR_HOST, google.auth.default()
    if publisher is None and not args.dry_run:
        from measure.gcp.publisher import Publisher

        publisher = Publisher(project)
    path = subscriber.subscription_path(project, subscription)
    label = "replay (dry run)" if args.dry_run else "replay"
    err.write(f"{label}: seeking {path} to {_rfc3339(since)}; window until {_rfc3339(until)}"
              + (f", republishing at most {rate:g} a second" if rate and not args.dry_run else "") + "\n")
    progress = Progress(err, label)
    try:
        count = replay(subscriber, publisher, subscription_path=path, topic=topic, since=since, until=until,
                       dry_run=args.dry_run, rate=rate, return_immediately=bool(env.get("PUBSUB_EMULATOR_HOST")),
                       progress=progress)
    except google.auth.exceptions.DefaultCredentialsError as error:
        err.write(f"replay: no Google credentials ({error}); run `gcloud auth application-default login`\n")
        return FAILED
    except (ApiError, PublishError) as error:
        err.write(f"replay: {error}\n")
        if getattr(error, "status", None) == 404:
            err.write(f"replay: does {path} exist? terraform creates it (output subscriptions.replay)\n")
        return FAILED
    finally:
        if own:
            subscriber.close()
    progress.update(count, force=True)
    if args.dry_run:
        out.write(f"{count.in_window} event(s) were published in the window and would be replayed to {topic}.\n")
    else:
        out.write(f"replayed {count.republished} event(s) published in the window to {topic}; send delivers "
                  "them again (TUNE answers a duplicate for those it already has).\n")
    return OK


def _window(args: argparse.Namespace, now: float) -> tuple[float, float]:
    try:
        since = parse_when(args.since, now)
    except ValueError as error:
        raise ArgumentError(f"replay: --since: {error}") from None
    try:
        until = now if args.until is None else parse_when(args.until, now)
    except ValueError as error:
        raise ArgumentError(f"replay: --until: {error}") from None
    # Never past now: the republished copies, published now, must fall outside the window.
    until = min(until, now)
    if not since < until:
        raise ArgumentError(f"replay: --since ({_rfc3339(since)}) must be before --until ({_rfc3339(until)}) "
                            "and before now")
    return since, until


def _env_rate(env: Mapping[str, str]) -> float | None:
    raw = env.get("MEASURE_API_MAX_RPS", "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        raise ArgumentError(f"replay: MEASURE_API_MAX_RPS must be a number, got {raw!r}") from None
    return value or None
