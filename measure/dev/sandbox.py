"""A local stand-in for the TUNE Measurement API: `python -m measure sandbox`.

The real API is not reachable from development machines or CI, so the sandbox answers
`/serve` the way the seed documents it: it verifies the mat-* signature headers with the same
code that signs them, checks the required parameters, remembers accepted `transaction_id`s for a
duplicate window, and answers with the seed's success, duplicate and unsuccessful JSON shapes.
Rejections are HTTP 400 with `X-MAT-Responder: sandbox`, which docs/design.md's outcome rules treat as
permanent; injected faults (5xx, 429, dropped connections, hangs, outages) carry no such header,
so the client treats them as transient.

Faults exist to exercise the client's retry paths, so they are drawn before the request is
checked, as a gateway in front of the API would fail. A faulted 5xx/429/drop is not accepted; a
"timeout" is accepted on arrival and only its answer is held back, as happens when a client gives
up on a slow but successful request: its retry must come back as a duplicate.

Everything the sandbox saw is inspectable under `/_sandbox` (JSON and a small HTML page) and
from Python (`requests()`, `stats()`, `accepted_ids()`), which is what the end-to-end, chaos and
benchmark tests assert on.
"""

from __future__ import annotations

import argparse
import errno
import html
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from measure.ops.resolution import (
    DefinitionsError,
    EventDefinition,
    Resolution,
    ResolutionError,
    load_definitions,
    resolve,
)
from measure.tune import signing

RESPONDER_HEADER = "X-MAT-Responder"
RESPONDER = "sandbox"
DUPLICATE_MESSAGE = "Duplicate request detected."
REQUIRED_PARAMS = ("action", "advertiser_id", "site_id", "sdk")
DEFAULT_PORT = 8090
DEFAULT_DUPLICATE_WINDOW = 24 * 3600.0
DEFAULT_LOG_SIZE = 100_000
# Longer than any sensible client read timeout, so a "timeout" fault is one for the client.
DEFAULT_HANG_S = 30.0
OUTAGE_MODES = ("503", "drop")
MAX_BODY = 1 << 20
MAX_HEADERS = 100
MAX_HEADER_LINE = 65536
PAGE_ROWS = 200

OUTCOME_ACCEPTED = "accepted"
OUTCOME_DUPLICATE = "duplicate"
OUTCOME_REJECTED = "rejected"
OUTCOME_FAULT = "fault"


class SandboxError(Exception):
    """The sandbox cannot do what was asked."""


class PortInUseError(SandboxError):
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        super().__init__(
            f"port {port} on {host} is already in use: stop whatever listens there "
            f"(e.g. `lsof -i :{port}`) or choose another with --port"
        )


class FaultsError(ValueError):
    """Fault settings that make no sense; the message names the setting."""


# --- faults ---------------------------------------------------------------------------------

_FAULT_KEYS = (
    "latency_ms", "status", "timeout_rate", "hang_s", "drop_rate",
    "outage_start", "outage_end", "outage_for", "outage_mode", "seed",
)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Rates are probabilities per /serve request.

    One uniform draw per request picks at most one fault: drop, then each status code, then
    timeout, so the rates must add up to at most 1. During the outage window every request
    fails (503 or dropped, per `outage_mode`), whatever the draw.
    """

    latency_ms: float = 0.0
    status: Mapping[int, float] = field(default_factory=dict)
    timeout_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    drop_rate: float = 0.0
    outage_start: float | None = None
    outage_end: float | None = None
    outage_mode: str = "503"
    seed: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, now: float | None = None) -> Faults:
        """Faults from JSON-like settings (the body of POST /_sandbox/faults), validated.

        `status` maps codes (int or str) to rates; `outage_for` (seconds from `now`) is an
        alternative to `outage_start` + `outage_end` (Unix seconds).
        """
        if not isinstance(data, Mapping):
            raise FaultsError("fault settings must be a JSON object")
        unknown = sorted(set(data) - set(_FAULT_KEYS))
        if unknown:
            raise FaultsError(f"unknown fault setting {unknown[0]!r} (known: {', '.join(_FAULT_KEYS)})")
        now = time.time() if now is None else now
        status: dict[int, float] = {}
        raw_status = data.get("status") or {}
        if not isinstance(raw_status, Mapping):
            raise FaultsError('status must map codes to rates, e.g. {"500": 0.3, "429": 0.05}')
        for code, rate in raw_status.items():
            try:
                number = int(code)
            except (TypeError, ValueError):
                number = 0
            if not 400 <= number <= 599:
                raise FaultsError(f"status code {code!r} is not a 4xx or 5xx code")
            status[number] = _rate(f"status {number}", rate)
        outage_start = _optional_number(data, "outage_start")
        outage_end = _optional_number(data, "outage_end")
        outage_for = _optional_number(data, "outage_for")
        if outage_for is not None:
            if outage_start is not None or outage_end is not None:
                raise FaultsError("give outage_for or outage_start/outage_end, not both")
            if outage_for <= 0:
                raise FaultsError("outage_for must be a positive number of seconds")
            outage_start, outage_end = now, now + outage_for
        if (outage_start is None) != (outage_end is None):
            raise FaultsError("an outage needs both outage_start and outage_end")
        if outage_start is not None and outage_end is not None and outage_end <= outage_start:
            raise FaultsError("outage_end must be after outage_start")
        outage_mode = str(data.get("outage_mode", "503"))
        if outage_mode not in OUTAGE_MODES:
            raise FaultsError(f"outage_mode must be one of {', '.join(OUTAGE_MODES)}, not {outage_mode!r}")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultsError(f"seed must be a whole number, not {seed!r}")
        faults = cls(
            latency_ms=_number(data, "latency_ms", 0.0),
            status=status,
            timeout_rate=_rate("timeout_rate", data.get("timeout_rate", 0.0)),
            hang_s=_number(data, "hang_s", DEFAULT_HANG_S),
            drop_rate=_rate("drop_rate", data.get("drop_rate", 0.0)),
            outage_start=outage_start,
            outage_end=outage_end,
            outage_mode=outage_mode,
            seed=seed,
        )
        total = faults.drop_rate + sum(status.values()) + faults.timeout_rate
        if total > 1 + 1e-9:
            raise FaultsError(f"drop_rate, status rates and timeout_rate add up to {total:g}, more than 1")
        return faults

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status": {str(code): rate for code, rate in sorted(self.status.items())},
            "timeout_rate": self.timeout_rate,
            "hang_s": self.hang_s,
            "drop_rate": self.drop_rate,
            "outage_start": self.outage_start,
            "outage_end": self.outage_end,
            "outage_mode": self.outage_mode,
            "seed": self.seed,
        }

    def in_outage(self, now: float) -> bool:
        if self.outage_start is None or self.outage_end is None:
            return False
        return self.outage_start <= now < self.outage_end

    def draw(self, rng: random.Random, now: float) -> str | None:
        """The fault for one request: "outage", "drop", a status code, "timeout" or None."""
        # Always draw, so a seeded sequence does not shift when an outage starts or ends.
        u = rng.random()
        if self.in_outage(now):
            return "outage"
        if u < self.drop_rate:
            return "drop"
        u -= self.drop_rate
        for code, rate in sorted(self.status.items()):
            if u < rate:
                return str(code)
            u -= rate
        return "timeout" if u < self.timeout_rate else None

    def describe(self) -> str:
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g} ms")
        parts += [f"{code} at {rate:g}" for code, rate in sorted(self.status.items()) if rate]
        if self.timeout_rate:
            parts.append(f"timeout at {self.timeout_rate:g} (hang {self.hang_s:g} s)")
        if self.drop_rate:
            parts.append(f"drop at {self.drop_rate:g}")
        if self.outage_start is not None and self.outage_end is not None:
            start, end = (f"{datetime.fromtimestamp(t, UTC):%H:%M:%S}" for t in (self.outage_start, self.outage_end))
            parts.append(f"outage {start}–{end} UTC ({self.outage_mode})")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return ", ".join(parts) or "none"


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FaultsError(f"{key} must be a number of at least 0, not {value!r}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultsError(f"{key} must be a number (Unix seconds), not {value!r}")
    return float(value)


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FaultsError(f"{name} must be a rate between 0 and 1, not {value!r}")
    return float(value)


# --- the sandbox ----------------------------------------------------------------------------


class _Rejected(Exception):
    """A /serve request that the API refuses: `messages` go into the answer, `verdict` is what
    the signature check said, `kind` is how stats count it."""

    def __init__(self, messages: list[str], verdict: str = "valid", kind: str | None = None):
        self.messages = messages
        self.verdict = verdict
        self.kind = kind or (verdict if verdict != "valid" else "parameters")
        super().__init__("; ".join(messages))


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """The Measurement API's state and server. Thread-safe: all state sits behind one lock.

        with Sandbox({"consumer": "private"}).start() as sandbox:
            session.post(sandbox.serve_url, data=params, auth=MeasureAuth("consumer", "private"))
            assert sandbox.stats()["accepted"] == 1
    """

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        *,
        tolerance: float = signing.DEFAULT_TOLERANCE,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
        faults: Faults | Mapping[str, Any] | None = None,
        log_size: int = DEFAULT_LOG_SIZE,
        advertiser_id: str | None = None,
        definitions: Iterable[EventDefinition] | None = None,
        clock: Callable[[], float] = time.time,
        log_requests: bool = False,
    ):
        self._lock = threading.Lock()
        self._keys = dict(keys or {})
        self.tolerance = tolerance
        self.duplicate_window = duplicate_window
        self.advertiser_id = str(advertiser_id) if advertiser_id else None
        self.log_requests = log_requests
        self._clock = clock
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._configured = None if definitions is None else list(definitions)
        self._faults = Faults()
        self._rng = random.Random()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._reset_state()
        if faults is not None:
            self.set_faults(faults)

    # -- configuration

    def add_key(self, consumer_key: str, private_key: str) -> None:
        with self._lock:
            self._keys[consumer_key] = private_key

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults | Mapping[str, Any] | None = None, /, **settings: Any) -> Faults:
        """Replace the faults: a Faults, a mapping as POST /_sandbox/faults takes, or keywords."""
        if not isinstance(faults, Faults):
            faults = Faults.from_mapping({**(faults or {}), **settings}, now=self._clock())
        elif settings:
            raise TypeError("give a Faults or keyword settings, not both")
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
        return faults

    def clear_faults(self) -> None:
        self.set_faults(Faults())

    # -- inspection

    def requests(self, transaction_id: str | None = None, since: float | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """The received-request log, oldest first; optionally only one transaction id, only
        requests received at or after `since` (Unix seconds), only the last `limit`."""
        with self._lock:
            entries = list(self._log)
        if transaction_id is not None:
            entries = [entry for entry in entries if entry["transaction_id"] == transaction_id]
        if since is not None:
            entries = [entry for entry in entries if entry["received_at"] >= since]
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return entries

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "received": self._counts["received"],
                "accepted": self._counts["accepted"],
                "duplicates": self._counts["duplicates"],
                "rejected": self._counts["rejected"],
                "faulted": dict(self._faulted),
                "rejected_reasons": dict(self._rejected_reasons),
                "distinct_accepted": len(self._accepted_ids),
                # TCP connections accepted: received minus this is how many requests rode a kept-alive one.
                "connections": self._counts["connections"],
            }

    def accepted_ids(self) -> Counter[str]:
        """How many times each transaction id was accepted as new (1 each, unless the
        duplicate window expired in between)."""
        with self._lock:
            return Counter(self._accepted_ids)

    def definitions(self) -> list[EventDefinition] | None:
        """The event definitions in use, including events created by earlier requests."""
        with self._lock:
            return None if self._definitions is None else list(self._definitions)

    def reset(self) -> None:
        """Forget requests, stats, accepted ids and created events; keep keys and faults."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._log.clear()
        self._seq = 0
        self._counts: Counter[str] = Counter()
        self._faulted: Counter[str] = Counter()
        self._rejected_reasons: Counter[str] = Counter()
        self._accepted_ids: Counter[str] = Counter()
        # transaction_id -> (accepted at, log_id), oldest first so expiry pops from the front.
        self._recent: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._definitions = None if self._configured is None else list(self._configured)

    # -- server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        """Serve in a background thread; `url` then says where."""
        if self._server is not None:
            raise SandboxError("the sandbox is already running")
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), self)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port) from error
            raise
        self._stopping.clear()
        self._server = server
        # stop() waits up to one poll interval; a short one keeps test teardown fast at a trivial cost.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="measure-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a hang
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise SandboxError("the sandbox is not running")
        host, port = self._server.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapping, not binding
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def serve_url(self) -> str:
        return f"{self.url}/serve"

    # -- /serve

    def _draw_fault(self) -> tuple[str | None, Faults, float]:
        with self._lock:
            now = self._clock()
            return self._faults.draw(self._rng, now), self._faults, now

    def _record_fault(self, kind: str, method: str, uri: str, body: bytes, status: int | None, now: float) -> None:
        params = _loose_params(method, uri, body)
        with self._lock:
            self._count(kind)
            entry = self._entry(now, method, uri, params, status, OUTCOME_FAULT, "not checked", fault=kind)
        self._print(entry)

    def _answer(self, method: str, host: str, uri: str, headers: Mapping[str, str], body: bytes,
                now: float, fault: str | None = None) -> _Answer:
        """Check one /serve request and record it: accepted, duplicate or rejected."""
        consumer_key = headers.get(signing.HEADER_CONSUMER_KEY) or ""
        try:
            form = _form_pairs(body) if method == "POST" else []
        except UnicodeDecodeError:
            params = _loose_params(method, uri, body)
            rejection = _Rejected(["invalid parameters: the body is not UTF-8"], "not checked", "parameters")
            return self._reject(now, method, uri, params, consumer_key, rejection, fault)
        query = uri.partition("?")[2]
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        params.update(form)
        try:
            self._check_signature(method, host, uri, headers, form, consumer_key, now)
            messages = self._parameter_problems(params)
            if messages:
                raise _Rejected(messages)
        except _Rejected as rejection:
            return self._reject(now, method, uri, params, consumer_key, rejection, fault)
        return self._accept(now, method, uri, params, consumer_key, fault)

    def _check_signature(self, method: str, host: str, uri: str, headers: Mapping[str, str],
                         form: list[tuple[str, str]], consumer_key: str, now: float) -> None:
        if not consumer_key:
            raise _Rejected([f"missing header: {signing.HEADER_CONSUMER_KEY}"], "missing header")
        with self._lock:
            private_key = self._keys.get(consumer_key)
        if private_key is None:
            raise _Rejected(["unknown consumer key"], "unknown consumer key")
        try:
            # The receiving side's post_params: the pairs received, sorted and encoded as the spec says.
            post_params = signing.encode_post_params(form) if method == "POST" else ""
        except ValueError as error:
            raise _Rejected([f"invalid parameters: {error}"], "not checked", "parameters") from error
        try:
            signing.verify_signature(
                private_key, method, host, uri,
                headers.get(signing.HEADER_TIMESTAMP), headers.get(signing.HEADER_SIGNATURE), post_params,
                tolerance=self.tolerance, now=now,
            )
        except signing.SignatureVerificationError as error:
            raise _Rejected([str(error)], error.reason) from error

    def _parameter_problems(self, params: Mapping[str, str]) -> list[str]:
        messages = [f"missing parameter: {name}" for name in REQUIRED_PARAMS if not params.get(name)]
        if params.get("action") == "conversion" and not (params.get("site_event_name") or params.get("site_event_id")):
            messages.append("missing parameter: site_event_name or site_event_id (required for action=conversion)")
        advertiser_id = params.get("advertiser_id")
        if self.advertiser_id and advertiser_id and advertiser_id != self.advertiser_id:
            messages.append(f"advertiser_id {advertiser_id} is not this sandbox's advertiser ({self.advertiser_id})")
        return messages

    def _reject(self, now: float, method: str, uri: str, params: Mapping[str, str], consumer_key: str,
                rejection: _Rejected, fault: str | None) -> _Answer:
        body = _response_body(False, params, rejection.messages, None)
        with self._lock:
            self._count(fault)
            self._counts["rejected"] += 1
            self._rejected_reasons[rejection.kind] += 1
            entry = self._entry(now, method, uri, params, 400, OUTCOME_REJECTED, rejection.verdict,
                                consumer_key=consumer_key, reasons=rejection.messages, fault=fault)
        self._print(entry)
        return _Answer(400, body, {RESPONDER_HEADER: RESPONDER})

    def _accept(self, now: float, method: str, uri: str, params: Mapping[str, str], consumer_key: str,
                fault: str | None) -> _Answer:
        """A verified request: a duplicate within the window, else accepted (and resolved)."""
        transaction_id = params.get("transaction_id") or None
        rejection = None
        with self._lock:
            self._expire(now)
            if transaction_id is not None and transaction_id in self._recent:
                log_id = self._recent[transaction_id][1]
                self._count(fault)
                self._counts["duplicates"] += 1
                entry = self._entry(now, method, uri, params, 200, OUTCOME_DUPLICATE, "valid",
                                    consumer_key=consumer_key, log_id=log_id, fault=fault,
                                    reasons=[DUPLICATE_MESSAGE])
                answer = _Answer(200, _response_body(False, params, [DUPLICATE_MESSAGE], log_id))
            else:
                try:
                    resolution = None if self._definitions is None else resolve(params, self._definitions)
                except ResolutionError as error:
                    rejection = _Rejected([str(error)], kind="event")
                else:
                    answer, entry = self._record_accepted(now, method, uri, params, consumer_key, fault, resolution)
        if rejection is not None:
            return self._reject(now, method, uri, params, consumer_key, rejection, fault)
        self._print(entry)
        return answer

    def _record_accepted(self, now: float, method: str, uri: str, params: Mapping[str, str], consumer_key: str,
                         fault: str | None, resolution: Resolution | None) -> tuple[_Answer, dict[str, Any]]:
        """Accept a new event (caller holds the lock)."""
        transaction_id = params.get("transaction_id") or None
        log_id = _log_id(now, params["advertiser_id"])
        self._count(fault)
        self._counts["accepted"] += 1
        notes = []
        if transaction_id is None:
            notes.append("no transaction_id: duplicates of this event cannot be detected")
        else:
            self._recent[transaction_id] = (now, log_id)
            self._accepted_ids[transaction_id] += 1
        resolved = None
        if resolution is not None:
            resolved = resolution.as_dict()
            if resolution.created and self._definitions is not None:
                self._definitions.append(resolution.event)  # the engine remembers events it defines
        entry = self._entry(now, method, uri, params, 200, OUTCOME_ACCEPTED, "valid", consumer_key=consumer_key,
                            log_id=log_id, fault=fault, resolution=resolved, reasons=notes)
        body = _response_body(True, params, [], log_id)
        if resolved is not None:
            body["resolution"] = resolved
        return _Answer(200, body), entry

    def _count(self, fault: str | None) -> None:
        self._counts["received"] += 1
        if fault:
            self._faulted[fault] += 1

    def _expire(self, now: float) -> None:
        recent = self._recent
        while recent:
            first = next(iter(recent.values()))
            if now - first[0] < self.duplicate_window:
                break
            recent.popitem(last=False)

    def _entry(self, now: float, method: str, uri: str, params: Mapping[str, str], status: int | None,
               outcome: str, verdict: str, *, consumer_key: str = "", reasons: list[str] | None = None,
               log_id: str | None = None, fault: str | None = None,
               resolution: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append one request to the log (caller holds the lock)."""
        self._seq += 1
        entry = {
            "seq": self._seq,
            "received_at": now,
            "time": _iso_time(now),
            "method": method,
            "uri": uri,
            "consumer_key": consumer_key,
            "action": params.get("action"),
            "event": params.get("site_event_name") or params.get("site_event_id"),
            "transaction_id": params.get("transaction_id"),
            "advertiser_id": params.get("advertiser_id"),
            "device_ip": params.get("device_ip"),
            "status": status,
            "outcome": outcome,
            "fault": fault,
            "signature": verdict,
            "reasons": list(reasons or []),
            "log_id": log_id,
            "resolution": resolution,
            "params": dict(params),
        }
        self._log.append(entry)
        return entry

    def _print(self, entry: Mapping[str, Any]) -> None:
        if not self.log_requests:
            return
        what = entry["action"] or "-"
        if entry["event"]:
            what = f"{what}:{entry['event']}"
        outcome = entry["outcome"] if not entry["fault"] else f"{entry['outcome']} ({entry['fault']})"
        reason = f" {entry['reasons'][0]}" if entry["reasons"] and entry["outcome"] != OUTCOME_DUPLICATE else ""
        print(f"{entry['time']} {entry['status'] or '---'} {outcome} {what} "
              f"transaction_id={entry['transaction_id'] or '-'}{reason}", file=sys.stderr, flush=True)


def _loose_params(method: str, uri: str, body: bytes) -> dict[str, str]:
    """The request's parameters, query then form body, for logging and checks (last one wins)."""
    params = dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
    if method == "POST" and body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _iso_time(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    """A form body's pairs, blank values kept, as the receiving side reads them to verify."""
    return parse_qsl(body.decode("utf-8"), keep_blank_values=True) if body else []


def _log_id(now: float, advertiser_id: str) -> str:
    """Like the seed's "b2f3ce90d42e12e895-20140709-877": random hex, UTC date, advertiser."""
    return f"{secrets.token_hex(9)}-{time.strftime('%Y%m%d', time.gmtime(now))}-{advertiser_id}"


def _response_body(success: bool, params: Mapping[str, str], messages: list[str], log_id: str | None) -> dict[str, Any]:
    """The seed's response shape; success adds `log_action: true` as its example does."""
    body: dict[str, Any] = {
        "success": success,
        "site_event_type": params.get("action") or None,
        "tracking_id": secrets.token_hex(16),
        "advertiser_ref_id": params.get("advertiser_ref_id") or None,
        "log_id": log_id,
        "message": messages,
    }
    if success:
        body["log_action"] = True
    return body


# --- HTTP -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would otherwise make stop() wait for their clients.
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sandbox: Sandbox):
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.add(request)
        with self.sandbox._lock:
            self.sandbox._counts["connections"] += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on an idle keep-alive connection so it ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections
    server_version = "measure-sandbox"
    # Small answers must not wait for the client's delayed ACK (Nagle).
    disable_nagle_algorithm = True
    timeout = 120  # seconds an idle keep-alive connection is kept
    server: _Server

    def parse_request(self) -> bool:
        """The request line and headers, as the base class reads them but without the email
        parser, which costs more than everything else a /serve request needs."""
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, "Bad request line")
            return False
        self.command, self.path, self.request_version = words
        headers = _Headers()
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if len(line) > MAX_HEADER_LINE or not colon or not name.strip():
                self.send_error(400 if colon else 431, "Bad header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: /serve requests are logged by the sandbox itself when asked."""

    def _route(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        sandbox = self.server.sandbox
        routes: dict[str, dict[str, Callable[[], None]]] = {
            "/serve": {"GET": lambda: self._serve(method, body), "POST": lambda: self._serve(method, body)},
            "/": {"GET": lambda: self._redirect("/_sandbox")},
            "/_sandbox": {"GET": lambda: self._send_html(render_page(sandbox))},
            "/_sandbox/": {"GET": lambda: self._send_html(render_page(sandbox))},
            "/_sandbox/requests": {"GET": self._get_requests},
            "/_sandbox/stats": {"GET": lambda: self._send_json(200, sandbox.stats())},
            "/_sandbox/faults": {
                "GET": lambda: self._send_json(200, sandbox.faults.as_dict()),
                "POST": lambda: self._post_faults(body),
                "DELETE": self._delete_faults,
            },
            "/_sandbox/reset": {"POST": self._reset},
            "/_sandbox/definitions": {"GET": self._get_definitions},
        }
        handlers = routes.get(path)
        if handlers is None:
            self._send_json(404, {"error": f"no such endpoint: {path}"})
        elif method not in handlers:
            self._send_json(405, {"error": f"{method} is not allowed on {path}"}, {"Allow": ", ".join(handlers)})
        else:
            handlers[method]()

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._send_json(411, {"error": "send a Content-Length; chunked bodies are not supported"})
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send_json(413 if length > MAX_BODY else 400, {"error": "bad Content-Length"})
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        fault, faults, now = sandbox._draw_fault()
        delay = faults.latency_ms / 1000
        if fault == "drop" or (fault == "outage" and faults.outage_mode == "drop"):
            sandbox._record_fault(fault, method, self.path, body, None, now)
            self._pause(delay)
            self.close_connection = True  # no answer at all: the client sees the connection close
            return
        if fault is not None and fault != "timeout":
            status = 503 if fault == "outage" else int(fault)
            sandbox._record_fault(fault, method, self.path, body, status, now)
            self._pause(delay)
            headers = {"Retry-After": "1"} if status in (429, 503) else {}
            self._send_json(status, {"error": f"sandbox fault: {fault}"}, headers)
            return
        answer = sandbox._answer(method, self.headers.get("Host") or "", self.path, self.headers, body, now, fault)
        # A "timeout" was accepted above; only its answer is late, longer than the client waits.
        self._pause(delay + (faults.hang_s if fault == "timeout" else 0))
        self._send_json(answer.status, answer.body, answer.headers)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.server.sandbox._stopping.wait(seconds)

    def _get_requests(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        try:
            since = float(query["since"][-1]) if "since" in query else None
            limit = int(query["limit"][-1]) if "limit" in query else None
        except ValueError:
            self._send_json(400, {"error": "since must be Unix seconds and limit a whole number"})
            return
        transaction_id = query["transaction_id"][-1] if "transaction_id" in query else None
        self._send_json(200, self.server.sandbox.requests(transaction_id, since, limit))

    def _post_faults(self, body: bytes) -> None:
        try:
            settings = json.loads(body or b"{}")
            if not isinstance(settings, dict):
                raise FaultsError("fault settings must be a JSON object")
            faults = self.server.sandbox.set_faults(settings)
        except ValueError as error:  # FaultsError, or JSON that does not parse
            self._send_json(400, {"error": str(error)})
            return
        self._send_json(200, faults.as_dict())

    def _delete_faults(self) -> None:
        self.server.sandbox.clear_faults()
        self._send_json(200, self.server.sandbox.faults.as_dict())

    def _reset(self) -> None:
        self.server.sandbox.reset()
        self._send_json(200, self.server.sandbox.stats())

    def _get_definitions(self) -> None:
        definitions = self.server.sandbox.definitions()
        self._send_json(200, None if definitions is None else [event.as_dict() for event in definitions])

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_html(self, page: str) -> None:
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        """The whole answer in one write (send_response/end_headers would take two)."""
        lines = [
            f"HTTP/1.1 {status} {_reason(status)}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. after a hang); nothing to do


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _Headers(dict):
    """Request headers by lower-cased name (the last of repeated ones wins)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


# --- the HTML page --------------------------------------------------------------------------


def mask_ip(value: str | None) -> str:
    """An IP reduced to its network (IPv4 /24, IPv6 /48): enough to debug, not to identify."""
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return "(invalid)"
    if address.version == 4:
        return ".".join(str(address).split(".")[:3]) + ".x"
    return str(ipaddress.ip_network(f"{address}/48", strict=False))


_PAGE_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top}th{background:#f4f4f4}code{font-size:12px}.accepted{color:#17692a}.duplicate{color:#7a5d00}
.rejected{color:#a31515}.fault{color:#6b3fa0}.warn{color:#a35a00;font-size:12px}.muted{color:#777}
"""


def render_page(sandbox: Sandbox, rows: int = PAGE_ROWS) -> str:
    """A small page for people: stats, faults, definitions and the latest requests, newest first."""
    e = html.escape
    stats = sandbox.stats()
    faulted = ", ".join(f"{kind}: {count}" for kind, count in sorted(stats["faulted"].items())) or "none"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>",
        f"<title>measure sandbox</title><style>{_PAGE_STYLE}</style></head><body>",
        "<h1>measure sandbox</h1>",
        f"<p>received {stats['received']} · accepted {stats['accepted']} · duplicates {stats['duplicates']}"
        f" · rejected {stats['rejected']} · faulted {e(faulted)} · distinct accepted {stats['distinct_accepted']}</p>",
        f"<p>Faults: {e(sandbox.faults.describe())}. "
        "JSON: <a href='/_sandbox/requests?limit=100'>requests</a> · <a href='/_sandbox/stats'>stats</a>"
        " · <a href='/_sandbox/faults'>faults</a> · <a href='/_sandbox/definitions'>definitions</a></p>",
    ]
    definitions = sandbox.definitions()
    if definitions is not None:
        listed = ", ".join(f"{event.id} {event.name} ({event.type})" for event in definitions) or "none yet"
        parts.append(f"<p>Event definitions: {e(listed)}</p>")
    parts.append(
        "<table><tr><th>time (UTC)</th><th>action</th><th>event</th><th>transaction_id</th><th>outcome</th>"
        "<th>log_id</th><th>device_ip</th><th>signature</th><th>resolution</th></tr>"
    )
    for entry in reversed(sandbox.requests(limit=rows)):
        outcome = entry["outcome"]
        label = f"{outcome} {entry['status'] or ''}".strip()
        if entry["fault"]:
            label += f" ({entry['fault']})"
        reasons = "".join(f"<div class='warn'>{e(reason)}</div>" for reason in entry["reasons"]
                          if outcome in (OUTCOME_REJECTED, OUTCOME_ACCEPTED))
        parts.append(
            "<tr>"
            f"<td>{e(entry['time'][11:23])}</td><td>{e(entry['action'] or '')}</td><td>{e(entry['event'] or '')}</td>"
            f"<td><code>{e(entry['transaction_id'] or '')}</code></td>"
            f"<td class='{outcome}'>{e(label)}{reasons}</td><td><code>{e(entry['log_id'] or '')}</code></td>"
            f"<td>{e(mask_ip(entry['device_ip']))}</td><td>{e(entry['signature'])}</td>"
            f"<td>{_render_resolution(entry['resolution'])}</td></tr>"
        )
    parts.append("</table>")
    if not stats["received"]:
        parts.append(f"<p class='muted'>No requests yet. POST signed requests to {e(_safe_url(sandbox))}.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _render_resolution(resolution: Mapping[str, Any] | None) -> str:
    if not resolution:
        return ""
    event = resolution["event"]
    text = f"{event['name']} (id {event['id']}, {event['type']}) by {resolution['matched_by']}"
    if resolution["created"]:
        text += ", created"
    warnings = "".join(f"<div class='warn'>⚠ {html.escape(warning)}</div>" for warning in resolution["warnings"])
    return html.escape(text) + warnings


def _safe_url(sandbox: Sandbox) -> str:
    try:
        return sandbox.serve_url
    except SandboxError:
        return "/serve"


# --- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="measure sandbox",
        description="Run a local stand-in for the TUNE Measurement API (/serve), with faults on demand.",
        epilog="Inspect it at http://HOST:PORT/_sandbox (HTML) and /_sandbox/requests, /_sandbox/stats (JSON); "
        "change faults at runtime with POST/DELETE /_sandbox/faults.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--consumer-key", default=os.environ.get("MEASURE_CONSUMER_KEY"),
                        help="accepted mat-consumer-key (default $MEASURE_CONSUMER_KEY)")
    parser.add_argument("--private-key", default=os.environ.get("MEASURE_PRIVATE_KEY"),
                        help="its private key (default $MEASURE_PRIVATE_KEY; prefer the variable: flags show in ps)")
    parser.add_argument("--advertiser-id", default=os.environ.get("MEASURE_ADVERTISER_ID"),
                        help="reject other advertiser_id values (default $MEASURE_ADVERTISER_ID; unset = any)")
    parser.add_argument("--tolerance", type=float, default=signing.DEFAULT_TOLERANCE,
                        help=f"allowed mat-timestamp skew in seconds (default {signing.DEFAULT_TOLERANCE})")
    parser.add_argument("--duplicate-window", type=float, default=DEFAULT_DUPLICATE_WINDOW,
                        help="seconds a transaction_id counts as a duplicate (default 86400)")
    parser.add_argument("--log-size", type=int, default=DEFAULT_LOG_SIZE,
                        help=f"requests kept for inspection (default {DEFAULT_LOG_SIZE})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="share of requests answered with a --status code (default codes: 500)")
    parser.add_argument("--status", default="",
                        help="fault codes, comma-separated, each CODE (shares --fail-rate) or CODE=RATE: 500,429=0.05")
    parser.add_argument("--timeout-rate", type=float, default=0.0,
                        help="share of requests accepted but answered only after --hang-s")
    parser.add_argument("--hang-s", type=float, default=DEFAULT_HANG_S,
                        help=f"how long a timeout fault holds its answer (default {DEFAULT_HANG_S:g})")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of connections closed without an answer")
    outage = parser.add_mutually_exclusive_group()
    outage.add_argument("--outage", metavar="START:END",
                        help="outage window: Unix seconds START:END, or ISO 8601 times START/END")
    outage.add_argument("--outage-for", type=float, metavar="SECONDS", help="outage from now for SECONDS")
    parser.add_argument("--outage-mode", choices=OUTAGE_MODES, default="503",
                        help="during an outage answer 503 or drop the connection (default 503)")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible faults")
    parser.add_argument("--definitions", metavar="FILE",
                        help="event definitions (JSON list of {id, name, type}); answers then include a resolution")
    parser.add_argument("--quiet", action="store_true", help="do not log each /serve request to stderr")
    return parser


def faults_from_args(args: argparse.Namespace, now: float | None = None) -> Faults:
    """The Faults the command line asks for (FaultsError when they make no sense)."""
    now = time.time() if now is None else now
    shared: list[str] = []
    status: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in args.status.split(","))):
        code, _, rate = item.partition("=")
        if rate:
            try:
                status[code] = float(rate)
            except ValueError:
                raise FaultsError(f"--status {item!r}: the rate must be a number") from None
        else:
            shared.append(code)
    if args.fail_rate:
        shared = shared or ([] if status else ["500"])
        if not shared:
            raise FaultsError("--fail-rate needs codes without their own rate in --status, e.g. --status 500,503")
    elif shared:
        raise FaultsError("--status codes without =RATE need --fail-rate")
    for code in shared:
        status[code] = status.get(code, 0.0) + args.fail_rate / len(shared)
    settings: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "status": status,
        "timeout_rate": args.timeout_rate,
        "hang_s": args.hang_s,
        "drop_rate": args.drop_rate,
        "outage_mode": args.outage_mode,
        "seed": args.seed,
    }
    if args.outage_for is not None:
        settings["outage_for"] = args.outage_for
    elif args.outage:
        settings["outage_start"], settings["outage_end"] = _parse_outage(args.outage)
    return Faults.from_mapping(settings, now=now)


def _parse_outage(text: str) -> tuple[float, float]:
    separator = "/" if "/" in text else ":"
    start, _, end = text.partition(separator)
    try:
        return _parse_time(start), _parse_time(end)
    except ValueError:
        raise FaultsError(
            f"--outage {text!r}: give START:END in Unix seconds or START/END as ISO 8601 times"
        ) from None


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None) -> int:
    """`python -m measure sandbox`: serve until Ctrl-C (or SIGTERM), then exit 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.consumer_key or not args.private_key:
        print("measure sandbox: needs a key pair: set MEASURE_CONSUMER_KEY and MEASURE_PRIVATE_KEY "
              "(or pass --consumer-key and --private-key)", file=sys.stderr)
        return 2
    try:
        faults = faults_from_args(args)
        definitions = load_definitions(args.definitions) if args.definitions else None
    except (FaultsError, DefinitionsError) as error:
        print(f"measure sandbox: {error}", file=sys.stderr)
        return 2
    sandbox = Sandbox(
        {args.consumer_key: args.private_key},
        tolerance=args.tolerance,
        duplicate_window=args.duplicate_window,
        faults=faults,
        log_size=args.log_size,
        advertiser_id=args.advertiser_id,
        definitions=definitions,
        log_requests=not args.quiet,
    )
    try:
        sandbox.start(args.host, args.port)
    except PortInUseError as error:
        print(f"measure sandbox: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"measure sandbox: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    previous = _exit_on_sigterm()
    try:
        print(f"measure sandbox listening on {sandbox.url}", flush=True)
        print(f"  POST {sandbox.serve_url}  consumer key {args.consumer_key[:4]}…"
              f"{'  advertiser ' + args.advertiser_id if args.advertiser_id else ''}", flush=True)
        print(f"  faults: {faults.describe()}", flush=True)
        if definitions is not None:
            print(f"  event definitions: {len(definitions)} from {args.definitions}", flush=True)
        print(f"  inspect: {sandbox.url}/_sandbox   (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("measure sandbox: stopped", file=sys.stderr, flush=True)
    return 0


def _exit_on_sigterm() -> Any:
    """Treat SIGTERM (e.g. from a dev-stack supervisor) like Ctrl-C; only the main thread may."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    sys.exit(main())
