"""POST /measure/debug: what each event would become, compared with what send really signs (the
sandbox records it), and proof from the emulator that nothing is ever published."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from measure import config as config_module
from measure.dev.sandbox import Sandbox
from measure.events import PASSTHROUGH_FIELDS, Event
from measure.functions import debug
from measure.functions import receive as webhook
from measure.functions.send import Sender
from measure.gcp.publisher import Publisher
from measure.pipeline.breaker import CircuitBreaker
from measure.pipeline.delivery import Delivery
from measure.tune.client import MeasurementClient
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, app_client, base_env, bearer, seed_form

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as box:
        yield box


@pytest.fixture
def client(topology, sandbox, monkeypatch):
    return app_client(monkeypatch, "receive", base_env(sandbox.serve_url))


def debug_answer(client, **kwargs) -> dict:
    response = client.post("/measure/debug", headers={**bearer(), **kwargs.pop("headers", {})}, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def published(topology, timeout=1.0) -> list:
    return topology.pull(topology.names.events_tap_subscription, expect=1, timeout=timeout)


def warnings_of(client, **changes) -> list[dict]:
    answer = debug_answer(client, json=seed_form(**changes))
    assert answer["valid"], answer
    return answer["events"][0]["warnings"]


# --- the request is what send signs -----------------------------------------------------------------

BODIES = {
    "seed form": {"data": seed_form()},
    "custom event with extras": {"json": seed_form(event_name="Boss Défeated", revenue=4.99, currency_code="eur",
                                                   level="007", attribute_sub1="a b&c=d", event_id="boss-1")},
    "pre-defined, mapped ipv6, batch": {"json": [seed_form(event_name="Purchase", ip="::ffff:8.8.8.8"),
                                                 seed_form(event_name="login", platform="ios",
                                                           storefront="appstore", ip="2001:4860::8888")]},
    "ndjson": {"data": json.dumps(seed_form(event_name="level_achieved", level=3)),
               "headers": {"Content-Type": "application/x-ndjson"}},
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_the_debug_request_is_parameter_for_parameter_what_send_signs(client, topology, sandbox, monkeypatch, body):
    answer = debug_answer(client, **body)
    assert answer["valid"] and answer["problems"] == []
    assert published(topology, timeout=0.5) == []

    # The same body through /measure, the published messages through delivery to the sandbox.
    headers = {**bearer(), **body.get("headers", {})}
    accepted = client.post("/measure", headers=headers, **{k: v for k, v in body.items() if k != "headers"})
    assert accepted.status_code == 202
    assert [e["event_id"] for e in answer["events"]] == accepted.get_json()["event_ids"]
    messages = topology.pull(topology.names.events_tap_subscription, expect=len(answer["events"]))
    config = dataclasses.replace(config_module.load(), retry_schedule=(0,))
    delivery = Delivery(config, MeasurementClient(config.endpoint, lambda: (CONSUMER_KEY, PRIVATE_KEY)),
                        Publisher(config.project), CircuitBreaker())
    sender = Sender(delivery)
    for message in messages:
        assert sender.process(message.message.data, dict(message.message.attributes)).result == "delivered"
    for shown in answer["events"]:
        (signed,) = sandbox.requests(transaction_id=shown["event_id"])
        assert signed["signature"] == "valid"
        assert shown["request"] == signed["params"]
    assert not {"advertiser_key", "signature", "timestamp"} & {k for e in answer["events"] for k in e["request"]}


# --- nothing is ever published ---------------------------------------------------------------------


def test_no_debug_call_publishes_anything(client, topology):
    calls = [
        {"data": seed_form()},
        {"json": [seed_form(user_id=f"u{i}") for i in range(50)]},
        {"json": [seed_form(), seed_form(ip="10.0.0.1")]},
        {"data": b"{", "headers": {"Content-Type": "application/json"}},
        {"data": b"x", "headers": {"Content-Type": "text/plain"}},
        {"data": b"user_id=" + b"a" * (webhook.MAX_BODY_BYTES + 1), "headers": {"Content-Type": FORM}},
        {"data": seed_form(), "headers": {"Authorization": "Bearer nope"}},
    ]
    statuses = [client.post("/measure/debug", **{"headers": {**bearer(), **c.pop("headers", {})}, **c}).status_code
                for c in calls]
    assert statuses == [200, 200, 200, 200, 415, 413, 401]
    assert published(topology, timeout=1.5) == []


# --- problems and errors are /measure's ---------------------------------------------------------------


def test_problems_are_those_of_measure_s_400_and_valid_events_are_still_shown(client):
    batch = [seed_form(), seed_form(ip="10.0.0.1"), seed_form(timestamp="1"), seed_form(platform="switch")]
    refused = client.post("/measure", json=batch, headers=bearer())
    assert refused.status_code == 400
    answer = debug_answer(client, json=batch)
    assert answer["valid"] is False
    assert answer["problems"] == refused.get_json()["problems"]
    assert [e["index"] for e in answer["events"]] == [0]


def test_a_malformed_body_is_a_200_naming_the_problem_as_measure_does(client):
    refused = client.post("/measure", data=b'[{"user_id": 1,', headers={**bearer(), "Content-Type": "application/json"})
    assert refused.status_code == 400
    answer = debug_answer(client, data=b'[{"user_id": 1,', headers={"Content-Type": "application/json"})
    assert answer == {"valid": False, "events": [], "problems": refused.get_json()["problems"]}


_HUGE = b"user_id=" + b"a" * (webhook.MAX_BODY_BYTES + 1)
REFUSALS = {  # name: (method, path under the route, headers, body keyword arguments)
    "no token": ("POST", "", {}, {"data": seed_form()}),
    "bad token": ("POST", "", {"Authorization": "Bearer nope"}, {"data": seed_form()}),
    "GET": ("GET", "", bearer(), {}),
    "PUT": ("PUT", "/", bearer(), {"data": seed_form()}),
    "no such path": ("POST", "/x", bearer(), {"data": seed_form()}),
    "too large": ("POST", "", {**bearer(), "Content-Type": FORM}, {"data": _HUGE}),
    "too many events": ("POST", "", bearer(), {"json": [seed_form(user_id=f"u{i}") for i in range(1001)]}),
    "text/plain": ("POST", "", {**bearer(), "Content-Type": "text/plain"}, {"data": b"x"}),
    "latin-1": ("POST", "", {**bearer(), "Content-Type": "application/json; charset=latin-1"}, {"data": b"{}"}),
}


@pytest.mark.parametrize(("method", "tail", "headers", "body"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_refusals_are_exactly_measure_s(client, method, tail, headers, body):
    def call(route):
        response = client.open(route + tail, method=method, headers=headers, **body)
        answer = response.get_json()
        answer["message"] = answer["message"].replace(f"'{route}", "'<route>")  # a 404 names the path
        return response.status_code, answer, {k: response.headers.get(k) for k in ("Allow", "WWW-Authenticate")}

    debugged, measured = call("/measure/debug"), call("/measure")
    assert debugged[0] in (401, 404, 405, 413, 415)
    assert debugged == measured


# --- warnings: each has a case ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "near"), [("Purchase", "'purchase'"), ("purchased", "'purchase'"),
                                            ("log_in", "'login'"), ("Add to cart", "'add_to_cart'"),
                                            ("GAME_OPEN", "a session"), ("tutorial-completed", "'tutorial_complete'")])
def test_an_event_name_near_a_pre_defined_one_is_warned_of(client, name, near):
    (warning,) = warnings_of(client, event_name=name)
    assert warning["field"] == "event_name" and near in warning["warning"], warning


@pytest.mark.parametrize("name", ["purchase", "game_open", "Boss Defeated", "rated_the_app"])
def test_a_pre_defined_name_as_written_or_a_distinct_custom_one_is_not(client, name):
    assert warnings_of(client, event_name=name) == []


@pytest.mark.parametrize(("offset", "fragment"), [(-2 * 86400, "2 days old"), (-25 * 3600, "25 hours old"),
                                                  (+120, "ahead of this server's clock")])
def test_a_time_stamp_far_from_now_is_warned_of(client, offset, fragment):
    (warning,) = warnings_of(client, time_stamp=str(int(time.time()) + offset))
    assert warning["field"] == "time_stamp" and fragment in warning["warning"], warning


def test_a_recent_time_stamp_is_not(client):
    assert warnings_of(client, time_stamp=str(int(time.time()) - 3600)) == []


@pytest.mark.parametrize(("platform", "storefront"), [("PC", "steam"), ("pc", " Steam"), ("iOS", "AppStore ")])
def test_a_site_pair_written_differently_from_the_configured_one_is_warned_of(client, platform, storefront):
    (warning,) = warnings_of(client, platform=platform, storefront=storefront)
    configured = f"'{platform.strip().lower()}/{storefront.strip().lower()}'"
    assert warning["field"] == "platform" and configured in warning["warning"], warning


def test_a_pass_through_parameter_the_measurement_api_does_not_know_is_warned_of():
    # The webhook refuses unknown field names outright, so this warning guards the two lists (the
    # fields events passes through, the parameters tune.params knows) from drifting apart.
    now = time.time()
    event = Event("e1", "game_open", "u", "8.8.8.8", int(now), "pc", "steam", extras={"attribute_sub6": "x"})
    request = debug.request_of(event, advertiser_id=ADVERTISER, site_id="2960")
    raw = {"user_id": "u", "ip": "8.8.8.8", "time_stamp": int(now), "platform": "pc", "storefront": "steam"}
    assert debug.warnings(raw, event, request, now=now) == [
        {"field": "attribute_sub6", "warning": "is not a parameter the Measurement API documents; "
                                               "it is sent, and probably ignored"}]


def test_every_pass_through_field_the_webhook_takes_is_one_the_api_knows(client):
    values = {"revenue": "1.5", "rating": "4", "quantity": "2", "level": "3", "date1": "1", "date2": "2",
              "currency_code": "USD", "country_code": "KR", "ios_ifa": "AB-12", "google_aid": "cd-34",
              "fire_aid": "ef-56", "ios_ifv": "ZZ-12", "site_event_id": "3",
              **dict.fromkeys(("ios_ad_tracking_disabled", "google_ad_tracking_disabled", "fire_ad_tracking_disabled",
                               "existing_user", "is_paying_user", "is_coppa"), "0")}
    extras = {name: values.get(name, "text") for name in PASSTHROUGH_FIELDS}
    # A custom name: with site_event_id it goes along as site_event_name (a session name would not).
    answer = debug_answer(client, json=seed_form(event_name="boss_defeated", **extras))
    assert answer["valid"] and answer["events"][0]["warnings"] == []
    assert set(PASSTHROUGH_FIELDS) <= set(answer["events"][0]["request"])


def test_an_exact_repeat_in_a_batch_is_shown_with_a_warning(client):
    answer = debug_answer(client, json=[seed_form(), seed_form()])
    first, repeat = answer["events"]
    assert first["event_id"] == repeat["event_id"] and first["request"] == repeat["request"]
    assert first["warnings"] == [] and repeat["warnings"][0]["field"] == "event"
    assert "repeat of event 0" in repeat["warnings"][0]["warning"]


def test_a_debug_call_logs_one_line_without_the_ip(client, capsys):
    debug_answer(client, data=seed_form())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (line,) = [line for line in lines if line["message"] == "debug"]
    assert line["events"] == 1 and line["valid"] is True
    assert "175.124.248.15" not in json.dumps(lines)


# --- the seed's actions and opt-out flags (issue 27) ---------------------------------------------------


def _without_name(**changes) -> dict:
    return {k: v for k, v in seed_form(**changes).items() if k != "event_name"}


def test_login2_is_not_steered_to_login_only(client):
    # The events guide: a second login event ("Login2") is reached only by action=login2.
    (warning,) = warnings_of(client, event_name="login2")
    assert "event_ref" in warning["warning"] and "'login'" in warning["warning"]
    answer = debug_answer(client, json=_without_name(event_ref="Login2"))
    assert answer["events"][0]["request"]["action"] == "login2" and answer["events"][0]["warnings"] == []


def test_install_and_a_custom_event_by_id_are_shown_as_sent(client):
    install = debug_answer(client, json=seed_form(event_name="install"))["events"][0]
    assert install["request"]["action"] == "install" and install["warnings"] == []
    by_id = debug_answer(client, json=_without_name(site_event_id="7"))["events"][0]
    assert {k: by_id["request"][k] for k in ("action", "site_event_id")} == {"action": "conversion",
                                                                             "site_event_id": "7"}
    assert by_id["warnings"] == []


def test_a_predefined_name_beside_a_site_event_id_is_said_not_to_be_sent(client):
    (warning,) = warnings_of(client, event_name="purchase", site_event_id="7")
    assert warning["field"] == "event_name" and "is not sent" in warning["warning"]


def test_an_event_ref_that_is_an_action_of_the_api_is_warned_of(client):
    answer = debug_answer(client, json=_without_name(event_ref="purchase"))
    (warning,) = answer["events"][0]["warnings"]
    assert warning["field"] == "event_ref" and "send event_name='purchase'" in warning["warning"]


@pytest.mark.parametrize(("ad_id", "value", "flag"), [
    ("ios_ifa", "AAAAAA-BBBB-CCCC-11111-2222222222222", "ios_ad_tracking_disabled"),
    ("google_aid", "38400000-8cf0-11bd-b23e-10b96e40000d", "google_ad_tracking_disabled"),
    ("fire_aid", "df07c7dc-cea7-4a89-b328-810ff5acb15d", "fire_ad_tracking_disabled"),
])
def test_an_advertising_id_sent_while_its_user_limited_ad_tracking_is_warned_of(client, ad_id, value, flag):
    (warning,) = warnings_of(client, **{ad_id: value, flag: "1"})
    assert warning["field"] == ad_id and f"{flag}=1" in warning["warning"]
    assert warnings_of(client, **{ad_id: value, flag: "0"}) == []
    answer = debug_answer(client, json=seed_form(**{ad_id: value, flag: True}))
    assert answer["events"][0]["request"][flag] == "1"  # the flag travels with the event


def test_a_near_miss_of_a_predefined_name_is_worked_out_once_per_distinct_name(monkeypatch):
    import difflib

    calls = []
    real = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(debug, "_NEAR_MISSES", {})
    config = config_module.load(base_env())
    raw = [seed_form(user_id=f"u{i}", event_name="purchased" if i % 2 else "tutorial_completed") for i in range(1000)]
    answer = debug.report(raw, config, time.time())
    assert sorted(calls) == ["purchased", "tutorial_completed"]
    assert "not as the pre-defined 'purchase'" in answer["events"][1]["warnings"][0]["warning"]
