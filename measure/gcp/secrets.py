"""The consumer key, private key and webhook tokens: from Secret Manager, cached per instance.

`versions/latest` is read at most once per secret per TTL however many events go through, so a
rotation (a new version) takes effect within the TTL (plus one read) without a redeploy.
Locally, MEASURE_CONSUMER_KEY / MEASURE_PRIVATE_KEY / MEASURE_WEBHOOK_TOKENS take the place of
the secrets. Values never reach a log line; only secret ids do.

A slow or failing Secret Manager must stall no request (docs/design.md, "Slow or failing dependencies"):
- Every read runs in a background thread, one at a time per secret; no lock is held across it.
  Once the TTL has passed, callers keep the last good value meanwhile.
- The last good value is served at most STALE_LIMIT seconds past its TTL: after that a revoked
  token or key stops working even while Secret Manager cannot be reached (callers get
  SecretUnavailableError, which receive answers with 503).
- Each read is bounded: ACCESS_TIMEOUT a call, ACCESS_DEADLINE with the library's retries (its
  defaults are 60 s each).
- A read that failed is remembered for FAILURE_MEMORY seconds: Secret Manager is asked at most
  once per FAILURE_MEMORY per secret per instance, not once per request, and in the background;
  a caller with no usable value is refused at once meanwhile. Only an instance's very first
  read is waited for, by the requests that arrive in its first FIRST_READ_WAIT seconds.
- The client library (gRPC and proto-plus: hundreds of ms) is imported and its client built by
  `warm()` in a background thread when the instance starts, not under a lock requests wait on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from measure import logs
from measure.config import Config, webhook_token_lines

# Seconds one access_secret_version call may take, and all its retries together.
ACCESS_TIMEOUT = 3.0
ACCESS_DEADLINE = 5.0
# Seconds a failed read is remembered: no second read of that secret before it has passed.
FAILURE_MEMORY = 5.0
# Seconds past its TTL that a value is still served while it cannot be read again.
STALE_LIMIT = 600.0
# Seconds from its start that an instance's first read is waited for (it goes on after).
FIRST_READ_WAIT = 1.0


class SecretUnavailableError(RuntimeError):
    def __init__(self, secret_id: str, cause: str):
        self.secret_id = secret_id
        super().__init__(f"secret {secret_id!r} could not be read: {cause}")


@dataclass
class _Entry:
    """One secret's cache. `current` is (value, read_at), replaced whole so a lock-free reader
    never sees a value with another value's time."""

    current: tuple[str, float] | None = None
    failed_at: float = float("-inf")
    failure: str = ""
    reading: threading.Event | None = None  # set when the read in flight ends
    reading_since: float = float("-inf")
    readers: list[threading.Thread] = field(default_factory=list)


class SecretManagerSource:
    """Reads `projects/P/secrets/ID/versions/latest`, caching each value for `ttl` seconds.

    The client is google-cloud-secret-manager's SecretManagerServiceClient, built by `warm()` or
    on the first read, so a function that has its secrets locally never pays for the import; it
    finds its credentials itself (google.auth.default(), as Google's samples build it)."""

    def __init__(
        self,
        project: str | None,
        ttl: float,
        *,
        client_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stale_limit: float = STALE_LIMIT,
    ):
        self.project = project
        self.ttl = ttl
        self.clock = clock
        self.stale_limit = stale_limit
        self._client_factory = client_factory or _library_client
        self._client: Any = None
        self._client_lock = threading.Lock()  # held while the client is built: warm() or a first read
        self._lock = threading.Lock()  # the entries' bookkeeping; never held across a read
        self._entries: dict[str, _Entry] = {}
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Import the library and build the client in a background thread, once."""
        with self._lock:
            if self._warming is not None or self._client is not None:
                return
            self._warming = threading.Thread(target=self._warm, name="measure-secrets-warm", daemon=True)
        self._warming.start()

    def _warm(self) -> None:
        try:
            self._client_once()
        except Exception as exc:  # the first read builds it again and reports what fails
            logs.warning("secret manager client could not be built ahead of use", error=type(exc).__name__)

    def _client_once(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._client_factory()
        return self._client

    def get(self, secret_id: str) -> str:
        entry = self._entries.get(secret_id)
        current = entry.current if entry is not None else None
        if current is not None and self.clock() - current[1] < self.ttl:
            return current[0]  # the common case: no lock
        return self._get_slow(secret_id)

    def _get_slow(self, secret_id: str) -> str:
        now = self.clock()
        with self._lock:
            entry = self._entries.setdefault(secret_id, _Entry())
            current = entry.current
            if current is not None and now - current[1] < self.ttl:
                return current[0]
            usable = current is not None and now - current[1] < self.ttl + self.stale_limit
            in_flight = entry.reading is not None and now - entry.reading_since < ACCESS_DEADLINE + ACCESS_TIMEOUT
            start = not in_flight and now - entry.failed_at >= FAILURE_MEMORY
            if start:
                entry.reading, entry.reading_since = threading.Event(), now
            reading = entry.reading
            # Only an instance's first read, before anything failed, is waited for, and briefly: a
            # cold start's first requests need it, and Secret Manager usually answers in milliseconds.
            wait = FIRST_READ_WAIT - (now - entry.reading_since) \
                if not usable and entry.failed_at == float("-inf") else 0.0
        if start:  # always in the background: the caller waits at most FIRST_READ_WAIT for it
            reader = threading.Thread(target=self._read, args=(secret_id, entry, reading),
                                      name=f"measure-secret-{secret_id}", daemon=True)
            with self._lock:
                entry.readers = [reader]
            reader.start()
        if usable:
            return current[0]  # type: ignore[index]
        if wait > 0 and reading is not None:
            reading.wait(wait)
        with self._lock:
            current = entry.current
            if current is not None and self.clock() - current[1] < self.ttl + self.stale_limit:
                return current[0]
            cause = entry.failure or ("still being read" if entry.reading is not None else "no value read yet")
        if current is not None:
            cause = f"last value read more than {int(self.ttl + self.stale_limit)} s ago; {cause}"
        raise SecretUnavailableError(secret_id, cause)

    def _read(self, secret_id: str, entry: _Entry, reading: threading.Event) -> None:
        error: Exception | None = None
        try:
            value = self._access(secret_id)
        except Exception as exc:  # any failure: remembered, and the last good value kept
            error = exc
        with self._lock:
            had_value = entry.current is not None
            if error is None:
                entry.current, entry.failure, entry.failed_at = (value, self.clock()), "", float("-inf")
            else:
                entry.failure, entry.failed_at = _cause(error), self.clock()
            if entry.reading is reading:  # not a later read started when this one seemed abandoned
                entry.reading = None
        reading.set()
        if error is not None and had_value:
            logs.warning("secret refresh failed; keeping the last good value", secret_id=secret_id,
                         error=_cause(error), retry_in_s=FAILURE_MEMORY)
        elif error is not None:
            logs.error("secret could not be read; answering unavailable until it can", secret_id=secret_id,
                       error=_cause(error), retry_in_s=FAILURE_MEMORY)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait for the background reads in flight (tests and orderly shutdown); True when none is left."""
        end = time.monotonic() + timeout
        with self._lock:
            readers = [reader for entry in self._entries.values() for reader in entry.readers]
        for reader in readers:
            reader.join(max(0.0, end - time.monotonic()))
        return not any(reader.is_alive() for reader in readers)

    def _access(self, secret_id: str) -> str:
        if not self.project:
            raise SecretUnavailableError(secret_id, "GOOGLE_CLOUD_PROJECT is not set")
        name = f"projects/{self.project}/secrets/{secret_id}/versions/latest"
        response = self._client_once().access_secret_version(request={"name": name}, timeout=ACCESS_TIMEOUT,
                                                             retry=_retry())
        payload = response.payload
        _verify_checksum(payload.data, payload)
        data: bytes = payload.data
        return data.decode("utf-8").strip()


class CorruptSecretError(RuntimeError):
    """The payload read does not match the CRC32C Secret Manager computed when it was stored."""

    def __init__(self) -> None:
        super().__init__("data corruption detected: payload CRC32C mismatch")


def _verify_checksum(data: bytes, payload: Any) -> None:
    """As Google's samples do: the CRC32C of the payload against `payload.data_crc32c`, when the
    answer has one. It is an optional field, and proto-plus reads an absent one as 0, so presence
    is asked of the message itself (`in`), not read from the value."""
    if "data_crc32c" not in payload:
        return
    import google_crc32c

    if google_crc32c.value(data) != int(payload.data_crc32c):
        raise CorruptSecretError()


def _cause(exc: Exception) -> str:
    if isinstance(exc, (CorruptSecretError, SecretUnavailableError)):
        return str(exc)
    last = getattr(exc, "cause", None)  # api_core's RetryError: the last try's error
    if isinstance(last, Exception):
        return f"{type(last).__name__} (retried for {ACCESS_DEADLINE:g} s)"
    return type(exc).__name__


def _retry() -> Any:
    """The library's retry (UNAVAILABLE, with backoff) within ACCESS_DEADLINE instead of 60 s."""
    from google.api_core import exceptions, retry

    return retry.Retry(predicate=retry.if_exception_type(exceptions.ServiceUnavailable),
                       initial=0.1, maximum=1.0, multiplier=2.0, timeout=ACCESS_DEADLINE)


def _library_client() -> Any:
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient()


class Secrets:
    """The three secrets the functions use, each from its local override or Secret Manager."""

    def __init__(self, config: Config, source: SecretManagerSource | None = None):
        self.config = config
        self.source = source or SecretManagerSource(config.project, config.secret_ttl)
        self._tokens_lock = threading.Lock()
        self._tokens_of: str | None = None  # the raw value `_tokens` was parsed from
        self._tokens: tuple[str, ...] = ()

    def warm(self) -> None:
        """Get the Secret Manager client ready in the background, if any secret comes from there."""
        if not (self.config.consumer_key and self.config.private_key and self.config.webhook_tokens):
            self.source.warm()

    def _get(self, local: str | None, secret_id: str) -> str:
        return local.strip() if local else self.source.get(secret_id)

    def credentials(self) -> tuple[str, str]:
        """(consumer_key, private_key) for signing."""
        return (
            self._get(self.config.consumer_key, self.config.consumer_key_secret),
            self._get(self.config.private_key, self.config.private_key_secret),
        )

    def webhook_tokens(self) -> tuple[str, ...]:
        """Every valid Bearer token: one a line, so two can be valid while a token is rotated.
        Parsed once per value read; a line shorter than MIN_TOKEN_LENGTH is refused with one log line."""
        raw = self._get(self.config.webhook_tokens, self.config.webhook_tokens_secret)
        if raw == self._tokens_of:  # the same object as last time, mostly: an identity test
            return self._tokens
        with self._tokens_lock:
            if raw != self._tokens_of:
                tokens, short = webhook_token_lines(raw)
                if short:
                    logs.error("webhook tokens shorter than 32 characters refused", secret_id=self.config.
                               webhook_tokens_secret, refused=len(short), lines=short, kept=len(tokens))
                self._tokens, self._tokens_of = tokens, raw
            return self._tokens
