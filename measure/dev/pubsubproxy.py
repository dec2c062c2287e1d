"""A Pub/Sub stand-in that behaves like the real service where the emulator does not: a proxy in
front of the emulator, speaking the REST v1 paths measure uses (PUBSUB_EMULATOR_HOST=proxy.host).

What it does that the emulator does not (leases: google-cloud-python#8087, python-pubsub#1414;
limits: Pub/Sub's documented request limits):

    pull      leases at once (it pulls from the emulator the moment a pull arrives) but answers only
              after `pull_latency` (0.6-1.2 s by default): a client that hangs up sooner has lost
              those messages until their ack deadline passes, as with the real service; a pull that
              finds nothing is held open up to `empty_hold` (5 s), answering as soon as messages
              arrive; returnImmediately is ignored (deprecated on the service)
    limits    acknowledge/modifyAckDeadline with more than MAX_ACK_IDS ids, a body over
              MAX_REQUEST_BYTES, or a deadline outside 0-600 s is refused with 400 INVALID_ARGUMENT
    faults    any of publish, pull, acknowledge, modifyAckDeadline can be answered 429, 499, 500 or
              503 (not forwarded), reset (forwarded, so it took effect, then the connection is reset
              half-way through the answer), or hung (held without an answer for `hang_s`, not
              forwarded), at random rates or from a schedule of the next calls' faults

Everything else (creating topics and subscriptions, seek, ...) is forwarded as it is.

    with PubsubProxy(topology.emulator_host).start() as proxy:
        proxy.set_faults("pull", status={503: 0.2}, reset_rate=0.1)
        proxy.set_faults("acknowledge", schedule=["hang"])   # the next acknowledge hangs
        env = {**topology.env(), "PUBSUB_EMULATOR_HOST": proxy.host}
"""

from __future__ import annotations

import json
import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from measure.dev.emulator import LOOPBACK
from measure.dev.localserver import LocalServer

CALLS = ("publish", "pull", "acknowledge", "modifyAckDeadline")
STATUS_FAULTS = {429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE"}
FAULT_KINDS = (*(str(code) for code in STATUS_FAULTS), "reset", "hang")
MAX_ACK_IDS = 1000  # the most ack ids the client library sends in one request (python-pubsub's dispatcher)
MAX_REQUEST_BYTES = 512 * 1024  # the service refuses acknowledge/modifyAckDeadline requests larger than this
MAX_ACK_DEADLINE_S = 600
POLL_S = 0.05  # how often a held-open pull asks the emulator again
UPSTREAM_TIMEOUT = 30.0


class FaultsError(ValueError):
    """Fault settings that make no sense: the message names the setting."""


@dataclass(frozen=True)
class CallFaults:
    """What goes wrong with one kind of call. One uniform draw per call picks at most one fault
    (each status, then reset, then hang), so the rates add up to at most 1; `schedule` gives the
    faults of the next calls in order first ("503", "reset", "hang", or None for no fault)."""

    status: Mapping[int, float] = field(default_factory=dict)
    reset_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 60.0
    schedule: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        for code, rate in self.status.items():
            if code not in STATUS_FAULTS:
                raise FaultsError(f"status {code!r}: the proxy answers {', '.join(map(str, STATUS_FAULTS))}")
            _rate(f"status {code}", rate)
        _rate("reset_rate", self.reset_rate)
        _rate("hang_rate", self.hang_rate)
        if self.hang_s < 0:
            raise FaultsError(f"hang_s must be at least 0 seconds, not {self.hang_s!r}")
        total = sum(self.status.values()) + self.reset_rate + self.hang_rate
        if total > 1 + 1e-9:
            raise FaultsError(f"status rates, reset_rate and hang_rate add up to {total:g}, more than 1")
        for kind in self.schedule:
            if kind is not None and kind not in FAULT_KINDS:
                raise FaultsError(f"schedule entry {kind!r} is not one of {', '.join(FAULT_KINDS)} or None")

    def draw(self, rng: random.Random) -> str | None:
        u = rng.random()
        for code, rate in sorted(self.status.items()):
            if u < rate:
                return str(code)
            u -= rate
        if u < self.reset_rate:
            return "reset"
        u -= self.reset_rate
        return "hang" if u < self.hang_rate else None


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FaultsError(f"{name} must be a rate between 0 and 1, not {value!r}")
    return float(value)


class PubsubProxy:
    """`start()` (or `with`), point PUBSUB_EMULATOR_HOST at `host`, `stop()`."""

    def __init__(self, upstream: str, *, pull_latency: tuple[float, float] = (0.6, 1.2),
                 empty_hold: float = 5.0, seed: int | None = None):
        """`upstream`: the emulator's host:port. `pull_latency`: the seconds (low, high) a pull that
        found messages takes to answer; `empty_hold`: how long a pull that finds none is held open."""
        if not 0 <= pull_latency[0] <= pull_latency[1]:
            raise FaultsError(f"pull_latency must be (low, high) with 0 <= low <= high, not {pull_latency!r}")
        if empty_hold < 0:
            raise FaultsError(f"empty_hold must be at least 0 seconds, not {empty_hold!r}")
        self.upstream = f"http://{upstream}"
        self.pull_latency = pull_latency
        self.empty_hold = empty_hold
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # faults and latencies, not secrets
        self._faults: dict[str, CallFaults] = {call: CallFaults() for call in CALLS}
        self._schedules: dict[str, list[str | None]] = {call: [] for call in CALLS}
        self._counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._session = requests.Session()
        self._session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- the Python API ---------------------------------------------------------------------

    def set_faults(self, call: str, faults: CallFaults | None = None, **settings: Any) -> CallFaults:
        """Replace the faults of one kind of call (publish, pull, acknowledge, modifyAckDeadline):
        a CallFaults, or its fields as keywords (status={503: 0.2}, reset_rate=, hang_rate=, hang_s=,
        schedule=[...])."""
        if call not in CALLS:
            raise FaultsError(f"call {call!r} is not one of {', '.join(CALLS)}")
        if faults is None:
            if "schedule" in settings:
                settings["schedule"] = tuple(settings["schedule"])
            if "status" in settings:
                settings["status"] = {int(code): rate for code, rate in settings["status"].items()}
            faults = CallFaults(**settings)
        with self._lock:
            self._faults[call] = faults
            self._schedules[call] = list(faults.schedule)
        return faults

    def clear_faults(self) -> None:
        for call in CALLS:
            self.set_faults(call, CallFaults())

    def stats(self) -> dict[str, int]:
        """Counts: `<call>` calls seen, `fault <kind>` faults answered, `refused` over-limit
        requests, `leased` messages handed to pulls, `abandoned` of them whose client had hung up."""
        with self._lock:
            return dict(self._counts)

    def start(self, host: str = LOOPBACK, port: int = 0) -> PubsubProxy:
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pubsub-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # hung calls end now
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._session.close()

    def __enter__(self) -> PubsubProxy:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """host:port, for PUBSUB_EMULATOR_HOST."""
        assert self._server is not None, "the proxy is not started"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    # --- what the handler asks ----------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _fault(self, call: str) -> tuple[str | None, float]:
        with self._lock:
            self._counts[call] += 1
            faults, schedule = self._faults[call], self._schedules[call]
            kind = schedule.pop(0) if schedule else faults.draw(self._rng)
            if kind is not None:
                self._counts[f"fault {kind}"] += 1
            return kind, faults.hang_s

    def _latency(self) -> float:
        with self._lock:
            return self._rng.uniform(*self.pull_latency)

    def _forward(self, method: str, path: str, body: bytes) -> requests.Response:
        return self._session.request(method, self.upstream + path, data=body or None,
                                     headers={"Content-Type": "application/json"} if body else None,
                                     timeout=UPSTREAM_TIMEOUT)


def _google_error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": message, "status": code}}).encode()


def _refusal(call: str, body: bytes) -> str | None:
    """Why the service would refuse this acknowledge/modifyAckDeadline request, or None."""
    if len(body) > MAX_REQUEST_BYTES:
        return f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return "Invalid JSON payload received."
    ids = request.get("ackIds") or []
    if len(ids) > MAX_ACK_IDS:
        return f"{call}: at most {MAX_ACK_IDS} ack ids a request, got {len(ids)}"
    if call == "modifyAckDeadline":
        seconds = request.get("ackDeadlineSeconds", 0)
        if not isinstance(seconds, int) or not 0 <= seconds <= MAX_ACK_DEADLINE_S:
            return f"Invalid ack deadline given: {seconds!r} (0-{MAX_ACK_DEADLINE_S} s)"
    return None


class _Server(LocalServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], proxy: PubsubProxy):
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: stats() counts what happened."""

    def do_GET(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def _route(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        call = self.path.rpartition(":")[2] if self.command == "POST" and ":" in self.path else ""
        if call not in CALLS:
            self._relay(proxy._forward(self.command, self.path, body))
            return
        kind, hang_s = proxy._fault(call)
        if kind == "hang":
            proxy._stopping.wait(hang_s)  # no answer at all; then the connection goes
            self.close_connection = True
            return
        if kind is not None and kind != "reset":
            code = int(kind)
            self._answer(code, _google_error(code, STATUS_FAULTS[code], f"injected {kind} on {call}"))
            return
        if call in ("acknowledge", "modifyAckDeadline"):
            refused = _refusal(call, body)
            if refused is not None:
                proxy._count("refused")
                self._answer(400, _google_error(400, "INVALID_ARGUMENT", refused))
                return
        if call == "pull":
            status, answer = self._pull(body)
            if status is None:
                return
        else:
            response = proxy._forward("POST", self.path, body)
            status, answer = response.status_code, response.content
        if kind == "reset":
            self._reset(status, answer)
        else:
            self._answer(status, answer)

    def _pull(self, body: bytes) -> tuple[int | None, bytes]:
        """Lease at once, answer after the latency; hold an empty pull open. (None, b"") when the
        client hung up before anything was leased."""
        proxy = self.server.proxy
        arrived = time.monotonic()
        answer_at = arrived + proxy._latency()
        request = json.loads(body or b"{}")
        request["returnImmediately"] = True  # the emulator answers now; the holding is done here
        forwarded = json.dumps(request).encode()
        while True:
            response = proxy._forward("POST", self.path, forwarded)
            received = response.json().get("receivedMessages", []) if response.status_code == 200 else []
            if response.status_code != 200 or received:
                break
            if time.monotonic() - arrived >= proxy.empty_hold or proxy._stopping.is_set():
                break
            if self._client_gone():  # the service stops serving a pull whose caller cancelled it
                return None, b""
            time.sleep(POLL_S)
        proxy._count("leased", len(received))
        pause = answer_at - time.monotonic()
        if pause > 0:
            proxy._stopping.wait(pause)
        if received and self._client_gone():
            proxy._count("abandoned", len(received))
        return response.status_code, response.content

    def _client_gone(self) -> bool:
        """Has the client closed its end? (A readable socket with nothing to read.)"""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _relay(self, response: requests.Response) -> None:
        self._answer(response.status_code, response.content)

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client hung up: what it asked for happened all the same
            self.close_connection = True

    def _reset(self, status: int, body: bytes) -> None:
        """Headers and half the answer, then a TCP reset: the client's read of the body fails."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 1))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
