"""Where is my event: `python -m measure status EVENT_ID` (or `--user USER_ID`), its timeline from the logs.

    python -m measure status EVENT_ID [EVENT_ID...] [--since 7d] [--json]
    python -m measure status --user USER_ID --since 2h
    sources:  --project P (or GOOGLE_CLOUD_PROJECT): Cloud Logging
              --logs DIR (default ./.run/logs when it exists and no project is named): the log files of `make run`

The timeline is read from the structured lines the functions write anyway (measure/logs.py):

    receive  "accepted"       every event id of the request (and a pseudonymous key of each user),
                              `received` (when the request arrived), `instance`; its own time is
                              when Pub/Sub confirmed the publish
    send,    "delivery"       one per attempt: attempt, outcome, HTTP status (`http_status`, or
    sweep                     `status` on older lines), TUNE's log_id and site_event_type
             "retry due"      after a transient failure: when the next attempt is due
             "deferred: ..."  not attempted (circuit open, rate ceiling, no slot): when it is due
             "dead-lettered"  kind and reason
             "type mismatch"  TUNE resolved another type than the action sent

Fields a line lacks are shown as "-": a line from an older version still reads.

On Google Cloud the entries come from Cloud Logging's REST API (`entries:list`) over google-auth's
AuthorizedHttp with the user's own credentials (gcloud auth application-default login), the
same transport the tools use for Pub/Sub. Not google-cloud-logging: it would be a second client stack
(gRPC, proto-plus, its own retry settings) for one paginated POST, and a dependency of a tool only.
MEASURE_LOGGING_ENDPOINT (or --logging-endpoint) points it elsewhere: a loopback endpoint gets no
credentials (a local stand-in, as the tests use).

Successful deliveries and accepted events are INFO lines. A deployment that excludes them from
ingestion (terraform's `ingest_routine_logs = false`) keeps only the problems: failed attempts,
retries, dead letters. `status` then says that the event's success is not stored, not that it is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import google.auth.exceptions

from measure.ops.deadletters import ArgumentError, Parser, parse_duration

LOGGING_URL = "https://logging.googleapis.com"
LIST_PATH = "/v2/entries:list"
PAGE_SIZE = 1000  # entries:list's largest page
MAX_PAGES = 50  # 50,000 entries: far more than any event's lines; stops a runaway filter
IDS_PER_QUERY = 40  # event ids in one filter, well inside Cloud Logging's 20,000-character filters
MAX_EVENTS = 200  # events one --user query follows
DEFAULT_SINCE = "7d"  # as long as measure-events keeps a message and a retry may run
DEV_LOGS = Path(".run") / "logs"
CALL_TIMEOUT = 60.0
OK, NOT_FOUND, USAGE, FAILED = 0, 1, 2, 3

# The lines of interest, by their `message` (measure.functions.receive, measure.pipeline.delivery).
MESSAGES = ("accepted", "delivery", "retry due", "dead-lettered", "type mismatch")
DEFERRED = "deferred: "


class StatusError(RuntimeError):
    """The logs cannot be read (no access, no such directory)."""


# ---------------------------------------------------------------------------------------------
# One log line, wherever it came from


@dataclass(frozen=True)
class Line:
    at: float  # Unix seconds
    payload: Mapping[str, Any]  # the JSON line (Cloud Logging's jsonPayload)
    component: str  # receive, send, sweep
    instance: str = ""

    @property
    def message(self) -> str:
        return str(self.payload.get("message") or "")

    def event_ids(self) -> list[str]:
        ids = self.payload.get("event_ids")
        found = [str(i) for i in ids] if isinstance(ids, list) else []
        single = self.payload.get("event_id")
        if single and str(single) not in found:
            found.insert(0, str(single))
        return found

    def events_of_user(self, key: str) -> list[str]:
        """The event ids this accepted line carries for the user with `key` (same order as user_keys)."""
        keys = self.payload.get("user_keys")
        if not isinstance(keys, list):
            return []
        return [event_id for event_id, k in zip(self.event_ids(), keys, strict=False) if k == key]


def _wanted(payload: Mapping[str, Any]) -> bool:
    message = str(payload.get("message") or "")
    return message in MESSAGES or message.startswith(DEFERRED)


# ---------------------------------------------------------------------------------------------
# Sources


class CloudLogging:
    """Cloud Logging's entries:list for one project, page by page."""

    def __init__(self, project: str, api, *, page_size: int = PAGE_SIZE):
        self.project = project
        self.api = api  # measure.gcp.googleapi.Api on the Logging endpoint
        self.page_size = page_size

    @classmethod
    def connect(cls, project: str, endpoint: str | None = None) -> CloudLogging:
        from measure.config import check_endpoint, is_loopback_host
        from measure.gcp import credentials, googleapi

        url = check_endpoint(endpoint or LOGGING_URL, "MEASURE_LOGGING_ENDPOINT")
        # A local stand-in gets no credentials (no token to fetch or send); Google Cloud the user's ADC
        # (gcloud auth application-default login).
        creds = None if is_loopback_host(urlsplit(url).hostname) else credentials.default_credentials()
        return cls(project, googleapi.Api(url, credentials.http(creds, 2)))

    def filter_for(self, since: float, *, event_ids: Iterable[str] = (), user_key: str | None = None) -> str:
        """The Logging query language filter for these events' lines (or the user's accepted lines)."""
        clauses = [f'timestamp>="{_rfc3339(since)}"', 'resource.type="cloud_run_revision"']
        if user_key is not None:
            clauses += ['jsonPayload.message="accepted"', f'jsonPayload.user_keys:"{_quoted(user_key)}"']
        else:
            ids = " OR ".join(f'"{_quoted(i)}"' for i in event_ids)
            clauses.append(f"(jsonPayload.event_id=({ids}) OR jsonPayload.event_ids:({ids}))")
        return " AND ".join(clauses)

    def lines(self, filter_: str) -> Iterator[Line]:
        body: dict[str, Any] = {"resourceNames": [f"projects/{self.project}"], "filter": filter_,
                                "orderBy": "timestamp asc", "pageSize": self.page_size}
        from measure.gcp.googleapi import ApiError

        for _ in range(MAX_PAGES):
            try:
                answer = self.api.call("POST", LIST_PATH, body, timeout=CALL_TIMEOUT, what="list log entries")
            except ApiError as error:
                raise StatusError(f"Cloud Logging: {error}") from None
            for entry in answer.get("entries") or ():
                line = _from_entry(entry)
                if line is not None:
                    yield line
            token = answer.get("nextPageToken")
            if not token:
                return
            body = {**body, "pageToken": token}

    def find(self, event_ids: list[str], since: float) -> list[Line]:
        found: list[Line] = []
        for start in range(0, len(event_ids), IDS_PER_QUERY):
            found += self.lines(self.filter_for(since, event_ids=event_ids[start:start + IDS_PER_QUERY]))
        return found

    def user_lines(self, key: str, since: float) -> list[Line]:
        return list(self.lines(self.filter_for(since, user_key=key)))


def _from_entry(entry: Mapping[str, Any]) -> Line | None:
    payload = entry.get("jsonPayload")
    if not isinstance(payload, dict):
        return None
    resource = (entry.get("resource") or {}).get("labels") or {}
    labels = entry.get("labels") or {}
    instance = str(labels.get("instanceId") or payload.get("instance") or "")
    at = _parse_time(entry.get("timestamp")) or _number(payload.get("time")) or 0.0
    component = str(payload.get("component") or resource.get("service_name") or "?")
    return Line(at, payload, component, instance)


class DevLogs:
    """The dev stack's log files (measure/dev/devstack.py writes each server's to .run/logs/NAME.log)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _all(self) -> Iterator[Line]:
        if not self.directory.is_dir():
            raise StatusError(f"no log directory {self.directory}: is `make run` running (or pass --logs DIR)?")
        for path in sorted(self.directory.glob("*.log")):
            with open(path, encoding="utf-8", errors="replace") as lines:
                for text in lines:
                    if not text.startswith("{"):
                        continue  # the servers' own start-up lines, tracebacks
                    try:
                        payload = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(payload, dict) and _wanted(payload):
                        yield Line(_number(payload.get("time")) or 0.0, payload,
                                   str(payload.get("component") or path.stem), str(payload.get("instance") or ""))

    def find(self, event_ids: list[str], since: float) -> list[Line]:
        wanted = set(event_ids)
        return [line for line in self._all() if line.at >= since and wanted & set(line.event_ids())]

    def user_lines(self, key: str, since: float) -> list[Line]:
        return [line for line in self._all()
                if line.at >= since and line.message == "accepted" and line.events_of_user(key)]


# ---------------------------------------------------------------------------------------------
# The timeline


@dataclass
class Step:
    at: float
    what: str  # received, published, attempt, retry due, deferred, dead letter, type mismatch
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timeline:
    event_id: str
    steps: list[Step] = field(default_factory=list)
    state: str = "not found"
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "state": self.state, "summary": self.summary,
                "steps": [{"at": _iso(s.at), "what": s.what, **s.fields} for s in self.steps]}

    def render(self) -> str:
        """The steps one a line; a long run of alike failed attempts (an outage) shows its first
        and last attempt and a count between them (--json has every step)."""
        out = [f"event {self.event_id}"]
        for run in _runs(self.steps):
            shown = run if len(run) < COLLAPSE_AT else [run[0], None, run[-1]]
            for steps in shown:
                if steps is None:
                    first, last = run[1][0], run[-2][0]
                    out.append(f"  {'':12}  {'...':<13} {len(run) - 2} more alike: attempts "
                               f"{_dash(first.fields.get('attempt'))} to {_dash(last.fields.get('attempt'))}, "
                               f"{_clock(first.at)} to {_clock(last.at)}")
                    continue
                out += [f"  {_clock(step.at)}  {step.what:<13} {step.text}" for step in steps]
        out.append(f"  => {self.state}{': ' + self.summary if self.summary else ''}")
        return "\n".join(out)


COLLAPSE_AT = 5  # alike failed attempts in a row before the middle ones are counted, not shown


def _runs(steps: list[Step]) -> list[list[list[Step]]]:
    """The steps in rounds (an attempt and the retry or deferral after it; any other step alone),
    consecutive failed rounds of the same component, outcome, status and reason run together."""
    rounds: list[list[Step]] = []
    for step in steps:
        if rounds and step.what in ("retry due", "deferred") and rounds[-1][0].what == "attempt":
            rounds[-1].append(step)
        else:
            rounds.append([step])

    def key(round_: list[Step]) -> tuple | None:
        f = round_[0].fields
        if round_[0].what != "attempt" or f.get("outcome") in ("delivered", "duplicate"):
            return None
        return f.get("component"), f.get("outcome"), f.get("http_status"), f.get("reason")

    runs: list[list[list[Step]]] = []
    for round_ in rounds:
        if runs and key(round_) is not None and key(runs[-1][-1]) == key(round_):
            runs[-1].append(round_)
        else:
            runs.append([round_])
    return runs


def timeline(event_id: str, lines: Iterable[Line], *, routine_stored: bool = True) -> Timeline:
    """The event's steps from its lines, oldest first, and what became of it."""
    result = Timeline(event_id)
    ordered = sorted((line for line in lines if event_id in line.event_ids()), key=lambda line: line.at)
    for line in ordered:
        p = line.payload
        message = line.message
        if message == "accepted":
            received = _number(p.get("received"))
            count = _number(p.get("events")) or len(line.event_ids()) or 1
            by = f" by {line.component} {_short(line.instance)}" if line.instance else f" by {line.component}"
            result.steps.append(Step(received or line.at, "received", f"{by.strip()} (a request of {count:g} event(s))",
                                     {"instance": line.instance or None}))
            result.steps.append(Step(line.at, "published", "Pub/Sub confirmed; the webhook answered 202"))
            if result.state == "not found":
                result.state = "accepted"
        elif message == "delivery":
            fields = {
                "component": line.component,
                "attempt": p.get("attempt"),
                "outcome": p.get("outcome"),
                "http_status": p.get("http_status", p.get("status")),
                "log_id": p.get("log_id"),
                "site_event_type": p.get("site_event_type"),
                "reason": p.get("reason"),
            }
            text = (f"{_dash(fields['attempt'])} by {line.component}: {_dash(fields['outcome'])}, "
                    f"HTTP {_dash(fields['http_status'])}, log_id {_dash(fields['log_id'])}, "
                    f"site_event_type {_dash(fields['site_event_type'])}")
            if fields["outcome"] not in ("delivered", "duplicate") and fields["reason"]:
                text += f" ({fields['reason']})"
            result.steps.append(Step(line.at, "attempt", text, fields))
            outcome = fields["outcome"]
            if outcome in ("delivered", "duplicate"):
                result.state = "delivered"
                result.summary = (f"attempt {_dash(fields['attempt'])}, log_id {_dash(fields['log_id'])}"
                                  + (" (TUNE had it already)" if outcome == "duplicate" else ""))
            elif outcome == "transient":
                result.state = "retrying"
                result.summary = f"attempt {_dash(fields['attempt'])} failed: {_dash(fields['reason'])}"
        elif message == "retry due" or message.startswith(DEFERRED):
            due = _number(p.get("retry_due"))
            label = "retry due" if message == "retry due" else "deferred"
            why = "" if message == "retry due" else f" ({message.removeprefix(DEFERRED)}, not attempted)"
            result.steps.append(Step(line.at, label, f"next attempt at {_clock(due) if due else '-'}{why}",
                                     {"retry_due": _iso(due) if due else None}))
            if result.state != "delivered":
                result.state = "retrying"
                result.summary = f"next attempt due {_clock(due)}" if due else result.summary
        elif message == "dead-lettered":
            kind, reason = p.get("kind") or "-", p.get("reason") or "-"
            result.steps.append(Step(line.at, "dead letter", f"{kind}: {reason}", {"kind": kind, "reason": reason}))
            result.state = "dead letter"
            result.summary = (f"{kind}: {reason} (python -m measure dead-letters show {event_id}; "
                              "replay it once fixed)")
        elif message == "type mismatch":
            result.steps.append(Step(line.at, "type mismatch",
                                     f"sent action {_dash(p.get('action'))}, TUNE resolved "
                                     f"{_dash(p.get('site_event_type'))}"))
    if result.state == "not found":
        result.summary = ("no line names this event in the window"
                          + ("" if routine_stored else
                             "; if this deployment excludes routine lines (terraform's ingest_routine_logs = false) "
                             "a delivered event leaves none: only failures, retries and dead letters are stored"))
    elif result.state == "accepted":
        result.summary = "no attempt logged yet" + (
            "" if routine_stored else " (or it was delivered and the deployment does not store successful "
            "deliveries: ingest_routine_logs = false)")
    return result


# ---------------------------------------------------------------------------------------------
# Times


def parse_when(text: str, now: float) -> float:
    """Unix seconds from "2h" (that long ago), an ISO 8601 time (UTC unless it says), or Unix seconds."""
    text = text.strip()
    try:
        return now - parse_duration(text) if not text.replace(".", "", 1).isdigit() else float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (90s, 30m, 2h, 3d) nor a time "
                         "(2026-12-02T14:00:00Z, or Unix seconds)") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _rfc3339(seconds: float) -> str:
    whole, ms = divmod(round(seconds * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def _iso(seconds: float) -> str:
    return _rfc3339(seconds)


def _clock(seconds: float) -> str:
    return _rfc3339(seconds)[11:23]


def _parse_time(value: object) -> float | None:
    """RFC 3339 with up to nanoseconds, as Cloud Logging writes timestamps."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 fraction digits
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _short(instance: str) -> str:
    return instance if len(instance) <= 24 else instance[:20] + "…"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# ---------------------------------------------------------------------------------------------
# The command line


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m measure status",
                    description="Show what became of an event: received, published, each attempt (outcome, HTTP "
                                "status, TUNE's log_id and site_event_type), retries, dead letter.",
                    epilog="Exit status: 0 found, 1 not found, 2 usage, 3 the logs could not be read.")
    parser.add_argument("event_id", nargs="*", metavar="EVENT_ID",
                        help="the event id (receive answered it in event_ids)")
    parser.add_argument("--user", metavar="USER_ID", help="every event of this user in the window")
    parser.add_argument("--since", default=DEFAULT_SINCE, metavar="WHEN",
                        help=f"look back this far: 2h, 3d, or a time (default {DEFAULT_SINCE})")
    parser.add_argument("--project", help="read Cloud Logging of this project (default GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help=f"read a dev stack's log files (default {DEV_LOGS} when it exists)")
    parser.add_argument("--logging-endpoint", help="Cloud Logging's URL (default MEASURE_LOGGING_ENDPOINT or "
                                                   f"{LOGGING_URL})")
    parser.add_argument("--json", action="store_true", help="one JSON array of timelines")
    return parser


def source_for(args: argparse.Namespace, env: Mapping[str, str]):
    """The dev stack's files or Cloud Logging, as the flags and the environment say."""
    if args.logs is not None:
        return DevLogs(args.logs)
    # A project named (flag or GOOGLE_CLOUD_PROJECT) wins over a ./.run/logs an earlier `make run` left:
    # asked about production, the tool must not answer from a laptop's old files.
    project = args.project or env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not project:
        if DEV_LOGS.is_dir():
            return DevLogs(DEV_LOGS)
        raise ArgumentError("status: no source: pass --project (or set GOOGLE_CLOUD_PROJECT) for Cloud Logging, "
                            "or --logs DIR for a dev stack's logs")
    endpoint = args.logging_endpoint or env.get("MEASURE_LOGGING_ENDPOINT", "").strip() or None
    return CloudLogging.connect(project, endpoint)


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None, source=None, now: float | None = None) -> int:
    """`python -m measure status`; returns the exit status. The source may be injected (tests)."""
    from measure.config import ConfigError
    from measure.functions.receive import user_key

    env = os.environ if env is None else env
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    try:
        args = build_parser().parse_args(argv)
        if bool(args.event_id) == bool(args.user):
            raise ArgumentError("status: give an EVENT_ID (or several), or --user USER_ID, not both")
        try:
            since = parse_when(args.since, now)
        except ValueError as error:
            raise ArgumentError(f"status: --since: {error}") from None
        source = source or source_for(args, env)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except (ArgumentError, ConfigError) as error:
        err.write(f"{error}\n")
        return USAGE
    except google.auth.exceptions.DefaultCredentialsError as error:
        err.write(f"status: no Google credentials ({error}); run `gcloud auth application-default login`\n")
        return FAILED
    try:
        if args.user:
            key = user_key(args.user)
            event_ids = list(dict.fromkeys(i for line in source.user_lines(key, since)
                                           for i in line.events_of_user(key)))[:MAX_EVENTS]
            if not event_ids:
                err.write(f"status: no accepted event of user {args.user!r} since {_iso(since)}\n")
                return NOT_FOUND
        else:
            event_ids = list(dict.fromkeys(args.event_id))
        lines = source.find(event_ids, since)
    except StatusError as error:
        err.write(f"status: {error}\n")
        return FAILED
    # A deployment may exclude INFO lines from ingestion; the dev stack's files hold everything.
    routine_stored = not isinstance(source, CloudLogging)
    timelines = [timeline(i, lines, routine_stored=routine_stored) for i in event_ids]
    if args.json:
        out.write(json.dumps([t.as_dict() for t in timelines], indent=2) + "\n")
    else:
        out.write("\n\n".join(t.render() for t in timelines) + "\n")
    return OK if any(t.state != "not found" for t in timelines) else NOT_FOUND
