"""Fault injection in the dependencies: a slow or failing Secret Manager and a hung publish stall
no request, and the instance recovers by itself.

Everything is real but the faulty dependency: the Pub/Sub emulator (pushing to send), the
Measurement API sandbox, and receive and send as functions-framework servers running main.py
through tests/secretmanager_main.py, which puts a Secret Manager fake (tests/gcp/standins.py) in
place of the client library's class; the test drives it through a state file. A hung publish
comes from tests/gcp/standins.PubsubProxy, the emulator behind a front end that can stop
answering publish calls.

    MEASURE_CHAOS_FULL=1   the full run (`make chaos`): Secret Manager stalled for 30 s;
                           default a reduced one (8 s), the same checks
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from measure.dev.sandbox import Sandbox
from measure.gcp import publisher, secrets
from tests.gcp.standins import PubsubProxy
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, TOKENS, base_env, seed_form

FULL = os.environ.get("MEASURE_CHAOS_FULL", "").strip() not in ("", "0")
STALL_S = 30.0 if FULL else 8.0
WRAPPER = Path(__file__).resolve().parent / "secretmanager_main.py"
SECRET_IDS = {"MEASURE_CONSUMER_KEY_SECRET": "chaos-consumer-key", "MEASURE_PRIVATE_KEY_SECRET": "chaos-private-key",
              "MEASURE_WEBHOOK_TOKENS_SECRET": "chaos-webhook-tokens"}
VALUES = {"chaos-consumer-key": CONSUMER_KEY, "chaos-private-key": PRIVATE_KEY,
          "chaos-webhook-tokens": "\n".join(TOKENS)}

pytestmark = [pytest.mark.slow, pytest.mark.emulator, pytest.mark.timing]


class SecretManagerControl:
    """The fake's state file and access log, as a test drives and reads them."""

    def __init__(self, directory: Path):
        self.state_path = directory / "secrets-state.json"
        self.log_path = directory / "secrets-accesses.log"
        self.log_path.write_text("")
        self.set()

    def set(self, **settings: object) -> None:
        state = {"values": VALUES, "fail": False, "stall": 0.0, **settings}
        staged = self.state_path.with_suffix(".tmp")
        staged.write_text(json.dumps(state))
        staged.replace(self.state_path)  # atomic: a reader never sees half a file

    def env(self) -> dict[str, str]:
        return {"MEASURE_FAKE_SECRETS_STATE": str(self.state_path), "MEASURE_FAKE_SECRETS_LOG": str(self.log_path),
                **SECRET_IDS}

    def accesses(self, secret_id: str, since: float = 0.0) -> list[float]:
        times = []
        for line in self.log_path.read_text().splitlines():
            at, name = line.split(" ", 1)
            if f"/secrets/{secret_id}/" in name and float(at) >= since:
                times.append(float(at))
        return times


def secret_env(sandbox_url: str) -> dict[str, str]:
    """base_env without the local secret values: every secret comes from Secret Manager (the fake)."""
    local = ("MEASURE_CONSUMER_KEY", "MEASURE_PRIVATE_KEY", "MEASURE_WEBHOOK_TOKENS")
    return {k: v for k, v in base_env(sandbox_url).items() if k not in local}


def post(url: str, user: str) -> tuple[int, float, list[str]]:
    began = time.monotonic()
    response = requests.post(url, data=seed_form(user_id=user), headers={"Authorization": f"Bearer {TOKENS[0]}"},
                             timeout=60)
    took = time.monotonic() - began
    ids = response.json().get("event_ids", []) if response.status_code == 202 else []
    return response.status_code, took, ids


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def test_secret_manager_stalled_after_the_cache_expired_stalls_neither_receive_nor_send(
    make_topology, function_server, tmp_path
):
    sandbox = Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start()
    control = SecretManagerControl(tmp_path)
    try:
        env = {**secret_env(sandbox.serve_url), **control.env(), "MEASURE_SECRET_TTL": "1", "THREADS": "16"}
        send_url = function_server("send", env, signature_type="cloudevent", source=WRAPPER)
        topology = make_topology(push_endpoint=send_url)
        env.update(topology.env())
        receive_url = function_server("receive", {**env, **topology.env()}, source=WRAPPER).rstrip("/") + "/measure"
        # Warm: both read their secrets, and deliver.
        warm = [post(receive_url, f"warm-{i}") for i in range(3)]
        assert [status for status, _, _ in warm] == [202] * 3, warm
        wait_delivered(sandbox, {i for _, _, ids in warm for i in ids}, 60)

        time.sleep(1.5)  # the TTL (1 s) passes: the next read finds Secret Manager stalled
        control.set(stall=STALL_S + 60)
        stalled_at = time.time()
        results: list[tuple[int, float, list[str]]] = []
        lock = threading.Lock()

        def keep_posting(worker: int) -> None:
            n = 0
            while time.time() - stalled_at < STALL_S:
                result = post(receive_url, f"stall-{worker}-{n}")
                with lock:
                    results.append(result)
                n += 1
                time.sleep(0.05)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(keep_posting, range(4)))
        control.set()  # Secret Manager answers again
        statuses = [status for status, _, _ in results]
        waits = [took for _, took, _ in results]
        print(f"Secret Manager stalled {STALL_S:.0f} s: {len(results)} requests, p99 {p99(waits) * 1000:.0f} ms, "
              f"max {max(waits) * 1000:.0f} ms; webhook-token reads during the stall: "
              f"{len(control.accesses('chaos-webhook-tokens', stalled_at))}")
        assert statuses == [202] * len(results), {s: statuses.count(s) for s in set(statuses)}
        assert p99(waits) < 1.0, p99(waits)
        # One read at a time, each bounded (ACCESS_TIMEOUT) and a failure remembered: not one a request.
        reads = control.accesses("chaos-webhook-tokens", stalled_at)
        bound = STALL_S / (secrets.ACCESS_TIMEOUT + secrets.FAILURE_MEMORY) + 2
        assert 1 <= len(reads) <= bound, (len(reads), bound)
        # send kept delivering with its cached keys, all through the stall.
        wait_delivered(sandbox, {i for _, _, ids in results for i in ids}, 120)
    finally:
        control.set()
        sandbox.stop()


def test_secret_manager_unreachable_at_a_cold_start_is_503_at_once_and_asked_once_every_few_seconds(
    pubsub_emulator, function_server, tmp_path
):
    control = SecretManagerControl(tmp_path)
    control.set(fail=True)
    env = {**secret_env("https://877.measure.mobileapptracking.com/serve"), **control.env(),
           **pubsub_emulator.env()}
    receive_url = function_server("receive", env, source=WRAPPER).rstrip("/") + "/measure"
    began = time.time()
    results = []
    with ThreadPoolExecutor(4) as pool:
        while time.time() - began < 12:
            results += list(pool.map(lambda i: post(receive_url, f"cold-{i}"), range(4)))
    statuses = [status for status, _, _ in results]
    waits = sorted(took for _, took, _ in results)
    reads = control.accesses("chaos-webhook-tokens")
    print(f"unreachable at a cold start: {len(results)} requests in 12 s, p99 {p99(waits) * 1000:.0f} ms, "
          f"{len(reads)} reads of the webhook tokens")
    assert set(statuses) == {503}
    # The first requests wait for the instance's first read (at most FIRST_READ_WAIT); then at once.
    assert waits[-5] < secrets.FIRST_READ_WAIT + 0.5, waits[-5:]
    assert p99(waits) < secrets.FIRST_READ_WAIT + 0.5
    assert statistics.median(waits) < 0.1, statistics.median(waits)
    # A read (retried within ACCESS_DEADLINE) then FAILURE_MEMORY before the next one.
    assert len(reads) <= 12 / secrets.FAILURE_MEMORY + 1, reads
    assert len(results) > 10 * len(reads)


def test_a_hung_publish_holds_no_request_past_one_retry_and_the_instance_recovers(
    make_topology, function_server, tmp_path
):
    topology = make_topology()
    proxy = PubsubProxy(topology.emulator_host)
    try:
        env = {**base_env(), **topology.env(), "PUBSUB_EMULATOR_HOST": proxy.host, "THREADS": "16"}
        receive_url = function_server("receive", env).rstrip("/") + "/measure"
        assert post(receive_url, "before")[0] == 202

        # One stuck call: the request is answered 202 after one attempt's timeout, on a fresh connection.
        proxy.hang_publishes = 1
        status, took, _ = post(receive_url, "one-stuck")
        assert status == 202 and took < 2 * publisher.ATTEMPT_TIMEOUT, took

        # Every publish hangs: every request is answered 503 within the attempt, a pause and one retry.
        proxy.hang_all_publishes()
        with ThreadPoolExecutor(8) as pool:
            hung = list(pool.map(lambda i: post(receive_url, f"hung-{i}"), range(16)))
        bound = publisher.PUBLISH_TIMEOUT + 1.5  # 2 attempts + a pause, and the answer's own time
        print(f"hung publish: {len(hung)} requests, slowest {max(t for _, t, _ in hung):.1f} s (bound {bound:.1f} s)")
        assert {status for status, _, _ in hung} == {503}
        assert max(took for _, took, _ in hung) <= bound
        assert publisher.PUBLISH_TIMEOUT <= 2 * publisher.ATTEMPT_TIMEOUT + 1.0

        # Pub/Sub answers again: the same instance publishes, no restart.
        proxy.unhang()
        after = [post(receive_url, f"after-{i}") for i in range(5)]
        assert [status for status, _, _ in after] == [202] * 5, after
        # Without a retry: the hung connections were dropped, not reused (a shared machine: not "fast").
        assert max(took for _, took, _ in after) < publisher.ATTEMPT_TIMEOUT
        received = topology.pull(topology.names.events_tap_subscription, expect=7, timeout=15)
        users = {json.loads(m.message.data)["event"]["user_id"] for m in received}
        assert {"before", "one-stuck", *(f"after-{i}" for i in range(5))} <= users
    finally:
        proxy.close()


def wait_delivered(sandbox: Sandbox, ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = ids - set(sandbox.accepted_ids())
        if not missing:
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(missing)} of {len(ids)} accepted events not delivered in {timeout:.0f} s")
