"""runtime.py: the objects an instance shares, built once, the way the entry points use them."""

import os
from concurrent.futures import ThreadPoolExecutor

from measure import runtime
from measure.dev.sandbox import Sandbox
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, base_env


def test_each_shared_object_is_built_once(monkeypatch):
    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    assert runtime.delivery() is runtime.delivery()
    assert runtime.sender().delivery is runtime.delivery()
    assert runtime.config() is runtime.delivery().config


def test_sweeps_attempts_in_flight_each_keep_their_connection(monkeypatch):
    """sweep runs with THREADS=1 but makes up to the concurrency limit's 64 attempts at once: a pool
    sized by THREADS opened and dropped a connection for most of them (benchmarks/RESULTS.md)."""
    sandbox = Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER, faults={"latency_ms": 20}).start()
    try:
        for name, value in {**base_env(sandbox.serve_url), "THREADS": "1"}.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        client = runtime.delivery().client
        in_flight = runtime.delivery().limit.maximum
        params = {"action": "session", "advertiser_id": ADVERTISER, "site_id": "2960", "sdk": "server",
                  "response_format": "json", "user_id": "u", "device_ip": "175.124.248.15",
                  "system_date": "1700000000", "transaction_id": "t"}
        with ThreadPoolExecutor(in_flight) as pool:
            for _ in range(4):  # four rounds of attempts, all in flight at once
                list(pool.map(lambda _: client.deliver(params), range(in_flight)))
        opened, sent = client.connection_counts()
        assert sent == 4 * in_flight
        assert opened <= in_flight, f"{opened} connections for {sent} requests, {in_flight} at a time"
    finally:
        sandbox.stop()
        runtime.reset()


def test_a_slow_build_holds_no_caller_of_another_object(monkeypatch):
    """One lock per object: while pubsub's first build waits on the network (a token fetch),
    a request that needs only the configuration or the secrets is not held behind it."""
    import threading

    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    entered, release = threading.Event(), threading.Event()

    def slow_pubsub(**kwargs):
        entered.set()
        release.wait(10)
        return object()

    monkeypatch.setattr("measure.gcp.googleapi.pubsub", slow_pubsub)
    built: list = []
    builder = threading.Thread(target=lambda: built.append(runtime.pubsub()))
    builder.start()
    try:
        assert entered.wait(5)
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(lambda: runtime.secrets().webhook_tokens()).result(timeout=2)
            assert pool.submit(runtime.config).result(timeout=2) is runtime.config()
        waiter = ThreadPoolExecutor(1).submit(runtime.pubsub)  # a second caller of pubsub waits for the build
        assert not waiter.done()
    finally:
        release.set()
        builder.join(5)
    assert waiter.result(timeout=5) is built[0]
    runtime.reset()


def test_a_failed_build_reaches_its_callers_and_the_next_call_builds_again(monkeypatch):
    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("metadata server down")
        return object()

    monkeypatch.setattr("measure.gcp.googleapi.pubsub", flaky)
    try:
        runtime.pubsub()
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure did not reach the caller")
    assert runtime.pubsub() is runtime.pubsub()
    assert len(calls) == 2
    runtime.reset()


def test_start_gets_the_secret_manager_client_ready_in_the_background_only_when_a_secret_comes_from_there(
        monkeypatch):
    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    runtime.start()
    assert runtime.secrets().source._warming is None  # every secret is local
    monkeypatch.delenv("MEASURE_WEBHOOK_TOKENS")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    runtime.reset()
    runtime.start()
    assert runtime.secrets().source._warming is not None
    runtime.secrets().source._warming.join(30)


def test_threads_are_functions_frameworks(monkeypatch):
    monkeypatch.setenv("THREADS", "1")
    assert runtime.threads() == 1
    monkeypatch.delenv("THREADS")
    assert runtime.threads() == (os.cpu_count() or 1) * 4  # functions-framework's default


def test_reset_forgets_every_built_object(monkeypatch):
    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    built = runtime.config(), runtime.delivery(), runtime.sender()
    runtime.reset()
    assert all(old is not new for old, new in zip(built, (runtime.config(), runtime.delivery(), runtime.sender()),
                                                  strict=True))
    runtime.reset()
