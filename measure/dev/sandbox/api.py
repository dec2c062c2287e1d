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

import errno
import random
import secrets
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from measure.config import Config
from measure.dev.sandbox.base import (
    DUPLICATE_MESSAGE,
    OUTCOME_ACCEPTED,
    OUTCOME_DUPLICATE,
    OUTCOME_FAULT,
    OUTCOME_REJECTED,
    RESPONDER,
    RESPONDER_HEADER,
    PortInUseError,
    SandboxError,
)
from measure.dev.sandbox.faults import Faults
from measure.dev.sandbox.http import _Server, _Server6
from measure.ops.resolution import EventDefinition, Resolution, ResolutionError, resolve
from measure.tune import signing

REQUIRED_PARAMS = ("action", "advertiser_id", "site_id", "sdk")
# TUNE's own window is not documented (docs/guarantees.md); by default the sandbox remembers a
# transaction_id as long as a retry may still come (MEASURE_RETRY_MAX_AGE's default).
DEFAULT_DUPLICATE_WINDOW = float(Config.retry_max_age)
DEFAULT_LOG_SIZE = 100_000


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
                # Requests whose client went away before sending the whole body: never checked or answered.
                "incomplete": self._counts["incomplete"],
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
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # type: ignore[arg-type]  # noqa: S104 - an IP socket's host is a str; mapping, not binding
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
        if resolution is not None:
            body["resolution"] = resolved
            body["site_event_type"] = resolution.event.type  # the engine's type, not the action's
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
