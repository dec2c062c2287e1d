"""Dead letters: look at what measure gave up on, replay what is fixed, purge what never will be.

    python -m measure dead-letters list [--reason TEXT] [--kind K] [--event-name N]
                                        [--older-than 2h] [--newer-than 3d] [--json]
    python -m measure dead-letters show ID
    python -m measure dead-letters replay (FILTERS | --event-id ID... | --all)
    python -m measure dead-letters purge  (FILTERS | --event-id ID... | --all) --yes

Dead letters wait on the pull subscription measure-dead-letter-hold. Pub/Sub has no "peek", so
every command pulls everything held (leasing it, so one pass sees each message once) and gives
back what it only looked at with an ack deadline of 0: `list` and `show` consume nothing.

`replay` publishes a fresh event message (`message.event_message`: retry state reset, same
event id) to the events topic and acknowledges a dead letter only after Pub/Sub confirmed its
replay, so a failure part-way loses nothing: the unconfirmed ones stay held. A dead letter whose
event could not be decoded has nothing to replay; it is named and left for `show` and `purge`.
Replaying twice is harmless: the event id is the Measurement API's transaction_id.

Addresses are masked in everything printed (logs.mask_ip): the event's ip, and any address
in a reason or a raw payload.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from measure.events import Event, InvalidEvents
from measure.logs import mask_ip, scrub
from measure.pipeline.message import UndecodableMessageError, decode_dead_letter, event_message

DEFAULT_SUBSCRIPTION = "measure-dead-letter-hold"
DEFAULT_EVENTS_TOPIC = "measure-events"
KINDS = ("rejected", "expired", "undecodable")
OK, NOT_FOUND, USAGE, REPLAY_FAILED = 0, 1, 2, 3

PULL_BATCH = 1000  # Pub/Sub's maximum per pull
ACK_BATCH = 500  # ack ids per acknowledge/modify call, well inside the 512 kB request limit
# How long a pulled message stays hidden from other pullers while we decide. Long enough for a
# big hold to be read and replayed; short enough that a crashed run's leases lapse soon.
LEASE_SECONDS = 120
PULL_TIMEOUT = 10.0
REPLAY_CHUNK = 500


# ---------------------------------------------------------------------------------------------
# Small helpers: masking and durations


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """Seconds in "90s", "30m", "2h", "3d", "1w", "1h30m", or plain seconds; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if compact.isdigit():
        return int(compact)
    if compact and _DURATION.sub("", compact) == "":
        return sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(compact))
    raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 2h or 3d")


def duration_arg(text: str) -> int:
    """parse_duration for argparse, which then prints our message."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


# ---------------------------------------------------------------------------------------------
# One held dead letter


@dataclass
class DeadLetter:
    """A message pulled from the hold: its lease (ack_id) and what it says."""

    message_id: str
    ack_id: str
    publish_time: float
    attributes: dict[str, str]
    data: bytes
    body: dict | None  # None when the message is not a measure dead letter at all
    problem: str = ""  # why body is None

    @classmethod
    def from_received(cls, received) -> DeadLetter:
        message = received.message
        try:
            body, problem = decode_dead_letter(message.data), ""
        except (UndecodableMessageError, ValueError) as error:
            body, problem = None, f"not a measure dead letter: {error}"
        published = message.publish_time.timestamp() if message.publish_time else 0.0
        return cls(message.message_id, received.ack_id, published, dict(message.attributes), bytes(message.data),
                   body, problem)

    @property
    def dead(self) -> dict:
        dead = (self.body or {}).get("dead")
        return dead if isinstance(dead, dict) else {}

    @property
    def kind(self) -> str:
        return str(self.dead.get("kind") or self.attributes.get("kind") or "unknown")

    @property
    def reason(self) -> str:
        return str(self.dead.get("reason") or self.problem)

    @property
    def at(self) -> float:
        """When it was dead-lettered (the publish time if the letter does not say)."""
        at = self.dead.get("at")
        return float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else self.publish_time

    @property
    def attempts(self) -> int:
        attempts = self.dead.get("attempts")
        return attempts if isinstance(attempts, int) else 0

    @property
    def event_fields(self) -> dict | None:
        event = (self.body or {}).get("event")
        return event if isinstance(event, dict) else None

    @property
    def event_id(self) -> str:
        return str((self.event_fields or {}).get("event_id") or self.attributes.get("event_id", ""))

    @property
    def event_name(self) -> str:
        return str((self.event_fields or {}).get("event_name") or self.attributes.get("event_name", ""))

    def event(self) -> tuple[Event | None, str]:
        """The event to replay, or None and why there is none."""
        if self.body is None:
            return None, self.problem
        if self.event_fields is None:
            return None, f"{self.kind}: the original message could not be decoded, so there is no event to replay"
        try:
            return Event.from_dict(self.event_fields), ""
        except InvalidEvents as error:
            return None, f"its event is malformed: {error}"

    def summary(self, now: float) -> dict:
        """What `list --json` prints: no event fields beyond id and name, reason masked."""
        return {"message_id": self.message_id, "event_id": self.event_id, "event_name": self.event_name,
                "kind": self.kind, "reason": scrub(self.reason), "at": self.at, "age_s": round(now - self.at),
                "attempts": self.attempts}

    def whole(self, now: float) -> dict:
        """What `show` prints: everything, with the ip and any address in free text masked."""
        shown: dict[str, object] = {
            "message_id": self.message_id,
            "published": _iso(self.publish_time),
            "age": format_age(now - self.at),
            "attributes": self.attributes,
        }
        if self.body is None:
            shown["problem"] = self.problem
            shown["data"] = scrub(self.data[:4096].decode("utf-8", "replace"))
            return shown
        event = dict(self.event_fields) if self.event_fields is not None else None
        if event and "ip" in event:
            event["ip"] = mask_ip(event["ip"])
        dead = dict(self.dead)
        if "reason" in dead:
            dead["reason"] = scrub(str(dead["reason"]))
        if isinstance(dead.get("at"), (int, float)):
            dead["at_utc"] = _iso(dead["at"])
        shown.update(v=self.body.get("v"), event=event, dead=dead)
        if isinstance(self.body.get("raw"), str):
            try:
                raw = base64.b64decode(self.body["raw"]).decode("utf-8", "replace")
            except ValueError:
                raw = "(raw is not valid base64)"
            shown["raw_text"] = scrub(raw)
        return shown


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ---------------------------------------------------------------------------------------------
# Choosing dead letters


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command is about. Every given criterion must match."""

    reason: str | None = None  # substring, case-insensitive
    kind: str | None = None
    event_name: str | None = None
    older_than: int | None = None  # seconds since dead-lettered
    newer_than: int | None = None
    event_ids: frozenset[str] = frozenset()  # an event id, or a message id (for undecodable ones)
    everything: bool = False

    @property
    def chooses(self) -> bool:
        """True when something narrows the choice, or --all says it need not."""
        return self.everything or bool(
            self.reason or self.kind or self.event_name or self.older_than is not None
            or self.newer_than is not None or self.event_ids
        )

    def matches(self, letter: DeadLetter, now: float) -> bool:
        age = now - letter.at
        return (
            (not self.reason or self.reason.lower() in letter.reason.lower())
            and (not self.kind or self.kind == letter.kind)
            and (not self.event_name or self.event_name == letter.event_name)
            and (self.older_than is None or age >= self.older_than)
            and (self.newer_than is None or age <= self.newer_than)
            and (not self.event_ids or letter.event_id in self.event_ids or letter.message_id in self.event_ids)
        )


# ---------------------------------------------------------------------------------------------
# The hold subscription


def pulls(subscriber: Any, path: str, *, return_immediately: bool, timeout: float,
          batch: int = PULL_BATCH) -> Iterator[list[Any]]:
    """Each non-empty pull of `path`, until it answers empty. The emulator can answer an immediate
    pull empty just after a publish, so there one more look, a moment later, settles it; the real
    service waits by itself. The caller acks, leases or releases what each pull leased to it."""
    empty = 0
    patience = 2 if return_immediately else 1
    while empty < patience:
        response = subscriber.pull(request={"subscription": path, "max_messages": batch,
                                            "return_immediately": return_immediately}, timeout=timeout)
        received = list(response.received_messages)  # empty when the pull timed out
        if not received:
            empty += 1
            if empty < patience:
                time.sleep(0.2)
            continue
        empty = 0
        yield received


class Hold:
    """The dead-letter subscription: pull everything, then ack or give back each message."""

    def __init__(self, subscriber, project: str, subscription: str = DEFAULT_SUBSCRIPTION, *,
                 return_immediately: bool = False, pull_timeout: float = PULL_TIMEOUT):
        self.subscriber = subscriber
        self.path = subscriber.subscription_path(project, subscription)
        # The emulator holds an empty pull for its whole deadline unless asked to answer at once;
        # the real service may answer empty with messages waiting when asked that, so only there.
        self.return_immediately = return_immediately
        self.pull_timeout = pull_timeout

    def pull_all(self) -> list[DeadLetter]:
        """Everything held, each once, leased to us until acked or released."""
        from measure.gcp.googleapi import ApiError

        letters: dict[str, DeadLetter] = {}
        try:
            for received in pulls(self.subscriber, self.path, return_immediately=self.return_immediately,
                                  timeout=self.pull_timeout):
                self._modify([r.ack_id for r in received], LEASE_SECONDS)
                for item in received:
                    # A message redelivered while we were reading is the same message: keep the newest lease.
                    letters[item.message.message_id] = DeadLetter.from_received(item)
        except ApiError as error:
            if error.status != 404:
                raise
            raise HoldError(f"subscription {self.path} does not exist; check --subscription and --project") \
                from None
        return sorted(letters.values(), key=lambda letter: letter.at)

    def release(self, letters: Iterable[DeadLetter]) -> None:
        """Give messages back at once (ack deadline 0): they stay held, for the next look."""
        self._modify([letter.ack_id for letter in letters], 0)

    def ack(self, letters: Iterable[DeadLetter]) -> None:
        ack_ids = [letter.ack_id for letter in letters]
        for start in range(0, len(ack_ids), ACK_BATCH):
            self.subscriber.acknowledge(
                request={"subscription": self.path, "ack_ids": ack_ids[start:start + ACK_BATCH]})

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), ACK_BATCH):
            self.subscriber.modify_ack_deadline(request={
                "subscription": self.path, "ack_ids": ack_ids[start:start + ACK_BATCH],
                "ack_deadline_seconds": seconds})


class HoldError(RuntimeError):
    """The hold cannot be read (no such subscription, no access)."""


class ArgumentError(Exception):
    """A command-line mistake, raised instead of argparse's exit so main() can report it on `err`."""


class Parser(argparse.ArgumentParser):
    """argparse that raises ArgumentError rather than printing to sys.stderr and exiting."""

    def error(self, message: str):
        raise ArgumentError(f"{self.format_usage()}{self.prog}: error: {message}")


# ---------------------------------------------------------------------------------------------
# The operations


def inspect(hold: Hold, selection: Selection, now: float | None = None) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(everything held, the selected ones); everything is given back, nothing consumed."""
    now = time.time() if now is None else now
    letters = hold.pull_all()
    hold.release(letters)
    return letters, [letter for letter in letters if selection.matches(letter, now)]


@dataclass
class ReplayResult:
    held: int = 0
    selected: int = 0
    replayed: list[DeadLetter] = field(default_factory=list)
    unreplayable: list[tuple[DeadLetter, str]] = field(default_factory=list)
    not_replayed: int = 0  # selected and replayable, but not confirmed (a publish failed): still held
    ack_failed: int = 0  # replayed, but the ack did not reach Pub/Sub: held, and would replay again
    error: str = ""


def replay(hold: Hold, publisher, topic: str, selection: Selection, now: float | None = None,
           chunk: int = REPLAY_CHUNK, rate: float | None = None) -> ReplayResult:
    """Republish the selected events to `topic`; ack each dead letter only after its replay is confirmed.

    `rate` (events a second) paces the republishing: a chunk of at most one second's worth at a time."""
    from measure.gcp.googleapi import ApiError
    from measure.gcp.publisher import PublishError
    from measure.pipeline.ratelimit import RateLimit

    pace = None
    if rate:
        chunk = min(chunk, max(1, int(rate)))
        pace = RateLimit(rate, burst=chunk)

    now = time.time() if now is None else now
    result = ReplayResult()
    letters = hold.pull_all()
    result.held = len(letters)
    settled: set[str] = set()
    try:
        ready: list[tuple[DeadLetter, Event]] = []
        for letter in letters:
            if not selection.matches(letter, now):
                continue
            result.selected += 1
            event, why = letter.event()
            if event is None:
                result.unreplayable.append((letter, why))
            else:
                ready.append((letter, event))
        for start in range(0, len(ready), chunk):
            batch = ready[start:start + chunk]
            if pace:
                pace.acquire(tokens=len(batch))
            try:
                publisher.publish(topic, [event_message(event) for _, event in batch])
            except PublishError as error:
                result.not_replayed = len(ready) - start
                result.error = str(error)
                break
            done = [letter for letter, _ in batch]
            try:
                hold.ack(done)
            except ApiError:
                result.ack_failed += len(done)
            settled.update(letter.message_id for letter in done)
            result.replayed.extend(done)
    finally:
        # Everything not replayed goes back to the hold now rather than when its lease lapses.
        hold.release(letter for letter in letters if letter.message_id not in settled)
    return result


@dataclass
class PurgeResult:
    held: int = 0
    purged: list[DeadLetter] = field(default_factory=list)


def purge(hold: Hold, selection: Selection, now: float | None = None, *, confirmed: bool = False) -> PurgeResult:
    """Acknowledge (delete for good) the selected dead letters; without `confirmed`, only count them."""
    now = time.time() if now is None else now
    letters = hold.pull_all()
    chosen = [letter for letter in letters if selection.matches(letter, now)]
    try:
        if confirmed:
            hold.ack(chosen)
    finally:
        hold.release(letter for letter in letters if not (confirmed and letter in chosen))
    return PurgeResult(len(letters), chosen)


# ---------------------------------------------------------------------------------------------
# The command line


def build_parser() -> argparse.ArgumentParser:
    def common_options(default: object) -> Parser:
        common = Parser(add_help=False)
        common.add_argument("--project", default=default, help="Google Cloud project (default GOOGLE_CLOUD_PROJECT)")
        common.add_argument("--subscription", default=default,
                            help="the hold subscription (default MEASURE_DEAD_LETTER_SUBSCRIPTION or "
                                 f"{DEFAULT_SUBSCRIPTION})")
        return common

    # Accepted before or after the command; after it, an option not given must not overwrite the
    # value given before it, hence SUPPRESS there.
    top, common = common_options(None), common_options(argparse.SUPPRESS)
    filters = Parser(add_help=False)
    filters.add_argument("--reason", help="reason contains this text (case-insensitive)")
    filters.add_argument("--kind", choices=(*KINDS, "unknown"))
    filters.add_argument("--event-name")
    filters.add_argument("--older-than", type=duration_arg, metavar="AGE",
                         help="dead-lettered at least AGE ago (2h, 3d)")
    filters.add_argument("--newer-than", type=duration_arg, metavar="AGE", help="dead-lettered at most AGE ago")
    filters.add_argument("--event-id", action="append", default=[], metavar="ID",
                         help="this event (or message) id; repeat for more")
    choose = Parser(add_help=False)
    choose.add_argument("--all", action="store_true", help="every dead letter the filters match (or all of them)")

    parser = Parser(
        prog="python -m measure dead-letters",
        description="Inspect, replay and purge the dead letters held on the dead-letter subscription.",
        epilog="Exit status: 0 done, 1 nothing found (show), 2 usage, 3 a replay publish failed (nothing of "
               "the failed part was removed).",
        parents=[top],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,show,replay,purge}")
    listing = commands.add_parser("list", parents=[common, filters], help="what is held (consumes nothing)")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    show = commands.add_parser("show", parents=[common], help="one dead letter in full (ip masked)")
    show.add_argument("id", metavar="EVENT_ID", help="an event id (or the message id of an undecodable one)")
    again = commands.add_parser("replay", parents=[common, filters, choose],
                                help="republish the chosen events to the events topic, then remove them")
    again.add_argument("--topic", help="events topic (default MEASURE_EVENTS_TOPIC or measure-events)")
    again.add_argument("--rate", type=float, metavar="N",
                       help="republish at most N events a second (default MEASURE_API_MAX_RPS; unset: at once)")
    remove = commands.add_parser("purge", parents=[common, filters, choose], help="delete the chosen dead letters")
    remove.add_argument("--yes", action="store_true", help="really delete them")
    return parser


def selection_from(args: argparse.Namespace) -> Selection:
    return Selection(reason=args.reason, kind=args.kind, event_name=args.event_name, older_than=args.older_than,
                     newer_than=args.newer_than, event_ids=frozenset(args.event_id),
                     everything=getattr(args, "all", False))


def render_table(letters: list[DeadLetter], now: float) -> str:
    rows = [("AGE", "KIND", "ATTEMPTS", "EVENT NAME", "EVENT ID", "REASON")]
    for letter in letters:
        reason = scrub(letter.reason.replace("\n", " "))
        rows.append((format_age(now - letter.at), letter.kind, str(letter.attempts), letter.event_name or "-",
                     letter.event_id or f"(message {letter.message_id})",
                     reason if len(reason) <= 80 else reason[:79] + "…"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
                     for row in rows)


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None, subscriber=None, publisher=None, now: float | None = None) -> int:
    """`python -m measure dead-letters`; returns the exit status. Clients may be injected (tests)."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except ArgumentError as error:
        err.write(f"{error}\n")
        return USAGE
    project = args.project or env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not project:
        err.write("dead-letters: no project: set GOOGLE_CLOUD_PROJECT or pass --project\n")
        return USAGE
    selection = selection_from(args) if args.command != "show" else Selection(event_ids=frozenset([args.id]))
    if args.command in ("replay", "purge") and not selection.chooses:
        err.write(f"dead-letters {args.command}: say which: filters (--reason, --kind, ...), --event-id ID, "
                  "or --all for every one\n")
        return USAGE
    own_subscriber = subscriber is None
    if own_subscriber:
        from measure.gcp.subscriber import Subscriber

        subscriber = Subscriber()  # the functions' own REST client: PUBSUB_EMULATOR_HOST, google.auth.default()
    subscription = args.subscription or env.get("MEASURE_DEAD_LETTER_SUBSCRIPTION", "").strip() or DEFAULT_SUBSCRIPTION
    hold = Hold(subscriber, project, subscription, return_immediately=bool(env.get("PUBSUB_EMULATOR_HOST")))
    now = time.time() if now is None else now
    try:
        return _run(args, hold, selection, project, env, out, err, publisher, now)
    except HoldError as error:
        err.write(f"dead-letters: {error}\n")
        return USAGE
    finally:
        if own_subscriber:
            subscriber.close()


def _run(args, hold: Hold, selection: Selection, project: str, env, out: IO[str], err: IO[str], publisher,
         now: float) -> int:
    if args.command == "list":
        held, chosen = inspect(hold, selection, now)
        if args.json:
            out.write(json.dumps([letter.summary(now) for letter in chosen], indent=2) + "\n")
        else:
            if chosen:
                out.write(render_table(chosen, now) + "\n")
            out.write(f"{len(held)} dead letter(s) held, {len(chosen)} shown; nothing was consumed.\n")
        return OK
    if args.command == "show":
        _, chosen = inspect(hold, selection, now)
        if not chosen:
            err.write(f"dead-letters show: no dead letter with event or message id {args.id!r} is held\n")
            return NOT_FOUND
        whole = [letter.whole(now) for letter in chosen]
        out.write(json.dumps(whole[0] if len(whole) == 1 else whole, indent=2, ensure_ascii=False) + "\n")
        return OK
    if args.command == "purge":
        purged = purge(hold, selection, now, confirmed=args.yes)
        if not args.yes:
            err.write(f"dead-letters purge: {len(purged.purged)} of {purged.held} dead letter(s) would be "
                      "deleted for good; run again with --yes to delete them (nothing was deleted)\n")
            return USAGE
        out.write(f"purged {len(purged.purged)} of {purged.held} dead letter(s).\n")
        return OK
    topic = args.topic or env.get("MEASURE_EVENTS_TOPIC", "").strip() or DEFAULT_EVENTS_TOPIC
    if publisher is None:
        from measure.gcp.publisher import Publisher

        publisher = Publisher(project)
    rate = args.rate if args.rate is not None else _ceiling(env)
    if rate is not None and not rate > 0:
        err.write("dead-letters replay: --rate must be a number of events a second above 0\n")
        return USAGE
    result = replay(hold, publisher, topic, selection, now, rate=rate)
    out.write(f"replayed {len(result.replayed)} of {result.selected} selected ({result.held} held) to {topic}.\n")
    for letter, why in result.unreplayable:
        out.write(f"  left in the hold, cannot be replayed: message {letter.message_id}: {scrub(why)}\n")
    if result.unreplayable:
        out.write(f"{len(result.unreplayable)} cannot be replayed; inspect with `show MESSAGE_ID`, "
                  "delete with `purge --event-id MESSAGE_ID --yes`.\n")
    if result.ack_failed:
        out.write(f"{result.ack_failed} replayed but could not be removed from the hold; a later replay of "
                  "them is harmless (same event ids).\n")
    if result.error:
        err.write(f"dead-letters replay: publishing failed, {result.not_replayed} not replayed and still held: "
                  f"{result.error}\n")
        return REPLAY_FAILED
    return OK


def _ceiling(env: Mapping[str, str]) -> float | None:
    """MEASURE_API_MAX_RPS, the deployment's ceiling on the Measurement API (None: unset or 0).
    Replaying faster only queues events up for send, which defers what its share has no room for."""
    raw = env.get("MEASURE_API_MAX_RPS", "").strip()
    try:
        return float(raw) or None if raw else None
    except ValueError:
        return None  # send refuses to start with it; replaying unpaced is still safe
