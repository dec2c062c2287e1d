"""Secret Manager has no emulator: SecretManagerServiceClient is faked at the library boundary (the
class itself, monkeypatched), and every access is counted."""

import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import ClassVar

import google_crc32c
import pytest
from google.cloud import secretmanager

from measure.config import load
from measure.gcp.secrets import SecretManagerSource, Secrets, SecretUnavailableError

BASE = {"MEASURE_ADVERTISER_ID": "877", "MEASURE_SITE_IDS": '{"pc/steam": "2960"}', "GOOGLE_CLOUD_PROJECT": "p"}


class FakeSecretManager:
    """Stands in for SecretManagerServiceClient: answers access_secret_version like the service
    (payload.data and its payload.data_crc32c), counts every access and every client built."""

    values: ClassVar[dict[str, str]] = {}
    accesses: ClassVar[list[str]] = []
    built: ClassVar[list[dict]] = []
    fail = False
    corrupt = False
    _lock = threading.Lock()

    def __init__(self, **kwargs):
        FakeSecretManager.built.append(kwargs)

    def access_secret_version(self, request):
        with self._lock:
            self.accesses.append(request["name"])
        if self.fail:
            raise ConnectionError("secret manager down")
        data = self.values[request["name"].split("/")[3]].encode()
        crc = google_crc32c.value(data)
        if self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])  # one bit flipped on the way
        return SimpleNamespace(payload=SimpleNamespace(data=data, data_crc32c=crc))


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(secretmanager, "SecretManagerServiceClient", FakeSecretManager)
    monkeypatch.setattr(FakeSecretManager, "values", dict(VALUES))
    monkeypatch.setattr(FakeSecretManager, "accesses", [])
    monkeypatch.setattr(FakeSecretManager, "built", [])
    monkeypatch.setattr(FakeSecretManager, "fail", False)
    monkeypatch.setattr(FakeSecretManager, "corrupt", False)
    return FakeSecretManager


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


VALUES = {"measure-consumer-key": "ck\n", "measure-private-key": "pk", "measure-webhook-tokens": "t1\n\n t2 \n"}


def test_reads_latest_version_and_strips(make):
    secrets, fake, _ = make()
    assert secrets.credentials() == ("ck", "pk")
    assert secrets.webhook_tokens() == ("t1", "t2")
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
    assert secrets.credentials() == ("ck", "pk2")
    assert len(fake.accesses) == 5


def test_refresh_failure_keeps_last_good_value_and_logs_without_the_value(make, capsys):
    secrets, fake, clock = make()
    assert secrets.credentials() == ("ck", "pk")
    fake.fail = True
    clock.now = 400
    assert secrets.credentials() == ("ck", "pk")
    out = capsys.readouterr().out
    assert "keeping the last good value" in out and "measure-private-key" in out
    assert '"pk"' not in out and "ck\\n" not in out
    # It does not hammer Secret Manager on every event while it is down.
    before = len(fake.accesses)
    secrets.credentials()
    assert len(fake.accesses) == before


def test_no_value_ever_is_a_clear_error(make):
    secrets, fake, _ = make()
    fake.fail = True
    with pytest.raises(SecretUnavailableError, match="measure-webhook-tokens"):
        secrets.webhook_tokens()


def test_local_values_take_the_place_of_secrets_without_any_access(fake):
    local = {"MEASURE_CONSUMER_KEY": "lck", "MEASURE_PRIVATE_KEY": "lpk", "MEASURE_WEBHOOK_TOKENS": "a\nb"}
    secrets = Secrets(load({**BASE, **local}), SecretManagerSource("p", 300))
    assert secrets.credentials() == ("lck", "lpk") and secrets.webhook_tokens() == ("a", "b")
    assert fake.accesses == [] and fake.built == []


def test_the_client_is_built_once_on_the_first_read(make):
    secrets, fake, clock = make()
    assert fake.built == []
    secrets.credentials()
    clock.now = 301
    secrets.webhook_tokens()
    assert fake.built == [{}]
    assert len(fake.accesses) == 3


def test_a_payload_whose_crc32c_does_not_match_is_refused(make):
    secrets, fake, _ = make()
    fake.corrupt = True
    with pytest.raises(SecretUnavailableError, match=r"measure-webhook-tokens.*data corruption"):
        secrets.webhook_tokens()


def test_a_corrupt_refresh_keeps_the_last_good_value(make, capsys):
    secrets, fake, clock = make()
    assert secrets.webhook_tokens() == ("t1", "t2")
    fake.values["measure-webhook-tokens"] = "t3"
    fake.corrupt = True
    clock.now = 301
    assert secrets.webhook_tokens() == ("t1", "t2")
    assert "data corruption" in capsys.readouterr().out


def test_the_library_is_imported_only_on_the_first_secret_read():
    code = ("import sys; from measure.config import load; from measure.gcp.secrets import Secrets; "
            f"s = Secrets(load({{**{BASE!r}, 'MEASURE_WEBHOOK_TOKENS': 'a'}})); s.webhook_tokens(); "
            "print('google.cloud.secretmanager' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
