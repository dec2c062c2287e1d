"""The consumer key, private key and webhook tokens: from Secret Manager, cached per instance.

`versions/latest` is read at most once per secret per TTL however many events go through, so a
rotation (a new version) takes effect within the TTL without a redeploy. When a refresh fails the
last good value is kept and the failure logged: a Secret Manager hiccup must not stop deliveries.
Locally, MEASURE_CONSUMER_KEY / MEASURE_PRIVATE_KEY / MEASURE_WEBHOOK_TOKENS take the place of
the secrets. Values never reach a log line; only secret ids do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    """Reads `projects/P/secrets/ID/versions/latest`, caching each value for `ttl` seconds.

    The client is google-cloud-secret-manager's SecretManagerServiceClient, imported and built on
    the first read, so a function that has its secrets locally never pays for the import; it finds
    its credentials itself (google.auth.default(), as Google's samples build it)."""

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
        self._client_factory = client_factory or _library_client
        self._client: Any = None  # a SecretManagerServiceClient, or what client_factory makes
        self._client_lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _client_once(self) -> Any:
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
            return cached.value  # type: ignore[return-value]  # fresh means fetched: value is set
        # One reader per secret refreshes; the others wait and take its value (no access storm at TTL).
        with self._lock_for(secret_id):
            cached = self._cache.setdefault(secret_id, _Cached())
            if self.clock() - cached.fetched_at < self.ttl:
                return cached.value  # type: ignore[return-value]  # fresh means fetched: value is set
            try:
                value = self._access(secret_id)
            except Exception as exc:  # any failure: keep serving the last good value
                if cached.value is None:
                    raise SecretUnavailableError(secret_id, _cause(exc)) from exc
                logs.warning("secret refresh failed; keeping the last good value",
                             secret_id=secret_id, error=_cause(exc))
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
        data: bytes = response.payload.data
        _verify_checksum(data, getattr(response.payload, "data_crc32c", None))
        return data.decode("utf-8").strip()


class CorruptSecretError(RuntimeError):
    """The payload read does not match the CRC32C Secret Manager computed when it was stored."""

    def __init__(self) -> None:
        super().__init__("data corruption detected: payload CRC32C mismatch")


def _verify_checksum(data: bytes, expected: int | None) -> None:
    """As Google's samples do: the CRC32C of the payload against `payload.data_crc32c`."""
    if expected is None:
        return
    import google_crc32c

    if google_crc32c.value(data) != int(expected):
        raise CorruptSecretError()


def _cause(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (CorruptSecretError, SecretUnavailableError)) else type(exc).__name__


def _library_client() -> Any:
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient()


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
