"""The consumer key, private key and webhook tokens: from Secret Manager, cached per instance.

`versions/latest` is read at most once per secret per TTL however many events go through, so a
rotation (a new version) takes effect within the TTL without a redeploy. When a refresh fails the
last good value is kept and the failure logged: a Secret Manager hiccup must not stop deliveries.
Locally, MEASURE_CONSUMER_KEY / MEASURE_PRIVATE_KEY / MEASURE_WEBHOOK_TOKENS take the place of
the secrets. Values never reach a log line; only secret ids do.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from measure import logs
from measure.config import Config


class SecretUnavailableError(RuntimeError):
    def __init__(self, secret_id: str, cause: str):
        self.secret_id = secret_id
        super().__init__(f"secret {secret_id!r} could not be read: {cause}")


@dataclass
class _Cached:
    value: str | None = None
    fetched_at: float = float("-inf")


class SecretManagerSource:
    """Reads `projects/P/secrets/ID/versions/latest`, caching each value for `ttl` seconds."""

    def __init__(
        self,
        project: str | None,
        ttl: float,
        *,
        client_factory: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.project = project
        self.ttl = ttl
        self.clock = clock
        self._client_factory = client_factory or _default_client
        self._client = None
        self._client_lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _client_once(self):
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def _lock_for(self, secret_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(secret_id, threading.Lock())

    def get(self, secret_id: str) -> str:
        cached = self._cache.get(secret_id)
        if cached and self.clock() - cached.fetched_at < self.ttl:
            return cached.value  # type: ignore[return-value]
        # One reader per secret refreshes; the others wait and take its value (no access storm at TTL).
        with self._lock_for(secret_id):
            cached = self._cache.setdefault(secret_id, _Cached())
            if self.clock() - cached.fetched_at < self.ttl:
                return cached.value  # type: ignore[return-value]
            try:
                value = self._access(secret_id)
            except Exception as exc:  # any failure: keep serving the last good value
                if cached.value is None:
                    raise SecretUnavailableError(secret_id, type(exc).__name__) from exc
                logs.warning("secret refresh failed; keeping the last good value",
                             secret_id=secret_id, error=type(exc).__name__)
                # Try again soon, not on every event.
                cached.fetched_at = self.clock() - self.ttl + min(self.ttl, 30)
                return cached.value
            cached.value, cached.fetched_at = value, self.clock()
            return value

    def _access(self, secret_id: str) -> str:
        if not self.project:
            raise SecretUnavailableError(secret_id, "GOOGLE_CLOUD_PROJECT is not set")
        name = f"projects/{self.project}/secrets/{secret_id}/versions/latest"
        response = self._client_once().access_secret_version(request={"name": name})
        return response.payload.data.decode("utf-8").strip()


ACCESS_TIMEOUT = 10.0  # seconds, retries of transient answers included


class SecretManagerRest:
    """Secret Manager's AccessSecretVersion over REST, answering like the client library's
    `SecretManagerServiceClient.access_secret_version` (`response.payload.data`, bytes): the
    library's import would cost every cold start about as much as the Pub/Sub one (see
    measure.gcp.googleapi)."""

    def __init__(self, api=None):
        from measure.gcp import googleapi

        self.api = api or googleapi.secret_manager()

    def access_secret_version(self, request: dict):
        answer = self.api.call("GET", f"/v1/{request['name']}:access", timeout=ACCESS_TIMEOUT,
                               what=f"access {request['name']}")
        data = base64.b64decode(answer.get("payload", {}).get("data", ""))
        return SimpleNamespace(payload=SimpleNamespace(data=data))


def _default_client():
    return SecretManagerRest()


class Secrets:
    """The three secrets the functions use, each from its local override or Secret Manager."""

    def __init__(self, config: Config, source: SecretManagerSource | None = None):
        self.config = config
        self.source = source or SecretManagerSource(config.project, config.secret_ttl)

    def _get(self, local: str | None, secret_id: str) -> str:
        return local.strip() if local else self.source.get(secret_id)

    def credentials(self) -> tuple[str, str]:
        """(consumer_key, private_key) for signing."""
        return (
            self._get(self.config.consumer_key, self.config.consumer_key_secret),
            self._get(self.config.private_key, self.config.private_key_secret),
        )

    def webhook_tokens(self) -> tuple[str, ...]:
        """Every valid Bearer token: one a line, so two can be valid while a token is rotated."""
        raw = self._get(self.config.webhook_tokens, self.config.webhook_tokens_secret)
        return tuple(line.strip() for line in raw.splitlines() if line.strip())
