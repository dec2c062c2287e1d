"""Backfill: send a file of past events (CSV or NDJSON) through measure, the seed's "batch uploads".

    python -m measure backfill events.csv          validate everything, then publish in chunks
    python -m measure backfill - --format ndjson   the same from stdin

Two passes over the file, never more than one chunk of it in memory, so a file of millions of
lines costs the same memory as one of ten:

1. Validate every line with the webhook's own rules (`measure.events.validate`). Every bad line is
   reported with its line number and each problem; a file with errors sends nothing unless
   `--skip-invalid`, because a half-sent file is harder to fix than an unsent one.
2. Publish the valid events to the events topic in chunks (or POST them to a running `receive`
   with `--webhook`), waiting for Pub/Sub's confirmation of each chunk before recording its last
   line in the checkpoint file. An interrupted run started again skips what the checkpoint says
   was confirmed.

Exactly-once is not needed for safety: if the process dies after Pub/Sub confirmed a chunk but
before the checkpoint was written, that chunk is sent again on resume. That is harmless because
an event's id is its own `event_id` or derived deterministically from its fields, so the copy has
the same id, the same Measurement API `transaction_id`, and TUNE reports it as a duplicate.

The validation pass and the publish pass use one clock reading, so an event at the edge of the
maximum age cannot pass the first and fail the second.

Exit status: 0 done, 1 invalid lines (and nothing sent), 2 usage or setup problem, 3 sending
failed part-way (the checkpoint says where; run the same command again to resume), 130 interrupted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from measure import events
from measure.config import ConfigError, check_endpoint, load
from measure.logs import scrub
from measure.ops.deadletters import ArgumentError, Parser, duration_arg
from measure.pipeline.message import event_message

OK, INVALID, USAGE, SEND_FAILED, INTERRUPTED = 0, 1, 2, 3, 130

DEFAULT_CHUNK = 1000
DEFAULT_IN_FLIGHT = 4
# An event is at most about 8 kB (events.MAX_FIELD_LENGTH); a longer line is a broken file, and
# reading it whole would let one line break the memory bound.
MAX_LINE_BYTES = 64 * 1024
# receive accepts events.MAX_BODY_BYTES (1 MiB) a request; keep well under it (900 KiB).
WEBHOOK_MAX_BODY = events.MAX_BODY_BYTES * 900 // 1024
WEBHOOK_ATTEMPTS = 5
FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson"}
# The checkpoint records which file it belongs to by its size and the hash of its first bytes.
FINGERPRINT_BYTES = 64 * 1024


class UsageError(Exception):
    """A problem with the command line, the file or the setup; exit status 2."""


class SendError(Exception):
    """A chunk could not be handed over; nothing after the checkpoint counts as sent."""


# ---------------------------------------------------------------------------------------------
# Reading records


@dataclass(frozen=True, slots=True)
class Line:
    """One record of the file: its (first) line number and either an Event or its problems."""

    number: int
    event: events.Event | None
    problems: tuple[tuple[str, str], ...] = ()


def detect_format(name: str, given: str | None) -> str:
    if given:
        return given
    if name == "-":
        raise UsageError("reading stdin: say which format it is with --format csv or --format ndjson")
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{name}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            "use .csv, .ndjson or .jsonl, or pass --format csv|ndjson"
        )
    return FORMATS[suffix]


def read_lines(
    path: Path, fmt: str, *, site_ids: Mapping[str, str], max_age: int, now: float, name: str | None = None
) -> Iterator[Line]:
    """Every record of the file, validated, in order. Streams: one record in memory at a time."""
    raw_records = _csv_records(path, name or str(path)) if fmt == "csv" else _ndjson_records(path)
    for number, raw, problems in raw_records:
        if problems:
            yield Line(number, None, tuple(problems))
            continue
        try:
            (event,) = events.validate([raw],  # type: ignore[list-item]  # no problems: a dict
                                       site_ids=site_ids, max_age=max_age, now=now)
        except events.InvalidEvents as invalid:
            yield Line(number, None, tuple((p.field, p.problem) for p in invalid.problems))
            continue
        yield Line(number, event)


Record = tuple[int, dict[str, Any] | None, list[tuple[str, str]]]


def _ndjson_records(path: Path) -> Iterator[Record]:
    with open(path, "rb") as f:
        number = 0
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the over-long line without holding it
                yield number, None, [("line", f"is longer than {MAX_LINE_BYTES} bytes; an event is a few hundred")]
                continue
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            if not line.lstrip().startswith(b"{"):
                yield number, None, [("line", "is not a JSON object; each line must be one event {...}")]
                continue
            try:
                # The webhook's own JSON rules: duplicate keys, non-finite numbers, nesting.
                (raw,) = events.parse_body(line, events.JSON)
            except events.BodyError as error:
                # parse_body speaks of a body; here the body is this line.
                where = "line" if error.field == "body" else error.field
                yield number, None, [(where, error.problem.replace("at line 1 column", "at column"))]
                continue
            yield number, raw, []


def _csv_records(path: Path, name: str) -> Iterator[Record]:
    # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate, named below as a problem
    # of its own line instead of ending the whole run.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise UsageError(f"{name}: line 1 (header): {error}") from None
        columns = _check_header(header, name)
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield previous + 1, None, [("line", f"is not valid CSV: {error}")]
                previous = reader.line_num
                continue
            number, previous = previous + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(columns):
                problem = f"has {len(row)} cells; the header (line 1) has {len(columns)}"
                yield number, None, [("line", problem)]
                continue
            raw: dict[str, str] = {}
            problems = []
            for name, cell in zip(columns, row, strict=True):
                if _has_surrogate(cell):
                    problems.append((name, "is not valid UTF-8; save the file as UTF-8"))
                elif cell.strip():
                    # CSV has no "absent": an empty cell is a field left out (the default event
                    # name, no revenue), and a required field left empty is reported as missing.
                    raw[name] = cell
            yield number, (None if problems else raw), problems


def _check_header(header: list[str], name: str) -> list[str]:
    columns = [column.strip() for column in header]
    problems = []
    for index, column in enumerate(columns, 1):
        if not column:
            problems.append(f"column {index} has no name")
        elif column not in events.FIELDS:
            # validate() knows the suggestions ("timestamp" -> "time_stamp"); ask it.
            try:
                events.validate([{column: "x"}], site_ids={})
            except events.InvalidEvents as invalid:
                said = [p.problem for p in invalid.problems if p.field == column]
                problems.append(f"column {column!r} {said[0] if said else 'is not a known field'}")
        elif columns.index(column) != index - 1:
            problems.append(f"column {column!r} appears twice")
    if problems:
        known = ", ".join(events.FIELDS)
        raise UsageError(f"{name}: line 1 (header): " + "; ".join(problems) + f"; known fields: {known}")
    return columns


_SURROGATE = re.compile("[\udc80-\udcff]")


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def describe(source: str, line: Line) -> str:
    """`events.csv:17: ip: ...; time_stamp: ...`, addresses masked."""
    problems = "; ".join(f"{name}: {problem}" for name, problem in line.problems)
    return scrub(f"{source}:{line.number}: {problems}")


# ---------------------------------------------------------------------------------------------
# The checkpoint


@dataclass
class Checkpoint:
    """The last line of the file whose events are all confirmed sent, kept in a small JSON file.

    Written atomically (temporary file, fsync, rename) and only after confirmation, so after any
    crash it names a line at or before the truth, never after it.
    """

    path: Path
    fingerprint: dict
    line: int = 0
    published: int = 0

    @classmethod
    def open(cls, path: Path, source: Path) -> Checkpoint:
        fingerprint = file_fingerprint(source)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path, fingerprint)
        except (OSError, ValueError) as error:
            raise UsageError(f"checkpoint {path}: cannot be read ({error}); delete it to start over") from None
        if not isinstance(data, dict) or not isinstance(data.get("line"), int):
            raise UsageError(f"checkpoint {path}: is not a backfill checkpoint; delete it or pick another --checkpoint")
        if data.get("fingerprint") != fingerprint:
            raise UsageError(
                f"checkpoint {path}: was written for a different file (size or first bytes differ from {source}); "
                "delete it to send this file from the start, or pass the right --checkpoint"
            )
        return cls(path, fingerprint, data["line"], int(data.get("published", 0)))

    def check_writable(self) -> None:
        """Find out before sending, not after the first chunk, that the checkpoint cannot be kept."""
        try:
            self.save(self.line, self.published)
        except OSError as error:
            raise UsageError(f"checkpoint {self.path}: cannot be written ({error.strerror}); "
                             "pass --checkpoint PATH somewhere writable") from None

    def save(self, line: int, published: int) -> None:
        self.line, self.published = line, published
        body = {"v": 1, "line": line, "published": published, "fingerprint": self.fingerprint,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


def file_fingerprint(path: Path) -> dict:
    with open(path, "rb") as f:
        head = f.read(FINGERPRINT_BYTES)
    return {"size": path.stat().st_size, "head_sha256": hashlib.sha256(head).hexdigest()}


# ---------------------------------------------------------------------------------------------
# Where events go


class Sink(Protocol):
    def send(self, chunk: list[Line]) -> None:
        """Hand every event over and return once it is confirmed; SendError otherwise."""


class PubSubSink:
    """Publish to the events topic with measure.gcp.publisher.Publisher (waits for every confirmation)."""

    def __init__(self, publisher, topic: str):
        self.publisher = publisher
        self.topic = topic

    def send(self, chunk: list[Line]) -> None:
        from measure.gcp.publisher import PublishError

        try:
            self.publisher.publish(self.topic, [event_message(line.event)  # type: ignore[arg-type]  # valid lines
                                                for line in chunk])
        except PublishError as error:
            raise SendError(f"lines {chunk[0].number}-{chunk[-1].number}: {error}") from error


class WebhookSink:
    """POST NDJSON batches to a running receive, which validates again and publishes."""

    def __init__(self, url: str, token: str, *, session=None, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        import requests

        self.url = url
        self._token = token
        self.session = session or requests.Session()
        self.timeout = timeout
        self.sleep = sleep

    def close(self) -> None:
        # An open keep-alive connection would hold a worker of receive until it times out.
        self.session.close()

    def send(self, chunk: list[Line]) -> None:
        batch: list[Line] = []
        body: list[bytes] = []
        size = 0
        for line in chunk:
            assert line.event is not None  # only valid lines are sent
            encoded = json.dumps(line.event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            if batch and (size + len(encoded) > WEBHOOK_MAX_BODY or len(batch) >= events.MAX_BATCH):
                self._post(batch, b"".join(body))
                batch, body, size = [], [], 0
            batch.append(line)
            body.append(encoded)
            size += len(encoded)
        if batch:
            self._post(batch, b"".join(body))

    def _post(self, batch: list[Line], body: bytes) -> None:
        import requests

        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": events.NDJSON}
        where = f"lines {batch[0].number}-{batch[-1].number}"
        problem = ""
        wait = 1.0
        for attempt in range(WEBHOOK_ATTEMPTS):
            if attempt:
                self.sleep(wait)
            wait = min(30.0, 2.0 ** (attempt + 1))
            try:
                response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as error:
                problem = f"{type(error).__name__}"
                continue
            if response.status_code == 202:
                return
            if response.status_code in (408, 429) or response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    wait = min(60.0, float(retry_after))
                continue
            raise SendError(f"{where}: the webhook answered HTTP {response.status_code}: "
                            f"{self._explain(response, batch)}")
        raise SendError(f"{where}: the webhook did not accept the batch after {WEBHOOK_ATTEMPTS} attempts "
                        f"(last: {problem})")

    @staticmethod
    def _explain(response, batch: list[Line]) -> str:
        if response.status_code == 401:
            return "the token was refused (check --token)"
        try:
            answer = response.json()
        except ValueError:
            return scrub(response.text[:300])
        problems = []
        for p in answer.get("problems", [])[:10]:
            index = p.get("index")
            where = f"line {batch[index].number}: " if isinstance(index, int) and 0 <= index < len(batch) else ""
            problems.append(f"{where}{p.get('field')}: {p.get('problem')}")
        return scrub("; ".join(problems) or str(answer.get("message", answer))[:300])


# ---------------------------------------------------------------------------------------------
# Progress on stderr


class Progress:
    """`[#####-----] 45,000/100,000 45% 12,345 ev/s ETA 0:05` on a terminal, redrawn in place;
    one plain line every few seconds otherwise (a log file gets no carriage returns)."""

    def __init__(self, out: IO[str], label: str, total: int | None, enabled: bool = True):
        self.out = out
        self.label = label
        self.total = total
        self.enabled = enabled
        self.tty = enabled and hasattr(out, "isatty") and out.isatty()
        self.started = time.monotonic()
        self.last = self.started  # nothing drawn for runs shorter than one interval
        self.done = 0
        self.interval = 0.2 if self.tty else 10.0

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.interval):
            return
        self.last = now
        text = self.render(now)
        self.out.write(f"\r{text}\033[K" if self.tty else text + "\n")
        self.out.flush()

    def render(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        rate = self.done / elapsed
        if not self.total:
            return f"{self.label} {self.done:,} ({rate:,.0f}/s)"
        fraction = min(1.0, self.done / self.total)
        bar = "#" * int(fraction * 20)
        eta = (self.total - self.done) / rate if rate > 0 else 0
        return (f"{self.label} [{bar:-<20}] {self.done:,}/{self.total:,} {fraction:4.0%} "
                f"{rate:,.0f} ev/s ETA {int(eta // 60)}:{int(eta % 60):02d}")

    def clear(self) -> None:
        """Make room for a message line without leaving a half-drawn bar."""
        if self.tty:
            self.out.write("\r\033[K")

    def finish(self) -> None:
        if self.enabled:
            self.update(self.done, force=True)
            if self.tty:
                self.out.write("\n")


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Summary:
    source: str
    lines: int = 0
    valid: int = 0
    invalid: int = 0
    skipped: int = 0  # valid lines at or before the checkpoint: sent by an earlier run
    published: int = 0
    validate_s: float = 0.0
    publish_s: float = 0.0
    status: int = OK
    message: str = ""
    dry_run: bool = False
    checkpoint: Path | None = None
    checkpoint_line: int = 0
    invalid_lines: list[int] = field(default_factory=list)  # the first few, for callers and tests

    @property
    def elapsed(self) -> float:
        return self.validate_s + self.publish_s

    @property
    def rate(self) -> float:
        """Events per second over the whole run, validation included."""
        return self.published / self.elapsed if self.elapsed > 0 else 0.0

    def render(self) -> str:
        verb = "would publish" if self.dry_run else "published"
        count = self.valid - self.skipped if self.dry_run else self.published
        if self.dry_run:
            speed = ("lines/s", f"{self.lines / max(self.elapsed, 1e-9):,.0f}")
        else:
            publishing = self.published / self.publish_s if self.publish_s > 0 else 0.0
            speed = ("events/s", f"{self.rate:,.0f} (publishing alone {publishing:,.0f})")
        rows = [
            ("lines read", f"{self.lines:,}"),
            ("valid", f"{self.valid:,}"),
            ("invalid", f"{self.invalid:,}" + (" (not sent)" if self.invalid else "")),
            ("skipped", f"{self.skipped:,}"
             + (f" (sent by an earlier run, up to line {self.checkpoint_line} in {self.checkpoint})"
                if self.skipped else "")),
            (verb, f"{count:,}"),
            ("elapsed", f"{self.elapsed:.1f} s (validating {self.validate_s:.1f} s, "
                        f"publishing {self.publish_s:.1f} s)"),
            speed,
        ]
        lines = [f"backfill {self.source}"] + [f"  {name:<14}{value}" for name, value in rows]
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)


KEEP_INVALID_LINES = 100


def backfill(
    path: Path,
    fmt: str,
    *,
    site_ids: Mapping[str, str],
    max_age: int = events.DEFAULT_MAX_AGE,
    sink: Sink | None = None,
    checkpoint: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    in_flight: int = DEFAULT_IN_FLIGHT,
    rate: float | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    max_chunks: int | None = None,
    progress: bool = True,
    err: IO[str] | None = None,
    source_name: str | None = None,
    now: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Validate the whole file, then (unless dry_run or it has errors) send its events via `sink`.

    `max_chunks` stops after that many chunks as if interrupted (tests, and trying a few first).
    Raises UsageError for setup problems; everything else is in the returned Summary.
    """
    err = err if err is not None else sys.stderr
    name = source_name or str(path)
    now = time.time() if now is None else now
    if chunk_size < 1 or in_flight < 1 or (rate is not None and rate <= 0):
        raise UsageError("--chunk-size, --in-flight and --rate must be positive")
    if sink is None and not dry_run:
        raise UsageError("nothing to send to: give a sink, or dry_run")
    point = Checkpoint.open(checkpoint, path) if checkpoint else None
    summary = Summary(name, dry_run=dry_run, checkpoint=checkpoint, checkpoint_line=point.line if point else 0)
    # The validated events still to send, one line each, on disk: the publish pass reads them
    # back instead of validating the file a second time (validation is the slower half).
    spool = None if dry_run else tempfile.TemporaryFile(prefix="measure-backfill-", suffix=".events")
    try:
        try:
            last_line = _validate(path, fmt, summary, spool, site_ids=site_ids, max_age=max_age, now=now,
                                  resume=point.line if point else 0, progress=progress, err=err)
        except KeyboardInterrupt:
            summary.status = INTERRUPTED
            summary.message = f"interrupted while validating, at line {summary.lines:,}; nothing was sent."
            return summary
        if summary.invalid and not skip_invalid:
            summary.status = INVALID
            summary.message = (f"{summary.invalid:,} invalid line(s); nothing was sent. Fix them, or pass "
                               "--skip-invalid to send only the valid lines.")
        elif dry_run:
            summary.message = "dry run: nothing was sent."
        elif point and point.line >= last_line:
            summary.message = (f"nothing to do: {checkpoint} says every line was sent already; "
                               "delete it to send the file again.")
        else:
            if point:
                point.check_writable()
            assert spool is not None and sink is not None  # not a dry run
            spool.seek(0)
            began = time.monotonic()
            try:
                _send(spool, summary, sink=sink, point=point, last_line=last_line, chunk_size=chunk_size,
                      in_flight=in_flight, rate=rate, max_chunks=max_chunks, progress=progress, err=err,
                      sleep=sleep)
            finally:
                summary.publish_s = time.monotonic() - began
    finally:
        if spool is not None:
            spool.close()
    return summary


def _validate(path: Path, fmt: str, summary: Summary, spool: IO[bytes] | None, *, site_ids, max_age, now,
              resume: int, progress: bool, err: IO[str]) -> int:
    """Pass 1: count and report every line; spool the valid events after the checkpoint.
    Returns the number of the file's last line."""
    began = time.monotonic()
    meter = Progress(err, "validating", None, progress)
    last_line = 0
    for line in read_lines(path, fmt, site_ids=site_ids, max_age=max_age, now=now, name=summary.source):
        summary.lines += 1
        last_line = line.number
        if line.event is None:
            summary.invalid += 1
            if len(summary.invalid_lines) < KEEP_INVALID_LINES:
                summary.invalid_lines.append(line.number)
            meter.clear()
            err.write(describe(summary.source, line) + "\n")
        else:
            summary.valid += 1
            if line.number <= resume:
                summary.skipped += 1
            elif spool is not None:
                spool.write(b"%d\t%s\n" % (line.number, json.dumps(line.event.to_dict(), ensure_ascii=False,
                                                                       separators=(",", ":")).encode()))
        meter.update(summary.lines)
    meter.clear()
    summary.validate_s = time.monotonic() - began
    return last_line


def _spooled(spool: IO[bytes]) -> Iterator[Line]:
    for record in spool:
        number, _, fields = record.partition(b"\t")
        yield Line(int(number), events.Event.from_dict(json.loads(fields)))


def _send(spool: IO[bytes], summary: Summary, *, sink: Sink, point: Checkpoint | None, last_line: int,
          chunk_size: int, in_flight: int, rate: float | None, max_chunks: int | None, progress: bool,
          err: IO[str], sleep) -> None:
    """Pass 2: chunks of valid events, up to `in_flight` of them awaiting confirmation at once.

    The checkpoint only moves over chunks that are confirmed and have no unconfirmed chunk before
    them, so it never passes an event that might not have been sent.
    """
    total = summary.valid - summary.skipped
    meter = Progress(err, "publishing", total, progress)
    began = time.monotonic()
    pending: deque[tuple[int, int, concurrent.futures.Future]] = deque()  # (last line, events, future)
    failure: BaseException | None = None
    chunks = 0
    published_before = point.published if point else 0

    def settle(block: bool) -> None:
        nonlocal failure
        while pending and (block or pending[0][2].done() or len(pending) >= in_flight):
            end, count, future = pending.popleft()
            try:
                future.result()
            except Exception as error:  # reported once the rest has settled
                failure = failure or error
                continue
            if failure is None:
                summary.published += count
                if point:
                    point.save(end, published_before + summary.published)
                meter.update(summary.published)

    pool = concurrent.futures.ThreadPoolExecutor(in_flight, thread_name_prefix="backfill")
    try:
        lines = _spooled(spool)
        while failure is None and (max_chunks is None or chunks < max_chunks):
            chunk = list(itertools.islice(lines, chunk_size))
            if not chunk:
                break
            if rate:
                # Pace by what has been started: this chunk may begin once the events before it
                # fit the rate.
                due = began + (summary.published + sum(count for _, count, _ in pending)) / rate
                if (delay := due - time.monotonic()) > 0:
                    sleep(delay)
            pending.append((chunk[-1].number, len(chunk), pool.submit(sink.send, chunk)))
            chunks += 1
            settle(block=False)
        settle(block=True)
    except KeyboardInterrupt:
        # Let the chunks already handed to Pub/Sub finish, so the checkpoint can count them.
        for _, _, future in pending:
            future.cancel()
        interrupted = True
        settle(block=True)
    else:
        interrupted = False
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    meter.finish()
    where = f" {point.path} is at line {point.line}; run the same command again to resume." if point else ""
    if interrupted:
        summary.status = INTERRUPTED
        summary.message = f"interrupted.{where}"
    elif failure is not None:
        summary.status = SEND_FAILED
        summary.message = f"sending failed: {scrub(str(failure))}.{where}"
    elif summary.published < total:
        summary.status = SEND_FAILED
        summary.message = f"stopped after {chunks} chunk(s) (max_chunks).{where}"
    elif point and point.line < last_line:
        point.save(last_line, point.published)  # only invalid lines after the last event: all done


# ---------------------------------------------------------------------------------------------
# The command line


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m measure backfill",
        description="Validate a file of past events, then send them through measure in chunks, resumably.",
        epilog="Exit status: 0 done, 1 invalid lines (nothing sent), 2 usage, 3 sending failed part-way "
               "(run again to resume), 130 interrupted.",
    )
    parser.add_argument("file", help="CSV (header row of field names) or NDJSON file; '-' for stdin")
    parser.add_argument("--format", choices=("csv", "ndjson"), help="default: from the extension")
    parser.add_argument("--skip-invalid", action="store_true", help="send the valid lines even if some are invalid")
    parser.add_argument("--dry-run", action="store_true", help="validate and count only; send nothing")
    parser.add_argument("--checkpoint", type=Path,
                        help="progress file (default FILE.checkpoint; none for stdin unless given)")
    parser.add_argument("--rate", type=float,
                        help="at most N events per second (default MEASURE_API_MAX_RPS, the deployment's ceiling "
                             "on the Measurement API; unset: as fast as Pub/Sub confirms)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="events per publish (%(default)s)")
    parser.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT,
                        help="chunks awaiting confirmation at once (%(default)s)")
    parser.add_argument("--project", help="Google Cloud project (default GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--topic", help="events topic (default MEASURE_EVENTS_TOPIC or measure-events)")
    parser.add_argument("--site-ids", help="JSON like MEASURE_SITE_IDS (default: MEASURE_SITE_IDS)")
    parser.add_argument("--max-age", type=duration_arg,
                        help="oldest accepted event, e.g. 90d (default MEASURE_EVENT_MAX_AGE or 30d)")
    parser.add_argument("--webhook", metavar="URL", help="POST batches to a running receive instead of Pub/Sub")
    parser.add_argument("--token", help="Bearer token for --webhook (default MEASURE_WEBHOOK_TOKEN)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


@dataclass
class Settings:
    site_ids: Mapping[str, str]
    max_age: int
    project: str | None
    topic: str
    api_max_rps: float = 0.0  # MEASURE_API_MAX_RPS: the default --rate


def settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Site ids, max age, project and topic as receive has them (measure.config), or from the flags.

    The settings backfill does not use (advertiser id, endpoint) are filled with placeholders so
    that config.load() checks the ones it does use with receive's own rules.
    """
    given = {**env, "MEASURE_ADVERTISER_ID": "0", "MEASURE_ENDPOINT": ""}
    if args.site_ids is not None:
        given["MEASURE_SITE_IDS"] = args.site_ids
    try:
        config = load(given)
    except ConfigError as error:
        if error.name == "MEASURE_SITE_IDS":
            flag = "--site-ids" if args.site_ids is not None else "MEASURE_SITE_IDS (or pass --site-ids)"
            raise UsageError(f"{flag}: {error.problem}") from None
        raise UsageError(str(error)) from None
    return Settings(
        site_ids=config.site_ids,
        max_age=args.max_age if args.max_age is not None else config.event_max_age,
        project=args.project or config.project,
        topic=args.topic or config.events_topic,
        api_max_rps=config.api_max_rps,
    )


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None,
         stdin: IO[bytes] | None = None, out: IO[str] | None = None, err: IO[str] | None = None,
         sink: Sink | None = None, max_chunks: int | None = None) -> int:
    """`python -m measure backfill`; returns the exit status. `sink` and `max_chunks` are for tests."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except ArgumentError as error:
        err.write(f"{error}\n")
        return USAGE
    spool: Path | None = None
    publisher = None
    try:
        fmt = detect_format(args.file, args.format)
        config = settings(args, env)
        if args.file == "-":
            # Two passes need the data twice: spool stdin to disk, not to memory.
            spool = _spool(stdin or sys.stdin.buffer)
            path, name = spool, "<stdin>"
        else:
            path, name = Path(args.file), args.file
            if not path.is_file():
                raise UsageError(f"{args.file}: no such file")
        checkpoint = args.checkpoint or (None if args.file == "-" else Path(f"{args.file}.checkpoint"))
        # Publishing faster than the deployment may call the API only queues events up for send,
        # which then defers what its share of the ceiling has no room for: pace at the ceiling instead.
        rate = args.rate if args.rate is not None else (config.api_max_rps or None)
        if sink is None and not args.dry_run:
            if args.webhook:
                try:
                    url = check_endpoint(args.webhook, "--webhook")
                except ConfigError as error:
                    raise UsageError(str(error)) from None
                token = args.token or env.get("MEASURE_WEBHOOK_TOKEN", "")
                if not token:
                    raise UsageError("--webhook needs --token (or MEASURE_WEBHOOK_TOKEN)")
                sink = WebhookSink(url, token)
            else:
                if not config.project:
                    raise UsageError("no project: set GOOGLE_CLOUD_PROJECT or pass --project")
                from measure.gcp.publisher import Publisher

                publisher = Publisher(config.project)
                sink = PubSubSink(publisher, config.topic)
        summary = backfill(path, fmt, site_ids=config.site_ids, max_age=config.max_age, sink=sink,
                           checkpoint=checkpoint, chunk_size=args.chunk_size, in_flight=args.in_flight,
                           rate=rate, dry_run=args.dry_run, skip_invalid=args.skip_invalid,
                           max_chunks=max_chunks, progress=not args.no_progress, err=err, source_name=name)
    except UsageError as error:
        err.write(f"backfill: {error}\n")
        return USAGE
    except KeyboardInterrupt:  # a second Ctrl-C while the first was being handled
        err.write("\nbackfill: interrupted; run the same command again to resume from the checkpoint\n")
        return INTERRUPTED
    finally:
        if isinstance(sink, WebhookSink):
            sink.close()
        if spool is not None:
            spool.unlink(missing_ok=True)
    out.write(summary.render() + "\n")
    return summary.status


def _spool(stream: IO[bytes]) -> Path:
    handle, name = tempfile.mkstemp(prefix="measure-backfill-", suffix=".stdin")
    with os.fdopen(handle, "wb") as f:
        shutil.copyfileobj(stream if not isinstance(stream, io.TextIOBase) else stream.buffer, f)
    return Path(name)
