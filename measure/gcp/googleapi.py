"""Pub/Sub's REST API v1 as JSON calls over one connection pool, transient failures retried in time.

The pool is urllib3's under google-auth's AuthorizedHttp (measure.gcp.credentials says why not
requests): it carries the token, refreshes it before it expires and on a 401. What is decided
here is which answers are worth another try and how long to wait before it.

Why REST and not google-cloud-pubsub: importing `google.cloud.pubsub_v1` (gRPC, proto-plus) was a
large share of every cold start of receive and sweep, and its per-message futures and batch
threads most of receive's CPU (benchmarks/RESULTS.md has the figures; its peer row runs that
library side by side). Each call the functions make is one JSON request.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import google.auth.exceptions
import urllib3
import urllib3.exceptions

from measure import retryafter
from measure.gcp import credentials

if TYPE_CHECKING:
    from google.auth.transport.urllib3 import AuthorizedHttp

CONNECT_TIMEOUT = 5.0
# Connections kept a host at least (the pool requests and urllib3 keep by default): a tool's own
# Api, and the floor of an instance's (measure.runtime sizes it to THREADS above that).
DEFAULT_POOL_SIZE = 10
# Statuses Google documents as worth retrying, whatever the body says; 499 is CANCELLED.
TRANSIENT_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504})
# The codes Google's own Pub/Sub publisher retries (python-pubsub's transport defaults). 409 is
# ABORTED (a conflict worth another try: publish and pull may answer it) or ALREADY_EXISTS (a
# create that will not change): the error body's status tells them apart.
TRANSIENT_CODES = frozenset({"ABORTED", "CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED",
                             "UNAVAILABLE", "UNKNOWN"})
_JSON = {"Content-Type": "application/json"}


class ApiError(RuntimeError):
    """A Google API call that did not succeed. `transient` says whether the same call may work later;
    `code` is Google's status name ("NOT_FOUND", "ALREADY_EXISTS", ...) when the answer gave one."""

    def __init__(self, what: str, status: int | None, message: str, *, transient: bool, code: str = ""):
        self.status = status
        self.transient = transient
        self.code = code
        prefix = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{what}: {prefix}: {message}")


class DeadlineExceededError(ApiError):
    def __init__(self, what: str):
        super().__init__(what, None, "deadline exceeded", transient=True)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th pause is a random point in the upper half of
    first × multiplier^n (capped at `most`), so the first pause after a 429 is 125-250 ms and
    callers that failed together do not come back together. A Retry-After answer is honoured
    when it asks for longer. The caller's deadline bounds the whole."""

    first: float = 0.25
    multiplier: float = 2.0
    most: float = 8.0

    def pause(self, retry: int, retry_after: float | None = None) -> float:
        ceiling = min(self.most, self.first * self.multiplier ** retry)
        jittered = ceiling * random.uniform(0.5, 1.0)  # jitter, not a secret
        return max(jittered, retry_after or 0.0)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a Retry-After header asks for (a number or an HTTP date), or None."""
    return retryafter.seconds((headers or {}).get("Retry-After"))


class Api:
    """One Google API's REST endpoint over a connection pool: JSON in, JSON out, retried within a deadline."""

    def __init__(self, base_url: str, http: AuthorizedHttp, backoff: Backoff = Backoff()):
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.backoff = backoff

    def close(self) -> None:
        """Close the pool's connections (a command-line run that is done with them)."""
        credentials.close(self.http)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float,
             retry: bool = True, what: str | None = None, attempt_timeout: float | None = None) -> dict[str, Any]:
        """One API call. Transient failures (no answer, a failed token fetch, 408/409 ABORTED/429/
        499/5xx) are tried again after a backoff pause until `timeout` seconds have passed, unless
        `retry` is False; then DeadlineExceededError, or ApiError for an answer that will not change.

        `attempt_timeout` bounds each attempt's wait for an answer (default: the whole `timeout`).
        A read that times out closes its connection (urllib3 does not pool a connection whose
        answer never came), so the next attempt goes out on a fresh one: one keep-alive connection
        that stopped answering costs one attempt, not the caller's whole deadline."""
        what = what or f"{method} {path}"
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + timeout
        retries = 0
        last: ApiError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # a pause overslept (a busy machine): the last answer says more
                raise last if last is not None else DeadlineExceededError(what)
            wait_at_least = None
            read = remaining if attempt_timeout is None else min(attempt_timeout, remaining)
            try:
                response = self.http.urlopen(method, self.base_url + path, body=payload,
                                             headers=_JSON if payload is not None else None,
                                             timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT, read), read=read),
                                             retries=False, redirect=False)
            except urllib3.exceptions.HTTPError as exc:
                error: ApiError = _no_answer(what, exc)
            except google.auth.exceptions.GoogleAuthError as exc:  # the token could not be fetched
                error = ApiError(what, None, f"credentials: {exc}"[:300],
                                 transient=getattr(exc, "retryable", True) is not False)
                error.__cause__ = exc
            else:
                if response.status == 200:
                    data = response.data
                    return json.loads(data) if data.strip() else {}
                error = _answer_error(what, response)
                wait_at_least = retry_after(response.headers)
            if not (retry and error.transient):
                raise error
            pause = self.backoff.pause(retries, wait_at_least)
            if time.monotonic() + pause >= deadline:
                raise error
            time.sleep(pause)
            retries += 1
            last = error


def _no_answer(what: str, exc: urllib3.exceptions.HTTPError) -> ApiError:
    """A call that got no answer: it timed out (DeadlineExceededError), or the connection was
    refused, broke or cut the answer short. urllib3's NewConnectionError (refused, unreachable)
    is a ConnectTimeoutError subclass, but no timeout."""
    timed_out = isinstance(exc, urllib3.exceptions.TimeoutError) \
        and not isinstance(exc, urllib3.exceptions.NewConnectionError)
    error = DeadlineExceededError(what) if timed_out else ApiError(what, None, type(exc).__name__, transient=True)
    error.__cause__ = exc
    return error


def _answer_error(what: str, response: urllib3.BaseHTTPResponse) -> ApiError:
    """Google's error body is {"error": {"code", "message", "status"}}; anything else, its first 200 characters."""
    try:
        detail = json.loads(response.data)["error"]
        message, code = str(detail["message"])[:300], str(detail.get("status") or "")
    except (ValueError, KeyError, TypeError):
        message, code = response.data[:200].decode("utf-8", "replace") or "(empty answer)", ""
    status = response.status
    transient = status in TRANSIENT_STATUSES or code in TRANSIENT_CODES or (status == 409 and not code)
    return ApiError(what, status, message, transient=transient, code=code)


def pubsub(pool_size: int = DEFAULT_POOL_SIZE) -> Api:
    """Pub/Sub's REST API: the emulator when PUBSUB_EMULATOR_HOST is set, as the libraries do, else
    the service with google.auth.default()'s credentials, over a pool of `pool_size` connections.
    Pub/Sub is reached directly: urllib3 reads no proxy, netrc or CA bundle from the environment
    (a stray HTTPS_PROXY or ~/.netrc cannot reroute a publish)."""
    return Api(credentials.pubsub_url(), credentials.pubsub_http(pool_size))
