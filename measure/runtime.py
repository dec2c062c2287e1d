"""The per-instance objects the entry points share, built lazily on first use and then reused.

Config is read when the function starts (import of main.py): a missing or malformed setting
stops it with one log line naming the setting. Everything else (Pub/Sub and Secret Manager
calls, the HTTP session) is built on the first request that needs it, once: concurrent first
requests wait for that one build, each object behind its own lock, none held across network I/O;
each entry point builds only what it uses. At start the Secret Manager client library is imported
in the background (measure.gcp.secrets), so no request pays for it.
Google's side, one of each per instance: one urllib3 connection pool under google-auth's
AuthorizedHttp over google.auth.default()'s credentials for Pub/Sub's REST calls, sized to the
instance's THREADS (no credentials on the emulator), and the Secret Manager client, built in the
background at start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from measure import config as config_module
from measure import logs

if TYPE_CHECKING:  # annotations only: each builder imports its module when first called
    from measure.functions.receive import Webhook
    from measure.functions.send import Sender
    from measure.functions.sweep import Sweeper
    from measure.gcp.googleapi import Api
    from measure.gcp.publisher import Publisher
    from measure.gcp.secrets import Secrets
    from measure.pipeline.delivery import Delivery

T = TypeVar("T")
_forget: list[Callable[[], None]] = []  # each builder's cache_clear, for reset()


class _Once(Generic[T]):
    """A zero-argument builder, memoised: the first caller builds, concurrent callers wait for
    that build (an exception reaches them all, and the next call builds again). Each object has
    its own lock, held only to claim the build or take its result: the build itself (pubsub's is
    a token fetch, secrets' none) runs with no lock held, so one slow build never holds a caller
    of another object, and a thread left running by a request that timed out holds nothing."""

    def __init__(self, build: Callable[[], T]):
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False
        self._building: threading.Event | None = None
        self._error: BaseException | None = None
        self.__name__ = build.__name__
        self.__doc__ = build.__doc__

    def _built_now(self) -> bool:
        # A method, so mypy does not narrow the flag across the lock: another thread sets it.
        return self._built

    def __call__(self) -> T:
        if self._built:
            return cast(T, self._value)
        while True:
            with self._lock:
                if self._built_now():
                    return cast(T, self._value)
                building = self._building
                if building is None:
                    building = self._building = threading.Event()
                    lead = True
                else:
                    lead = False
            if not lead:
                building.wait()
                with self._lock:
                    if self._built_now():
                        return cast(T, self._value)
                    if self._error is not None and self._building is None:
                        raise self._error
                continue
            try:
                value = self._build()
            except BaseException as exc:
                with self._lock:
                    self._error, self._building = exc, None
                building.set()
                raise
            with self._lock:
                self._value, self._built, self._error, self._building = value, True, None, None
            building.set()
            return value

    def cache_clear(self) -> None:
        with self._lock:
            self._value, self._built, self._error, self._building = None, False, None, None


def _once(build: Callable[[], T]) -> _Once[T]:
    once = _Once(build)
    _forget.append(once.cache_clear)
    return once


@_once
def config() -> config_module.Config:
    return config_module.load()


def start() -> config_module.Config:
    """Load the configuration at start; on a bad setting, one clear log line and the start fails."""
    try:
        settings = config()
    except config_module.ConfigError as exc:
        logs.critical(f"configuration error: {exc}", setting=exc.name)
        raise SystemExit(f"measure: configuration error: {exc}") from None
    secrets().warm()
    return settings


def threads() -> int:
    """Requests an instance serves at once: functions-framework's THREADS (terraform sets it to
    each function's concurrency), else functions-framework's own default."""
    return int(os.environ.get("THREADS") or 0) or default_threads()


def default_threads() -> int:
    """functions-framework's THREADS when unset (its _http/gunicorn.py): 4 a CPU os.cpu_count()
    reports (the machine's CPUs, which taskset does not change)."""
    return (os.cpu_count() or 1) * 4


@_once
def pubsub() -> Api:
    from measure.gcp import googleapi

    # A connection for each thread that may call Pub/Sub at once, and never fewer than the default:
    # sweep serves one request (THREADS=1) but publishes from many attempts.
    return googleapi.pubsub(pool_size=max(googleapi.DEFAULT_POOL_SIZE, threads()))


@_once
def secrets() -> Secrets:
    from measure.gcp.secrets import Secrets

    return Secrets(config())


@_once
def publisher() -> Publisher:
    from measure.gcp.publisher import Publisher

    return Publisher(config().project or "", build=pubsub)


@_once
def webhook() -> Webhook:
    from measure.functions.receive import Webhook

    return Webhook(config(), secrets().webhook_tokens, publisher())


@_once
def delivery() -> Delivery:
    from measure.pipeline.breaker import CircuitBreaker
    from measure.pipeline.concurrency import ConcurrencyLimit
    from measure.pipeline.delivery import Delivery
    from measure.tune.client import MeasurementClient

    settings = config()
    limit = ConcurrencyLimit()
    # One keep-alive connection per attempt in flight: send makes one for each of its THREADS
    # requests, sweep up to the limit's maximum from its one request. A pool smaller than that
    # opens and drops a connection for every attempt beyond it.
    client = MeasurementClient(settings.endpoint, secrets().credentials, read_timeout=settings.api_timeout,
                               pool_size=max(threads(), limit.maximum))
    return Delivery(settings, client, publisher(), CircuitBreaker(cooldown=settings.breaker_cooldown), limit=limit)


@_once
def sender() -> Sender:
    from measure.functions.send import Sender

    return Sender(delivery())


@_once
def sweeper() -> Sweeper:
    from measure.functions.sweep import Sweeper
    from measure.gcp.credentials import emulator_host
    from measure.gcp.subscriber import Subscriber

    return Sweeper(config(), delivery(), Subscriber(pubsub()), return_immediately=emulator_host() is not None)


def reset() -> None:
    """Forget every built object (tests that change the environment): each one `_once` made."""
    for forget in _forget:
        forget()
