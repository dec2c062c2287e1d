"""Keep-alive HTTP/1.1 connections over the standard library's http.client, pooled per origin.

Only the Measurement API's calls (measure.tune.client) go through here, until that client moves
onto requests too (issue 13); Google's REST calls already go over google-auth's AuthorizedSession
(measure.gcp.googleapi). Why not urllib3: importing it took about 35 ms of every cold
start, a third of the 1.3× budget (benchmarks/RESULTS.md), while http.client, ssl and select are
already loaded by functions-framework. What the functions need is small, and all here:
keep-alive reuse shared by an instance's threads, separate connect and read timeouts, TLS
verified against the system's trust store (as urllib3 2 does), no redirects, no retries (a
retry is the caller's decision: the pipeline's backoff).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0


class HTTPError(Exception):
    """No answer: the request may or may not have reached the server."""


class RequestTimeoutError(HTTPError):
    """Connecting or reading took longer than its timeout."""


class ConnectionFailedError(HTTPError):
    """Refused, reset, closed mid-answer, a TLS or name-resolution failure, a malformed answer."""


class Response:
    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, headers: http.client.HTTPMessage, data: bytes):
        self.status = status
        self.headers = headers  # case-insensitive .get(), as every HTTP client's headers
        self.data = data


@lru_cache(maxsize=64)
def _origin(url: str) -> tuple[tuple[str, str, int], str]:
    """(scheme, host, port), and the path with its query, of an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), path


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server has closed (or sent stray bytes on) is readable."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Pool:
    """Connections kept open per origin, at most `maxsize` idle ones each; thread-safe.

    `connections_made` and `requests_sent` (every request begun, answered or not) count what the
    pool did, so a benchmark or a test can show that connections are reused."""

    def __init__(self, maxsize: int = 10, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT):
        self.maxsize = maxsize
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.connections_made = 0
        self.requests_sent = 0
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, connect_timeout: float | None = None, read_timeout: float | None = None) -> Response:
        """Send one request and read the whole answer. RequestTimeoutError or ConnectionFailedError
        when there is no answer; any status is an answer."""
        origin, path = _origin(url)
        connection = self._checkout(origin)
        try:
            if connection.sock is None:
                connection.timeout = self.connect_timeout if connect_timeout is None else connect_timeout
                connection.connect()
                # http.client writes headers and body separately: without TCP_NODELAY the body
                # waits for the server's delayed ACK of the headers (tens of ms a request).
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    self.connections_made += 1
            connection.sock.settimeout(self.read_timeout if read_timeout is None else read_timeout)
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            data = answer.read()
        except TimeoutError as exc:
            connection.close()
            raise RequestTimeoutError(f"{method} {origin[1]}: timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectionFailedError(f"{method} {origin[1]}: {type(exc).__name__}") from exc
        except BaseException:
            connection.close()
            raise
        if answer.will_close:
            connection.close()
        else:
            self._checkin(origin, connection)
        return Response(answer.status, answer.headers, data)

    def _checkout(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection:
        with self._lock:
            self.requests_sent += 1  # counted here, under the lock checkout takes anyway
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()  # the most recently used: the least likely to have timed out
                if not _dropped(connection):
                    return connection
                connection.close()
        scheme, host, port = origin
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, context=self._tls_context())
        return http.client.HTTPConnection(host, port)

    def _checkin(self, origin: tuple[str, str, int], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.maxsize:
                idle.append(connection)
                return
        connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = ssl.create_default_context()  # verifies certificates and host names
            return self._tls

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
