"""Security checks that are not about input: token comparison, rotation, egress, what a deployment loads.

- Tokens are compared with hmac.compare_digest against every valid token, matching or not, so the
  time taken does not say which token (or how much of one) matched.
- Rotation: while the webhook-token secret holds two lines both are valid; once the old line is
  removed it stops working within the secret TTL, with no redeploy.
- Egress: the Measurement API client refuses any endpoint that is not https, except loopback (the
  sandbox), however the URL is disguised, and never follows a redirect.
- A deployment never loads the sandbox or the development tools. (tests/test_terraform.py checks that
  Terraform cannot set the local secret overrides or point the endpoint at http or loopback.)
"""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import flask
import pytest

from measure.config import ConfigError, check_endpoint, load
from measure.dev.devstack import REPO_ROOT
from measure.functions import receive as webhook
from measure.gcp.secrets import SecretManagerSource, Secrets
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind
from tests.gcp.standins import FakeSecretManager
from tests.helpers import CONSUMER_KEY, PRIVATE_KEY, TOKENS, base_env, seed_form

# --- tokens -----------------------------------------------------------------------------------


@pytest.fixture
def compare_calls(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    return calls


VALID = ("first-token", "second-token", "third-token")


@pytest.mark.parametrize(("presented", "expected"), [
    ("first-token", True),  # a match at the front does not stop the loop
    ("third-token", True),
    ("second-token", True),
    ("nope", False),
    ("first-toke", False),  # a prefix
    ("first-token-and-more", False),
    ("", False),
    ("f\u0456rst-token", False),  # a confusable, not ASCII: compare_digest on str would raise
    ("first-token\x00", False),
])
def test_every_valid_token_is_compared_in_constant_time_without_early_exit(compare_calls, presented, expected):
    assert webhook.token_valid(presented, VALID) is expected
    assert len(compare_calls) == len(VALID)
    assert [b for _, b in compare_calls] == [t.encode() for t in VALID]
    assert all(isinstance(a, bytes) for a, _ in compare_calls)


class RecordingPublisher:
    def __init__(self):
        self.published = []

    def publish(self, topic, messages):
        self.published.extend(messages)
        return ["1"] * len(messages)


_app = flask.Flask("security")


def post(hook: webhook.Webhook, token: str) -> int:
    with _app.test_request_context("/measure", method="POST", data=seed_form(),
                                   headers={"Authorization": f"Bearer {token}"}):
        return hook.handle(flask.request)[1]


def test_the_webhook_compares_the_presented_token_with_each_valid_one(compare_calls):
    hook = webhook.Webhook(load(base_env()), lambda: TOKENS, RecordingPublisher())
    for token in (TOKENS[0], TOKENS[1], "wrong"):
        compare_calls.clear()
        post(hook, token)
        assert len(compare_calls) == len(TOKENS)


def test_rotation_two_tokens_valid_together_then_the_old_one_stops_working():
    env = {k: v for k, v in base_env().items() if k != "MEASURE_WEBHOOK_TOKENS"}
    config = load({**env, "GOOGLE_CLOUD_PROJECT": "p", "MEASURE_SECRET_TTL": "300"})
    old, new = "old-token-" + "o" * 30, "new-token-" + "n" * 30
    manager, now = FakeSecretManager({config.webhook_tokens_secret: f"{old}\n"}), [0.0]
    source = SecretManagerSource("p", 300, client_factory=manager, clock=lambda: now[0])
    secrets = Secrets(config, source)
    publisher = RecordingPublisher()
    hook = webhook.Webhook(config, secrets.webhook_tokens, publisher)
    assert (post(hook, old), post(hook, new)) == (202, 401)

    # step 1: add the new line (a CRLF editor, a blank line)
    manager.values[config.webhook_tokens_secret] = f"{old}\r\n{new}\n\n"
    now[0] += 301
    assert post(hook, old) == 202  # the TTL passed: read again in the background meanwhile
    assert source.wait_idle()
    assert (post(hook, old), post(hook, new)) == (202, 202)

    manager.values[config.webhook_tokens_secret] = f"{new}\n"  # step 2: drop the old one
    now[0] += 299
    assert post(hook, old) == 202  # still within the TTL of the last read
    now[0] += 2
    post(hook, new)
    assert source.wait_idle()
    assert (post(hook, old), post(hook, new)) == (401, 202)
    assert len(publisher.published) == 7


# --- egress ---------------------------------------------------------------------------------------

REFUSED = [
    "http://api.example.com/serve",
    "http://877.measure.mobileapptracking.com/serve",
    "HTTP://877.measure.mobileapptracking.com/serve",
    "http://127.0.0.1@evil.example/serve",  # userinfo that looks like loopback
    "http://evil.example#@127.0.0.1/serve",
    "http://evil.example?@127.0.0.1/serve",
    "http://localhost.evil.example/serve",
    "http://127.0.0.1.nip.io/serve",
    "http://2130706433/serve",  # 127.0.0.1 as one number: not an address Python reads, so not trusted
    "http://0x7f.1/serve",
    "http://10.0.0.1/serve",
    "http://169.254.169.254/computeMetadata/v1/",  # the metadata server
    "ftp://127.0.0.1/serve",
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/",
    "http:///serve",
    "//127.0.0.1/serve",
    "127.0.0.1:8090/serve",
    "",
]
ALLOWED = [
    "https://877.measure.mobileapptracking.com/serve",
    "https://staging.example.com:8443/serve",
    "http://127.0.0.1:8090/serve",
    "http://127.9.9.9/serve",
    "http://localhost:8090/serve",
    "http://[::1]:8090/serve",
]


@pytest.mark.parametrize("url", REFUSED)
def test_the_client_refuses_egress_that_is_not_https_or_loopback(url):
    with pytest.raises(ConfigError):
        check_endpoint(url)
    with pytest.raises(ConfigError):
        MeasurementClient(url, lambda: (CONSUMER_KEY, PRIVATE_KEY))
    if url:  # an empty MEASURE_ENDPOINT means the default https endpoint
        with pytest.raises(ConfigError):
            load(base_env(url))


@pytest.mark.parametrize("url", ALLOWED)
def test_https_anywhere_and_http_only_to_loopback(url):
    assert MeasurementClient(url, lambda: (CONSUMER_KEY, PRIVATE_KEY)).endpoint == url


def serve(handler_class) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_redirect_is_never_followed():
    hits = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    target, target_url = serve(Target)

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", target_url + "/stolen")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirect, redirect_url = serve(Redirect)
    try:
        outcome = MeasurementClient(redirect_url + "/serve", lambda: (CONSUMER_KEY, PRIVATE_KEY)).deliver(
            {"action": "session", "transaction_id": "t"})
    finally:
        for server in (target, redirect):
            server.shutdown()
            server.server_close()
    assert outcome.kind is Kind.TRANSIENT and outcome.status == 307
    assert hits == []


# --- what a deployment loads ----------------------------------------------------------------------

DEV_ONLY = ("measure.dev.sandbox", "measure.dev.devstack", "measure.ops.cli", "measure.ops.backfill",
            "measure.ops.deadletters", "measure.dev.emulator", "measure.tune.links", "measure.ops.resolution")


def test_a_deployment_never_loads_the_sandbox_or_the_development_tools():
    """main.py as Cloud Functions imports it, with each entry point's objects built."""
    script = """
import json, sys
import main
from measure import runtime
runtime.webhook(); runtime.delivery(); runtime.sweeper()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("measure"))))
"""
    env = {**base_env("https://877.measure.mobileapptracking.com/serve"),
           "PUBSUB_EMULATOR_HOST": "127.0.0.1:9", "GOOGLE_CLOUD_PROJECT": "p", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {"measure.functions.receive", "measure.pipeline.delivery", "measure.functions.sweep"} <= loaded
    assert not loaded & set(DEV_ONLY), sorted(loaded & set(DEV_ONLY))
