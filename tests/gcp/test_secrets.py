"""Secret Manager has no emulator: faked at the client boundary, accesses counted."""

import threading
from types import SimpleNamespace

import pytest

from measure.config import load
from measure.gcp.secrets import SecretManagerSource, Secrets, SecretUnavailableError

BASE = {"MEASURE_ADVERTISER_ID": "877", "MEASURE_SITE_IDS": '{"pc/steam": "2960"}', "GOOGLE_CLOUD_PROJECT": "p"}


class FakeSecretManager:
    """Stands in for SecretManagerServiceClient.access_secret_version; counts every access."""

    def __init__(self, values):
        self.values = values
        self.accesses = []
        self.fail = False
        self._lock = threading.Lock()

    def access_secret_version(self, request):
        with self._lock:
            self.accesses.append(request["name"])
        if self.fail:
            raise ConnectionError("secret manager down")
        secret_id = request["name"].split("/")[3]
        return SimpleNamespace(payload=SimpleNamespace(data=self.values[secret_id].encode()))


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def make(values, ttl=300):
    fake, clock = FakeSecretManager(dict(values)), Clock()
    source = SecretManagerSource("p", ttl, client_factory=lambda: fake, clock=clock)
    return Secrets(load(BASE), source), fake, clock


VALUES = {"measure-consumer-key": "ck\n", "measure-private-key": "pk", "measure-webhook-tokens": "t1\n\n t2 \n"}


def test_reads_latest_version_and_strips():
    secrets, fake, _ = make(VALUES)
    assert secrets.credentials() == ("ck", "pk")
    assert secrets.webhook_tokens() == ("t1", "t2")
    assert "projects/p/secrets/measure-consumer-key/versions/latest" in fake.accesses


def test_one_access_per_secret_per_ttl_for_ten_thousand_events_across_threads():
    secrets, fake, clock = make(VALUES)

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


def test_refresh_failure_keeps_last_good_value_and_logs_without_the_value(capsys):
    secrets, fake, clock = make(VALUES)
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


def test_no_value_ever_is_a_clear_error():
    secrets, fake, _ = make(VALUES)
    fake.fail = True
    with pytest.raises(SecretUnavailableError, match="measure-webhook-tokens"):
        secrets.webhook_tokens()


def test_local_values_take_the_place_of_secrets_without_any_access():
    fake = FakeSecretManager({})
    local = {"MEASURE_CONSUMER_KEY": "lck", "MEASURE_PRIVATE_KEY": "lpk", "MEASURE_WEBHOOK_TOKENS": "a\nb"}
    config = load({**BASE, **local})
    secrets = Secrets(config, SecretManagerSource("p", 300, client_factory=lambda: fake))
    assert secrets.credentials() == ("lck", "lpk") and secrets.webhook_tokens() == ("a", "b")
    assert fake.accesses == []
