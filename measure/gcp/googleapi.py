"""Google's REST APIs (Pub/Sub, Secret Manager) for the calls the functions make on their hot path.

Why not the client libraries here: importing `google.cloud.pubsub_v1` (gRPC, proto-plus) took
about 420 ms of every cold start of receive and sweep, and its per-message futures and batch
threads took 72% of receive's CPU (benchmarks/RESULTS.md). Each call we need is one JSON request
over the keep-alive pool the package already uses for the Measurement API (measure.gcp.connections).
The client libraries
stay where start-up time does not matter: the command-line tools and the tests' own checks.

Where a call goes and with what credentials, as the client libraries decide it:
    PUBSUB_EMULATOR_HOST set    -> Pub/Sub calls go to the emulator over plain http, no token
    running on Google Cloud     -> the metadata server's token for the function's service account
      (K_SERVICE is set)           (GCE_METADATA_HOST overrides its address, as for google-auth)
    anywhere else               -> Application Default Credentials through google-auth
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

from measure.gcp.connections import HTTPError, Pool, RequestTimeoutError

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PUBSUB_URL = "https://pubsub.googleapis.com"
SECRET_MANAGER_URL = "https://secretmanager.googleapis.com"  # noqa: S105 (an address, not a secret)
CONNECT_TIMEOUT = 5.0
# Statuses Google documents as worth retrying (the client libraries retry the same set).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_MARGIN_S = 300  # refresh a token this long before it expires (they live about an hour)
_JSON = {"Content-Type": "application/json"}

_pool_lock = threading.Lock()
_pool: Pool | None = None


class ApiError(RuntimeError):
    """A Google API call that did not succeed. `transient` says whether the same call may work later."""

    def __init__(self, what: str, status: int | None, message: str, *, transient: bool):
        self.status = status
        self.transient = transient
        prefix = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{what}: {prefix}: {message}")


class DeadlineExceededError(ApiError):
    def __init__(self, what: str):
        super().__init__(what, None, "deadline exceeded", transient=True)


def shared_pool() -> Pool:
    """One keep-alive pool a process for Google's APIs, sized for the instance's threads."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool(max(10, int(os.environ.get("THREADS", "0") or 0)), connect_timeout=CONNECT_TIMEOUT)
        return _pool


# ---------------------------------------------------------------------------------------------
# Credentials


class NoToken:
    """The emulator: no credentials."""

    def headers(self) -> dict[str, str]:
        return {}


class _MetadataFlavor:
    """What the metadata server asks of a caller in place of a token."""

    def headers(self) -> dict[str, str]:
        return {"Metadata-Flavor": "Google"}


class MetadataServerToken:
    """The access token of the function's service account, from the metadata server, cached."""

    PATH = "/computeMetadata/v1/instance/service-accounts/default/token"

    def __init__(self, pool: Pool, host: str | None = None, clock=time.monotonic):
        host = host or os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal"
        self.metadata = Api(f"http://{host}", _MetadataFlavor(), pool)
        self.url = self.metadata.base_url + self.PATH
        self.clock = clock
        self._header: dict[str, str] = {}
        self._refresh_at = float("-inf")
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        if self.clock() < self._refresh_at:
            return self._header
        with self._lock:  # one refresh for all the threads that found it stale
            if self.clock() >= self._refresh_at:
                self._refresh()
            return self._header

    def _refresh(self) -> None:
        token = self.metadata.call("GET", self.PATH, timeout=10.0, retry=False, what="metadata server token")
        self._header = {"Authorization": f"Bearer {token['access_token']}"}
        lifetime = float(token.get("expires_in", 0))
        self._refresh_at = self.clock() + max(0.0, lifetime - TOKEN_MARGIN_S)


class DefaultCredentialsToken:
    """Application Default Credentials (a developer's `gcloud auth application-default login`,
    a key file): google-auth knows every kind, and is imported only here, where start-up time
    does not matter."""

    def __init__(self):
        import google.auth
        import google.auth.transport.requests

        self.credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        self._request = google.auth.transport.requests.Request()
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        with self._lock:
            if not self.credentials.valid:
                self.credentials.refresh(self._request)
            headers = {"Authorization": f"Bearer {self.credentials.token}"}
            quota_project = getattr(self.credentials, "quota_project_id", None)
            if quota_project:
                headers["x-goog-user-project"] = quota_project
            return headers


_token_lock = threading.Lock()
_token = None


def default_token(pool: Pool):
    """The process's credentials, built once and shared by every API it calls."""
    global _token
    with _token_lock:
        if _token is None:
            if os.environ.get("K_SERVICE") or os.environ.get("GCE_METADATA_HOST"):
                _token = MetadataServerToken(pool)
            else:
                _token = DefaultCredentialsToken()
        return _token


# ---------------------------------------------------------------------------------------------
# Calls


class Api:
    """One Google API's REST endpoint: JSON in, JSON out, transient failures retried in time."""

    def __init__(self, base_url: str, token, pool: Pool | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.pool = pool or shared_pool()

    def call(self, method: str, path: str, body: dict | None = None, *, timeout: float,
             retry: bool = True, what: str | None = None) -> dict:
        """One API call. Transient failures (connection errors, 408/429/5xx) are tried again with
        jittered backoff until `timeout` seconds have passed, unless `retry` is False; then
        DeadlineExceededError, or ApiError for an answer that will not change."""
        what = what or f"{method} {path}"
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + timeout
        backoff = 0.05
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(what)
            try:
                response = self.pool.request(
                    method, self.base_url + path, body=payload,
                    headers={**_JSON, **self.token.headers()} if payload is not None else self.token.headers(),
                    connect_timeout=min(CONNECT_TIMEOUT, remaining), read_timeout=remaining)
            except RequestTimeoutError as exc:
                error: ApiError = DeadlineExceededError(what)
                error.__cause__ = exc
            except HTTPError as exc:
                error = ApiError(what, None, type(exc).__name__, transient=True)
                error.__cause__ = exc
            else:
                if response.status == 200:
                    return json.loads(response.data) if response.data.strip() else {}
                error = ApiError(what, response.status, _error_message(response.data),
                                 transient=response.status in TRANSIENT_STATUSES)
            if not (retry and error.transient):
                raise error
            pause = backoff * (0.5 + random.random())
            if time.monotonic() + pause >= deadline:
                raise error
            time.sleep(pause)
            backoff = min(backoff * 2, 2.0)


def _error_message(data: bytes) -> str:
    """Google's error body is {"error": {"message": ...}}; anything else, its first 200 characters."""
    try:
        return str(json.loads(data)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return data[:200].decode("utf-8", "replace") or "(empty answer)"


def pubsub() -> Api:
    """Pub/Sub's REST API: the emulator when PUBSUB_EMULATOR_HOST is set, as the libraries do."""
    pool = shared_pool()
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        return Api(f"http://{emulator}", NoToken(), pool)
    return Api(PUBSUB_URL, default_token(pool), pool)


def secret_manager() -> Api:
    pool = shared_pool()
    return Api(SECRET_MANAGER_URL, default_token(pool), pool)
