"""Secret Manager has no emulator: SecretManagerServiceClient is faked at the library boundary (the
class itself, monkeypatched; tests/gcp/standins.py), and every access is counted. A slow or failing
Secret Manager must stall no caller: those tests time each get."""

import subprocess
import sys
import threading
import time

import pytest
from google.cloud import secretmanager

from measure.config import load
from measure.gcp import secrets as secrets_module
from measure.gcp.secrets import SecretManagerSource, Secrets, SecretUnavailableError
from tests.gcp.standins import FakeSecretManager

BASE = {"MEASURE_ADVERTISER_ID": "877", "MEASURE_SITE_IDS": '{"pc/steam": "2960"}', "GOOGLE_CLOUD_PROJECT": "p"}
T1, T2 = "t1-" + "a" * 30, "t2-" + "b" * 30  # webhook tokens are at least 32 characters


@pytest.fixture
def fake(monkeypatch):
    # Reads bounded in tenths of seconds, so the tests of stalls and failures take no longer.
    monkeypatch.setattr(secrets_module, "ACCESS_TIMEOUT", 0.3)
    monkeypatch.setattr(secrets_module, "ACCESS_DEADLINE", 0.5)
    monkeypatch.setattr(secrets_module, "FIRST_READ_WAIT", 1.0)
    manager = FakeSecretManager(VALUES)
    monkeypatch.setattr(secretmanager, "SecretManagerServiceClient", manager)
    yield manager
    manager.calm()


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def make(fake):
    def build(ttl=300):
        clock = Clock()
        source = SecretManagerSource("p", ttl, clock=clock)
        return Secrets(load(BASE), source), fake, clock

    return build


VALUES = {"measure-consumer-key": "ck\n", "measure-private-key": "pk", "measure-webhook-tokens": f"{T1}\n\n {T2} \n"}


def test_reads_latest_version_and_strips(make):
    secrets, fake, _ = make()
    assert secrets.credentials() == ("ck", "pk")
    assert secrets.webhook_tokens() == (T1, T2)
    assert "projects/p/secrets/measure-consumer-key/versions/latest" in fake.accesses


def test_one_access_per_secret_per_ttl_for_ten_thousand_events_across_threads(make):
    secrets, fake, clock = make()

    def work():
        for _ in range(1000):
            secrets.credentials()
            secrets.webhook_tokens()

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(name.split("/")[3] for name in fake.accesses) == [
        "measure-consumer-key", "measure-private-key", "measure-webhook-tokens"]
    clock.now = 301  # the TTL passes: a rotation is picked up with one more access each
    fake.values["measure-private-key"] = "pk2"
    assert secrets.credentials() == ("ck", "pk")  # the last good value, while one thread reads again
    assert secrets.source.wait_idle()
    assert secrets.credentials() == ("ck", "pk2")
    assert len(fake.accesses) == 5


def test_refresh_failure_keeps_last_good_value_and_logs_without_the_value(make, capsys):
    secrets, fake, clock = make()
    assert secrets.credentials() == ("ck", "pk")
    fake.fail = True
    clock.now = 400
    assert secrets.credentials() == ("ck", "pk")
    assert secrets.source.wait_idle()
    out = capsys.readouterr().out
    assert "keeping the last good value" in out and "measure-private-key" in out
    assert '"pk"' not in out and "ck\\n" not in out
    # It does not hammer Secret Manager on every event while it is down: one try per FAILURE_MEMORY.
    before = len(fake.accesses)
    for _ in range(100):
        assert secrets.credentials() == ("ck", "pk")
    assert len(fake.accesses) == before
    clock.now += secrets_module.FAILURE_MEMORY
    secrets.credentials()
    assert secrets.source.wait_idle()
    assert len(fake.accesses) == before + 2  # one more try of each key


def test_no_value_ever_is_a_clear_error(make):
    secrets, fake, _ = make()
    fake.fail = True
    with pytest.raises(SecretUnavailableError, match="measure-webhook-tokens"):
        secrets.webhook_tokens()


def test_local_values_take_the_place_of_secrets_without_any_access(fake):
    local = {"MEASURE_CONSUMER_KEY": "lck", "MEASURE_PRIVATE_KEY": "lpk", "MEASURE_WEBHOOK_TOKENS": f"{T1}\n{T2}"}
    secrets = Secrets(load({**BASE, **local}), SecretManagerSource("p", 300))
    secrets.warm()  # every secret is local: nothing to get ready
    assert secrets.credentials() == ("lck", "lpk") and secrets.webhook_tokens() == (T1, T2)
    assert fake.accesses == [] and fake.built == []


def test_the_client_is_built_once_on_the_first_read(make):
    secrets, fake, clock = make()
    assert fake.built == []
    secrets.credentials()
    clock.now = 301
    secrets.webhook_tokens()
    secrets.credentials()
    assert secrets.source.wait_idle()
    assert fake.built == [{}]
    assert len(fake.accesses) == 5


def test_a_payload_whose_crc32c_does_not_match_is_refused(make):
    secrets, fake, _ = make()
    fake.corrupt = True
    with pytest.raises(SecretUnavailableError, match=r"measure-webhook-tokens.*data corruption"):
        secrets.webhook_tokens()


def test_a_corrupt_refresh_keeps_the_last_good_value(make, capsys):
    secrets, fake, clock = make()
    assert secrets.webhook_tokens() == (T1, T2)
    fake.values["measure-webhook-tokens"] = "t3-" + "c" * 30
    fake.corrupt = True
    clock.now = 301
    assert secrets.webhook_tokens() == (T1, T2)
    assert secrets.source.wait_idle()
    assert secrets.webhook_tokens() == (T1, T2)
    assert "data corruption" in capsys.readouterr().out


def test_the_library_is_imported_only_on_the_first_secret_read():
    code = ("import sys; from measure.config import load; from measure.gcp.secrets import Secrets; "
            f"s = Secrets(load({{**{BASE!r}, 'MEASURE_WEBHOOK_TOKENS': 'a' * 32}})); s.webhook_tokens(); "
            "print('google.cloud.secretmanager' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"


def timed(call) -> tuple[object, float]:
    began = time.perf_counter()
    try:
        result = call()
    except SecretUnavailableError as exc:
        result = exc
    return result, time.perf_counter() - began


def test_each_access_is_bounded_by_a_short_timeout_and_retry_deadline(make):
    secrets, fake, _ = make()
    secrets.webhook_tokens()
    [(_, timeout, retry_given)] = fake.calls
    assert timeout is not None and timeout <= 5 and retry_given  # not the library's 60 s and 60 s


def test_a_stalled_refresh_holds_no_caller_and_only_one_access_is_in_flight(make):
    secrets, fake, clock = make()
    assert secrets.webhook_tokens() == (T1, T2)
    fake.stall = 30.0
    clock.now = 301  # the TTL passed: the refresh stalls
    waits = []
    for _ in range(200):
        result, took = timed(secrets.webhook_tokens)
        assert result == (T1, T2)
        waits.append(took)
    clock.now = 301.5  # still inside one read's bounds
    for _ in range(200):
        result, took = timed(secrets.webhook_tokens)
        waits.append(took)
    assert max(waits) < 0.05, max(waits)
    assert len(fake.accesses) == 2  # the first read, and the one stalled refresh


def test_a_revoked_token_stops_working_once_secret_manager_stayed_unreachable_past_the_hard_limit(make):
    secrets, fake, clock = make()
    assert secrets.webhook_tokens() == (T1, T2)
    fake.fail = True
    clock.now = 300 + secrets_module.STALE_LIMIT - 1
    assert secrets.webhook_tokens() == (T1, T2)  # stale but within the limit
    assert secrets.source.wait_idle()
    clock.now = 300 + secrets_module.STALE_LIMIT + 1
    with pytest.raises(SecretUnavailableError, match=r"measure-webhook-tokens.*last value read more than 900 s ago"):
        secrets.webhook_tokens()


def test_unreachable_at_a_cold_start_is_refused_at_once_with_one_access_per_failure_memory(make):
    secrets, fake, clock = make()
    fake.fail = True
    with pytest.raises(SecretUnavailableError, match="ServiceUnavailable"):
        secrets.webhook_tokens()
    assert len(fake.accesses) == 1
    for step in range(50):  # requests keep coming over 4.9 s
        clock.now = step * 0.1
        result, took = timed(secrets.webhook_tokens)
        assert isinstance(result, SecretUnavailableError) and took < 0.05
    assert len(fake.accesses) == 1, "asked again before FAILURE_MEMORY passed"
    clock.now = secrets_module.FAILURE_MEMORY
    result, took = timed(secrets.webhook_tokens)  # the next try runs in the background: still at once
    assert isinstance(result, SecretUnavailableError) and took < 0.05
    assert secrets.source.wait_idle()
    assert len(fake.accesses) == 2
    fake.fail = False  # back: the next request after the memory gets the value
    clock.now = 2 * secrets_module.FAILURE_MEMORY
    result, took = timed(secrets.webhook_tokens)  # starts the read in the background, is not held by it
    assert took < 0.05
    assert secrets.source.wait_idle()
    assert secrets.webhook_tokens() == (T1, T2)


def test_a_stall_at_a_cold_start_is_bounded_and_then_remembered(make, monkeypatch):
    monkeypatch.setattr(secrets_module, "ACCESS_TIMEOUT", 0.3)
    secrets, fake, _ = make()
    fake.stall = 30.0
    result, took = timed(secrets.webhook_tokens)
    assert isinstance(result, SecretUnavailableError) and took < 1.0, took
    result, took = timed(secrets.webhook_tokens)
    assert isinstance(result, SecretUnavailableError) and took < 0.05, took
    assert len(fake.accesses) == 1


def test_concurrent_first_requests_share_one_read(make):
    secrets, fake, _ = make()
    fake.stall = 0.2
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(secrets.webhook_tokens())) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [(T1, T2)] * 10
    assert len(fake.accesses) == 1


def test_a_crc32c_that_is_absent_is_not_read_as_zero(make):
    secrets, fake, _ = make()
    fake.omit_crc = True
    assert secrets.webhook_tokens() == (T1, T2)


def test_a_crc32c_of_zero_is_checked_like_any_other(monkeypatch):
    class ZeroCrc:
        def access_secret_version(self, request, **kwargs):
            payload = secretmanager.SecretPayload(data=b"x" * 40, data_crc32c=0)
            return secretmanager.AccessSecretVersionResponse(payload=payload)

    source = SecretManagerSource("p", 300, client_factory=ZeroCrc)
    with pytest.raises(SecretUnavailableError, match="data corruption"):
        source.get("s")


def test_webhook_tokens_shorter_than_32_characters_are_refused_with_one_log_line(make, capsys):
    secrets, fake, _ = make()
    fake.values["measure-webhook-tokens"] = f"x\n{T1}\nshort-token\n"
    for _ in range(50):
        assert secrets.webhook_tokens() == (T1,)
    lines = [line for line in capsys.readouterr().out.splitlines() if "shorter than 32" in line]
    assert len(lines) == 1, lines
    assert '"lines":[1,3]' in lines[0] and "short-token" not in lines[0]
    assert '"secret_id":"measure-webhook-tokens"' in lines[0]


def test_warm_imports_the_library_and_builds_the_client_in_the_background_without_an_access():
    code = ("import sys, time; from measure.config import load; from measure.gcp.secrets import Secrets; "
            f"s = Secrets(load({BASE!r})); began = time.perf_counter(); s.warm(); "
            "print(round(time.perf_counter() - began, 3)); s.source._warming.join(30); "
            "print('google.cloud.secretmanager' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GOOGLE_CLOUD_PROJECT": "p", "NO_GCE_CHECK": "True",
                               "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent"})
    lines = done.stdout.splitlines()
    assert float(lines[0]) < 0.05, "warm() waited for the import"
    assert lines[-1] == "True", done.stdout + done.stderr  # imported (building a client needs credentials)
