"""Credentials through google-auth against a local metadata-server stand-in: one token fetch per
token lifetime however many threads call, a failed fetch retried, a 401 answered by a refresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gcp.standins import MetadataServer, PubsubStandIn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers():
    made = []

    def make(cls, *args, **kwargs):
        made.append(cls(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def probe(metadata: MetadataServer, pubsub: PubsubStandIn, tmp_path: Path, *, threads: int = 1,
          seconds: float = 0.0) -> dict:
    """The deployed path in a fresh process, on Google Cloud as far as google-auth can tell."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "K_SERVICE")}
    env.update(GCE_METADATA_HOST=metadata.host, GCE_METADATA_IP=metadata.host, GOOGLE_CLOUD_PROJECT="p",
               CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"), NO_GCE_CHECK="False")
    done = subprocess.run([sys.executable, "-m", "tests.gcp.credentials_probe", "--pubsub", pubsub.url,
                           "--threads", str(threads), "--seconds", str(seconds)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def tokens_used(pubsub: PubsubStandIn) -> list[str]:
    return [headers.get("Authorization", "") for _, headers in pubsub.calls("publish")]


def test_a_token_with_less_than_five_minutes_left_is_not_fetched_again_on_every_call(servers, tmp_path):
    # The metadata server hands out its cached token until 5 minutes before it expires; a client
    # refreshing at 5 minutes would fetch again on every call. 230 s: fresh for 5 s under google-auth.
    metadata = servers(MetadataServer, lifetime=230)
    pubsub = servers(PubsubStandIn)
    result = probe(metadata, pubsub, tmp_path, threads=16, seconds=2.0)

    assert result["errors"] == []
    assert result["calls"] >= 100, result
    assert metadata.token_fetches <= 2, f"{metadata.token_fetches} token fetches for {result['calls']} calls"
    assert all(token.startswith("Bearer tok-") for token in tokens_used(pubsub))


def test_a_token_near_expiry_is_refreshed_once_in_the_background(servers, tmp_path):
    # 226 s: inside google-auth's 3 min 45 s refresh window after 1 s, so a 3 s run sees refreshes,
    # each made once for all 16 threads, while calls go on with the still-valid token.
    metadata = servers(MetadataServer, lifetime=226)
    pubsub = servers(PubsubStandIn)
    result = probe(metadata, pubsub, tmp_path, threads=16, seconds=3.0)

    assert result["errors"] == []
    assert 2 <= metadata.token_fetches <= 6, f"{metadata.token_fetches} token fetches for {result['calls']} calls"
    assert len(set(tokens_used(pubsub))) >= 2  # the refreshed token was used


def test_a_failed_token_fetch_is_retried(servers, tmp_path):
    metadata = servers(MetadataServer, fail_tokens=2)
    pubsub = servers(PubsubStandIn)
    result = probe(metadata, pubsub, tmp_path)

    assert result == {"calls": 1, "errors": []}
    assert metadata.token_fetches == 3
    assert tokens_used(pubsub) == ["Bearer tok-1"]


def test_a_401_refreshes_the_token_and_the_call_is_made_again(servers, tmp_path):
    metadata = servers(MetadataServer)
    pubsub = servers(PubsubStandIn, script=[(401, "UNAUTHENTICATED", {})])
    result = probe(metadata, pubsub, tmp_path)

    assert result == {"calls": 1, "errors": []}
    assert tokens_used(pubsub) == ["Bearer tok-1", "Bearer tok-2"]
    assert metadata.token_fetches == 2


def test_the_session_keeps_a_connection_for_each_of_the_instances_threads(servers):
    import threading

    from measure.gcp import credentials, googleapi

    pubsub = servers(PubsubStandIn)
    pubsub.delay = 0.05  # long enough that all 16 calls of a round are in flight together
    api = googleapi.Api(pubsub.url, credentials.http(None, 16))
    for _ in range(4):
        threads = [threading.Thread(target=api.call, args=("POST", "/v1/t:publish", {"messages": []}),
                                    kwargs={"timeout": 10}) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(pubsub.calls("publish")) == 64
    assert len(pubsub.connections) == 16  # a pool smaller than THREADS would open new ones every round
