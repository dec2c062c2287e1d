"""Every Measurement API call of seed 004, rewritten as a webhook event, end to end (issue 27).

Each test sends one seed example to the webhook as a game's telemetry server would (the TRACKS
guide's call, seed 000), then follows it: `POST /measure/debug` shows the request with no problem
and no warning; `POST /measure` publishes it to the real Pub/Sub emulator; `send`'s logic
(measure.functions.send.Sender over measure.pipeline.delivery) takes it off the events topic and
signs it to the sandbox, which checks the signature. What the sandbox received must be exactly
the seed's parameters, plus the two every request carries for idempotency.

Where each seed parameter comes from:
  action                  the event's event_name ("install"; "game_open" is action=session),
                          site_event_id (action=conversion) or event_ref (action=<ref>)
  advertiser_id           MEASURE_ADVERTISER_ID (the seeds' YOUR_ADVERTISER_ID; 877 in the walk-through)
  site_id                 MEASURE_SITE_IDS for the event's platform/storefront (ios/appstore -> 2960)
  sdk, response_format    set by measure on every request ("server", "json")
  user_id, device_ip      the event's user_id and ip
  ios_ifa, ios_ifv, ios_ad_tracking_disabled, device_brand, device_model, device_carrier,
  country_code            the event's fields of the same names, passed through
  mat-consumer-key, mat-signature, mat-timestamp
                          headers, not parameters: the keys from configuration (MEASURE_CONSUMER_KEY,
                          MEASURE_PRIVATE_KEY), the timestamp of the attempt
Added by measure, not in the seeds: system_date (the event's time_stamp) and transaction_id (its
event_id), which make a retry the same request to TUNE.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from measure import config as config_module
from measure.dev.sandbox import Sandbox
from measure.functions.send import Sender
from measure.gcp.publisher import Publisher
from measure.ops.resolution import EventDefinition
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.delivery import Delivery
from measure.tune.client import MeasurementClient
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, app_client, base_env, bearer

SITE_ID = "2960"  # every seed example's site_id
# The device of seed 004's Python, Java and PHP examples, parameter for parameter.
SEED_DEVICE = {
    "ios_ifa": "AAAAAA-BBBB-CCCC-11111-2222222222222",
    "ios_ad_tracking_disabled": "0",
    "ios_ifv": "ZZZZZZ-BBBB-CCCC-11111-2222222222222",
    "user_id": "10000000001",
    "device_ip": "123.123.123.123",
    "device_brand": "Apple",
    "device_model": "iPhone5,2",
    "device_carrier": "Verizon",
    "country_code": "US",
}
# The events guide's worked example: two events of type login, the second reached only by its ref.
DEFINITIONS = [EventDefinition(1, "Login", "login"), EventDefinition(2, "Login2", "login")]


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER, definitions=DEFINITIONS).start() as box:
        yield box


@pytest.fixture
def client(topology, sandbox, monkeypatch):
    env = {**base_env(sandbox.serve_url), "MEASURE_SITE_IDS": json.dumps({"ios/appstore": SITE_ID})}
    return app_client(monkeypatch, "receive", env)


def webhook_event(seed: dict[str, str], event_name: str | None, **fields: str) -> dict[str, str]:
    """A seed call as the telemetry server's webhook event: the device's parameters under their own
    names, device_ip as ip, the platform/storefront whose site_id is the seed's, the time now."""
    event = {name: value for name, value in seed.items()
             if name not in ("action", "advertiser_id", "site_id", "sdk", "response_format", "device_ip")}
    event.update(ip=seed["device_ip"], time_stamp=str(int(time.time())), platform="ios", storefront="appstore",
                 **fields)
    if event_name is not None:
        event["event_name"] = event_name
    return event


def through_the_pipeline(client, topology, sandbox, body: dict) -> tuple[dict, dict]:
    """(what /measure/debug showed, what the sandbox received) for one event sent as `body`."""
    shown = client.post("/measure/debug", headers={**bearer(), **body.get("headers", {})},
                        **{k: v for k, v in body.items() if k != "headers"})
    assert shown.status_code == 200, shown.get_data(as_text=True)
    answer = shown.get_json()
    assert answer["valid"] and answer["problems"] == [], answer
    (event,) = answer["events"]
    assert event["warnings"] == [], event["warnings"]

    accepted = client.post("/measure", headers={**bearer(), **body.get("headers", {})},
                           **{k: v for k, v in body.items() if k != "headers"})
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    assert accepted.get_json()["event_ids"] == [event["event_id"]]
    (message,) = topology.pull(topology.names.events_tap_subscription, expect=1)
    config = dataclasses.replace(config_module.load(), retry_schedule=(0,))
    delivery = Delivery(config, MeasurementClient(config.endpoint, lambda: (CONSUMER_KEY, PRIVATE_KEY)),
                        Publisher(config.project), CircuitBreaker())
    assert Sender(delivery).process(message.message.data, dict(message.message.attributes)).result == "delivered"
    (seen,) = sandbox.requests(transaction_id=event["event_id"])
    assert (seen["method"], seen["signature"], seen["outcome"]) == ("POST", "valid", "accepted")
    assert event["request"] == seen["params"]  # debug showed exactly what was signed
    return event, seen


def assert_exactly_the_seed(seen: dict, seed: dict[str, str], event: dict, **also: str) -> None:
    added = {"transaction_id": event["event_id"], "system_date": seen["params"]["system_date"], **also}
    assert seen["params"] == {**seed, **added}


def _form(event: dict) -> dict:
    return {"data": event}


def _json(event: dict) -> dict:
    return {"json": event}


def _ndjson(event: dict) -> dict:
    return {"data": json.dumps(event), "headers": {"Content-Type": "application/x-ndjson"}}


# --- seed 004's examples, one test each -------------------------------------------------------------


def test_the_python_install_example(client, topology, sandbox):
    """Seed 004, "Example Python Code": `params = {'action': 'install', 'advertiser_id': advertiser_id,
    'sdk': 'server', 'site_id': '2960', 'ios_ifa': ..., 'response_format': 'json'}`, sent as the
    webhook's form call (the TRACKS guide's `data=payload`)."""
    seed = {"action": "install", "advertiser_id": ADVERTISER, "sdk": "server", "site_id": SITE_ID, **SEED_DEVICE,
            "response_format": "json"}
    event, seen = through_the_pipeline(client, topology, sandbox, _form(webhook_event(seed, "install")))
    assert_exactly_the_seed(seen, seed, event)


def test_the_java_install_example(client, topology, sandbox):
    """Seed 004, "Example Java Code": `encodeUrlParams` puts action=install, advertiser_id,
    country_code=US, device_brand=Apple, device_carrier=Verizon, device_ip, device_model=iPhone5,2,
    ios_ad_tracking_disabled=0, ios_ifa, ios_ifv, response_format=json, sdk=server, site_id,
    user_id=10000000001; sent as a JSON object."""
    seed = {"action": "install", "advertiser_id": ADVERTISER, "country_code": "US", "device_brand": "Apple",
            "device_carrier": "Verizon", "device_ip": "123.123.123.123", "device_model": "iPhone5,2",
            "ios_ad_tracking_disabled": "0", "ios_ifa": "AAAAAA-BBBB-CCCC-11111-2222222222222",
            "ios_ifv": "ZZZZZZ-BBBB-CCCC-11111-2222222222222", "response_format": "json", "sdk": "server",
            "site_id": SITE_ID, "user_id": "10000000001"}
    event, seen = through_the_pipeline(client, topology, sandbox, _json(webhook_event(seed, "install")))
    assert_exactly_the_seed(seen, seed, event)


def test_the_php_get_session_example(client, topology, sandbox):
    """Seed 004, "GET Request with PHP": `$param_str = 'action=session' . '&advertiser_id=' ...
    '&response_format=json'`; the webhook's own call is a form POST, and `send` always POSTs (the
    seed's signing covers both); event_name game_open is action=session."""
    seed = {"action": "session", "advertiser_id": ADVERTISER, "sdk": "server", "site_id": SITE_ID, **SEED_DEVICE,
            "response_format": "json"}
    event, seen = through_the_pipeline(client, topology, sandbox, _form(webhook_event(seed, "game_open")))
    assert_exactly_the_seed(seen, seed, event)


def test_the_php_post_session_example(client, topology, sandbox):
    """Seed 004, "POST Request with PHP": `$params = array(action => 'session', advertiser_id =>
    $advertiser_id, sdk => 'server', response_format => 'json', site_id => '2960', ...)`, sent as
    NDJSON with event_name left out (the webhook's default, game_open, is the session)."""
    seed = {"action": "session", "advertiser_id": ADVERTISER, "sdk": "server", "response_format": "json",
            "site_id": SITE_ID, **SEED_DEVICE}
    event, seen = through_the_pipeline(client, topology, sandbox, _ndjson(webhook_event(seed, None)))
    assert_exactly_the_seed(seen, seed, event)


def test_the_parameter_array_of_the_signing_walk_through(client, topology, sandbox):
    """Seed 004, "Measurement Parameters": `$params = array(action => 'session', advertiser_id => 877,
    site_id => '2960', ios_ifa => 'aaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee')`. The webhook requires a
    user and an address, which the walk-through leaves out: they are the TRACKS guide's
    (user_id 1a23fd44c21f8l5r, ip 175.124.248.15) and are sent besides, as are sdk and
    response_format, which measure sets on every request."""
    seed = {"action": "session", "advertiser_id": "877", "site_id": SITE_ID,
            "ios_ifa": "aaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
    tracks = {"user_id": "1a23fd44c21f8l5r", "device_ip": "175.124.248.15"}
    raw = webhook_event({**seed, **tracks}, "game_open")
    event, seen = through_the_pipeline(client, topology, sandbox, {"json": [raw]})
    assert_exactly_the_seed(seen, seed, event, **tracks, sdk="server", response_format="json")


# --- the events guide's calls: by id, by ref, install ------------------------------------------------


def test_a_custom_event_by_site_event_id_and_tune_s_other_type_is_a_type_mismatch_warning(
        client, topology, sandbox, capsys):
    """The events guide: "reference the event ID" -> action=conversion&site_event_id=2. Event 2
    ("Login2") is defined with type login, so the sandbox answers site_event_type=login, the
    guide's second "Potential Conflict": send logs the WARNING that Terraform's measure_type_mismatch
    metric counts (jsonPayload.message="type mismatch")."""
    seed = {"action": "conversion", "site_event_id": "2", "advertiser_id": ADVERTISER, "sdk": "server",
            "site_id": SITE_ID, "response_format": "json", **SEED_DEVICE}
    event, seen = through_the_pipeline(client, topology, sandbox, _form(webhook_event(seed, None)))
    assert_exactly_the_seed(seen, seed, event)
    assert seen["resolution"]["event"]["name"] == "Login2"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (delivery,) = [line for line in lines if line["message"] == "delivery"]
    assert (delivery["site_event_type"], delivery["log_id"]) == ("login", seen["log_id"])
    (mismatch,) = [line for line in lines if line["message"] == "type mismatch"]
    assert {k: mismatch[k] for k in ("severity", "event_id", "action", "site_event_type")} == {
        "severity": "WARNING", "event_id": event["event_id"], "action": "conversion", "site_event_type": "login"}


def test_a_custom_event_by_its_ref(client, topology, sandbox, capsys):
    """The events guide: "Your app would have to call action=login2" -> event_ref=login2."""
    seed = {"action": "login2", "advertiser_id": ADVERTISER, "sdk": "server", "site_id": SITE_ID,
            "response_format": "json", **SEED_DEVICE}
    event, seen = through_the_pipeline(client, topology, sandbox, _json(webhook_event(seed, None, event_ref="login2")))
    assert_exactly_the_seed(seen, seed, event)
    assert seen["resolution"]["event"]["name"] == "Login2" and seen["resolution"]["matched_by"] == "ref"
    assert '"type mismatch"' not in capsys.readouterr().out  # a ref names its event, whatever its type


def test_install_by_name_is_action_install_and_resolves_as_an_install(client, topology, sandbox, capsys):
    """event_name=install -> action=install, as the Python and Java examples send it."""
    seed = {"action": "install", "advertiser_id": ADVERTISER, "sdk": "server", "site_id": SITE_ID,
            "response_format": "json", **SEED_DEVICE}
    event, seen = through_the_pipeline(client, topology, sandbox, _ndjson(webhook_event(seed, "install")))
    assert_exactly_the_seed(seen, seed, event)
    assert seen["resolution"]["event"]["type"] == "install"
    assert '"type mismatch"' not in capsys.readouterr().out
