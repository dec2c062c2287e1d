"""Log scan: no private key, consumer key, webhook token or full IP address in any log line.

The servers' logs (their whole stdout and stderr, as Cloud Logging would keep it) and this
process's output are read back after runs that go through every path that logs: accepted and
refused webhook calls (bad tokens, private and malformed addresses, X-Forwarded-For), deliveries,
transient failures and retries, sweeps, rejections and dead letters. `leaks()` is also what
tests/test_chaos.py applies to the logs of the chaos run.

A full address is any IPv4 dotted quad that is not loopback or unspecified (the servers' bind
address is fine) and not masked to its /24 (`175.124.248.0/24`), and any global IPv6 address not
masked to its /48.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from measure import events
from measure.config import load
from measure.dev.emulator import create_topology
from measure.dev.sandbox import Sandbox
from measure.pipeline.delivery import Delivery
from measure.pipeline.message import Envelope, event_message
from measure.tune.client import MeasurementClient
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, TOKENS, base_env, seed_form

SECRETS = {"private key": PRIVATE_KEY, "consumer key": CONSUMER_KEY,
           **{f"webhook token {i}": token for i, token in enumerate(TOKENS)}}
SEED_IP = "175.124.248.15"
IPV6 = "2001:4860:4860::8888"

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def leaks(text: str) -> list[str]:
    """What in `text` must never be logged: the test keys and tokens, and unmasked addresses."""
    found = [f"{name} ({secret[:4]}...)" for name, secret in SECRETS.items() if secret in text]
    for match in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        masked = text.startswith("/24", match.end()) and match.group().endswith(".0")
        if not (masked or address.is_loopback or address.is_unspecified):
            found.append(f"IPv4 address {match.group()} in {_context(text, match)!r}")
    for match in _IPV6.finditer(text):
        try:
            address = ipaddress.IPv6Address(match.group())
        except ValueError:
            continue  # 12:30:45 and other look-alikes
        if address.is_global and not text.startswith("/48", match.end()):
            found.append(f"IPv6 address {match.group()} in {_context(text, match)!r}")
    return found


def _context(text: str, match: re.Match) -> str:
    return text[max(0, match.start() - 60):match.end() + 20]


# --- the scanner itself: it must find what it looks for -----------------------------------------


@pytest.mark.parametrize("text", [
    f'{{"message":"x","ip":"{SEED_IP}"}}',
    f"reason: Invalid device_ip {SEED_IP}.",
    "from 8.8.8.8:443",
    f"client {IPV6} said",
    f"Authorization: Bearer {TOKENS[1]}",
    f"signing with {PRIVATE_KEY}",
    f"mat-consumer-key={CONSUMER_KEY}",
    "10.1.2.3 is private",  # a private address is still a person's address
])
def test_the_scanner_finds_secrets_and_full_addresses(text):
    assert leaks(text)


@pytest.mark.parametrize("text", [
    '{"ip":"175.124.248.0/24","device_ip":"2001:4860::/48"}',
    "Listening at: http://127.0.0.1:8080 (1234)",
    "bind 0.0.0.0:8080",
    "version 3.10.2 at 12:30:45, python 3.11.2",
    "event_id 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d, log_id b2f3ce90d42e12e895-20140709-877",
    "OID 1.3.6.1.4.1 in a certificate",
])
def test_the_scanner_lets_masked_and_harmless_text_through(text):
    assert leaks(text) == []


# --- every path that logs -------------------------------------------------------------------------


def server_logs(request) -> dict[str, str]:
    return {str(path): Path(path).read_text(errors="replace") for _, path in request.node.measure_logs}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_no_key_token_or_address_in_any_log_line(make_topology, function_server, request, capfd):
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as sandbox:
        topology = make_topology()
        env = {**base_env(sandbox.serve_url), **topology.env(), "MEASURE_RETRY_SCHEDULE": "0,0,0"}
        receive = function_server("receive", env).rstrip("/") + "/measure"
        send = function_server("send", env, signature_type="cloudevent")
        # A second send whose private key is wrong: every attempt is rejected and dead-lettered.
        wrong_key = function_server("send", {**env, "MEASURE_PRIVATE_KEY": "not-the-key"},
                                    signature_type="cloudevent")
        sweep = function_server("sweep", env)
        create_topology(topology.project, emulator_host=topology.emulator_host, push_endpoint=send,
                        names=topology.names)
        auth = {"Authorization": f"Bearer {TOKENS[0]}"}
        forwarded = {**auth, "X-Forwarded-For": f"{SEED_IP}, 10.0.0.1", "X-Real-IP": SEED_IP,
                     "X-Cloud-Trace-Context": "0af7651916cd43dd8448eb211c80319c/1;o=1"}

        # Refused calls: tokens that are nearly right, the right token in the wrong scheme, bad addresses.
        refused = [
            ({"Authorization": f"Bearer {TOKENS[0]}x"}, seed_form()),
            ({"Authorization": f"Basic {TOKENS[1]}"}, seed_form()),
            ({"Authorization": f"Bearer {PRIVATE_KEY}"}, seed_form()),
            (auth, seed_form(ip="10.1.2.3")),
            (auth, seed_form(ip=f"{SEED_IP}%eth0")),
            (auth, seed_form(ip=f"{SEED_IP}.7")),
            (auth, seed_form(user_id=CONSUMER_KEY, consumer_key=CONSUMER_KEY)),
        ]
        for headers, form in refused:
            response = requests.post(receive, data=form, headers=headers, timeout=30)
            assert 400 <= response.status_code < 500, response.text

        # Accepted calls: delivered first time, or after 503s through send's retries and a sweep.
        sandbox.set_faults(status={503: 0.5}, seed=3)
        accepted = []
        for i in range(6):
            form = seed_form(user_id=f"scan-{i}", ip=IPV6 if i % 2 else SEED_IP)
            response = requests.post(receive, data=form, headers=forwarded, timeout=30)
            assert response.status_code == 202, response.text
            accepted += response.json()["event_ids"]
        batch = [seed_form(user_id=f"scan-batch-{i}", ip=f"::ffff:{SEED_IP}") for i in range(3)]
        response = requests.post(receive, json=batch, headers=forwarded, timeout=30)
        assert response.status_code == 202, response.text
        accepted += response.json()["event_ids"]
        wait_for(lambda: len(sandbox.requests()) >= len(accepted), 30, "the first attempts")
        sandbox.clear_faults()
        # An event routed around send's open circuit is due again only 30 s later: sweep until then.
        deadline = time.monotonic() + 90
        while not set(accepted) <= set(sandbox.accepted_ids()) and time.monotonic() < deadline:
            requests.post(sweep, timeout=60)
            time.sleep(0.5)
        assert set(accepted) <= set(sandbox.accepted_ids())

        # Rejected by the API: the dead-letter path logs its reason.
        (event,) = events.validate([seed_form(user_id="scan-rejected")], site_ids=SITE_IDS)
        data, attributes = event_message(event)
        response = requests.post(wrong_key, json={
            "message": {"data": base64.b64encode(data).decode(), "attributes": attributes,
                        "messageId": "1", "publishTime": "2024-08-19T00:00:00Z"},
            "subscription": "projects/p/subscriptions/s"}, timeout=30)
        assert response.status_code < 300, response.text
        dead = topology.pull(topology.names.dead_letter_subscription, expect=1, timeout=5)
        assert json.loads(dead[0].message.data)["dead"]["kind"] == "rejected"

    out, err = capfd.readouterr()
    texts = server_logs(request)
    assert all(texts.values()), "a server wrote nothing: the scan would prove nothing"
    texts["test output"] = out + err
    joined = "\n".join(texts.values())
    assert "delivery" in joined and "dead-lettered" in joined and "sweep finished" in joined
    found = {name: leaks(text) for name, text in texts.items()}
    assert not any(found.values()), {name: hits[:5] for name, hits in found.items() if hits}


class _EchoingAPI(BaseHTTPRequestHandler):
    """A Measurement API that refuses an event naming its device_ip, as an API well may."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"success": False, "log_id": None, "message": [f"Invalid device_ip {SEED_IP}"]}).encode()
        self.send_response(400)
        self.send_header("X-MAT-Responder", "api")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Dropped:
    def publish_one(self, topic, message):
        return "1"


def test_an_api_answer_naming_the_address_is_masked_in_the_logs(capfd):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/serve"
        config = load(base_env(url))
        delivery = Delivery(config, MeasurementClient(url, lambda: (CONSUMER_KEY, PRIVATE_KEY)), _Dropped())
        (event,) = events.validate([seed_form()], site_ids=SITE_IDS)
        assert delivery.attempt(Envelope(event), "send").result == "dead_lettered"
    finally:
        server.shutdown()
        server.server_close()
    out, _ = capfd.readouterr()
    assert "dead-lettered" in out
    assert leaks(out) == []
