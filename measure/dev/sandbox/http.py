"""The sandbox's HTTP plumbing: a threading server that counts connections and a handler that
routes /serve and /_sandbox, reading headers without the email parser."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from measure.dev.localserver import LocalServer
from measure.dev.sandbox.faults import FaultsError
from measure.dev.sandbox.page import render_page

if TYPE_CHECKING:  # the server serves a Sandbox, which starts it: a type, not an import at run time
    from measure.dev.sandbox.api import Sandbox

MAX_BODY = 1 << 20
MAX_HEADERS = 100
MAX_HEADER_LINE = 65536


class _Server(LocalServer):
    def __init__(self, address: tuple[str, int], sandbox: Sandbox):
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def connection_opened(self) -> None:
        with self.sandbox._lock:
            self.sandbox._counts["connections"] += 1


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections
    server_version = "measure-sandbox"
    # Small answers must not wait for the client's delayed ACK (Nagle).
    disable_nagle_algorithm = True
    timeout = 120  # seconds an idle keep-alive connection is kept
    server: _Server
    raw_requestline: bytes  # read by the base class's handle_one_request before parse_request

    def parse_request(self) -> bool:
        """The request line and headers, as the base class reads them but without the email
        parser, which costs more than everything else a /serve request needs."""
        self.command = None  # type: ignore[assignment]  # as the base class's parse_request starts
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
        self.headers = headers  # type: ignore[assignment]  # a dict by lower-cased name, not a Message
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
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away mid-request (killed, or its connection cut) before the whole body
            # arrived. A real server never hands such a request to the API, so the sandbox neither
            # checks it (its signature would not match what arrived: a rejection nobody hears of) nor
            # answers it; it only counts it.
            self.close_connection = True
            with self.server.sandbox._lock:
                self.server.sandbox._counts["incomplete"] += 1
            return None
        return body

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
        answer = sandbox._answer(method, self.headers.get("Host") or "", self.path,
                                 self.headers, body, now, fault)  # type: ignore[arg-type]  # a _Headers, see parse_request
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

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)
