"""Pub/Sub's REST API v1 as JSON calls over one requests session, transient failures retried in time.

The session is google-auth's AuthorizedSession (measure.gcp.credentials): it carries the token,
refreshes it before it expires and on a 401. What is decided here is which answers are worth
another try and how long to wait before it.

Why REST and not google-cloud-pubsub: importing `google.cloud.pubsub_v1` (gRPC, proto-plus) took
about 230 ms of every cold start of receive and sweep, and its per-message futures and batch
threads most of receive's CPU (benchmarks/RESULTS.md: the peer row runs that library side by
side). Each call the functions make is one JSON request.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

import google.auth.exceptions
import requests

from measure import retryafter

CONNECT_TIMEOUT = 5.0
# Statuses Google documents as worth retrying, whatever the body says.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# 409 is ABORTED (a conflict worth another try: publish and pull may answer it) or ALREADY_EXISTS
# (a create that will not change): the error body's status tells them apart.
# CANCELLED (HTTP 499): the service gave up on the call, as python-pubsub's transports retry it.
TRANSIENT_CODES = frozenset({"ABORTED", "CANCELLED", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL",
                             "DEADLINE_EXCEEDED"})
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


def retry_after(headers) -> float | None:
    """Seconds a Retry-After header asks for (a number or an HTTP date), or None."""
    return retryafter.seconds((headers or {}).get("Retry-After"))


class Api:
    """One Google API's REST endpoint over a session: JSON in, JSON out, retried within a deadline."""

    def __init__(self, base_url: str, session: requests.Session, backoff: Backoff = Backoff()):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.backoff = backoff

    def call(self, method: str, path: str, body: dict | None = None, *, timeout: float,
             retry: bool = True, what: str | None = None) -> dict:
        """One API call. Transient failures (no answer, a failed token fetch, 408/409 ABORTED/429/5xx)
        are tried again after a backoff pause until `timeout` seconds have passed, unless `retry`
        is False; then DeadlineExceededError, or ApiError for an answer that will not change."""
        what = what or f"{method} {path}"
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + timeout
        retries = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(what)
            wait_at_least = None
            try:
                response = self.session.request(method, self.base_url + path, data=payload,
                                                headers=_JSON if payload is not None else None,
                                                timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
                                                allow_redirects=False)
            except requests.Timeout as exc:
                error: ApiError = DeadlineExceededError(what)
                error.__cause__ = exc
            except requests.RequestException as exc:
                error = ApiError(what, None, type(exc).__name__, transient=True)
                error.__cause__ = exc
            except google.auth.exceptions.GoogleAuthError as exc:  # the token could not be fetched
                error = ApiError(what, None, f"credentials: {exc}"[:300],
                                 transient=getattr(exc, "retryable", True) is not False)
                error.__cause__ = exc
            else:
                if response.status_code == 200:
                    return response.json() if response.content.strip() else {}
                error = _answer_error(what, response)
                wait_at_least = retry_after(response.headers)
            if not (retry and error.transient):
                raise error
            pause = self.backoff.pause(retries, wait_at_least)
            if time.monotonic() + pause >= deadline:
                raise error
            time.sleep(pause)
            retries += 1


def _answer_error(what: str, response: requests.Response) -> ApiError:
    """Google's error body is {"error": {"code", "message", "status"}}; anything else, its first 200 characters."""
    try:
        detail = response.json()["error"]
        message, code = str(detail["message"])[:300], str(detail.get("status") or "")
    except (ValueError, KeyError, TypeError):
        message, code = response.content[:200].decode("utf-8", "replace") or "(empty answer)", ""
    status = response.status_code
    transient = status in TRANSIENT_STATUSES or code in TRANSIENT_CODES or (status == 409 and not code)
    return ApiError(what, status, message, transient=transient, code=code)


def pubsub(session: requests.Session | None = None, pool_size: int = 10) -> Api:
    """Pub/Sub's REST API: the emulator when PUBSUB_EMULATOR_HOST is set, as the libraries do, else
    the service with google.auth.default()'s credentials; over `session` (the instance's, from
    measure.runtime) or a session of its own (the command-line tools)."""
    from measure.gcp import credentials

    return Api(credentials.pubsub_url(), session if session is not None else credentials.pubsub_session(pool_size))
