"""The sandbox Measurement API: what a signed client sees, each rejection, duplicates, each fault,
inspection, the HTML page, concurrency and the command line."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from measure.dev.sandbox import (
    DUPLICATE_MESSAGE,
    RESPONDER_HEADER,
    Faults,
    FaultsError,
    PortInUseError,
    Sandbox,
    build_parser,
    faults_from_args,
    main,
    mask_ip,
)
from measure.ops.resolution import EventDefinition
from measure.signing import (
    HEADER_CONSUMER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MeasureAuth,
    generate_signature,
)

CONSUMER = "sandbox-consumer"
PRIVATE = "sandbox-private-key-do-not-show"
ADVERTISER = "877"
AUTH = MeasureAuth(CONSUMER, PRIVATE)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER: PRIVATE}, advertiser_id=ADVERTISER).start() as running:
        yield running


@pytest.fixture
def session():
    with requests.Session() as http:
        yield http


def event(**overrides):
    params = {
        "action": "session",
        "advertiser_id": ADVERTISER,
        "site_id": "2960",
        "sdk": "server",
        "response_format": "json",
        "user_id": "player-1",
        "device_ip": "203.0.113.7",
        "transaction_id": uuid.uuid4().hex,
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


def post(session, sandbox, params, auth=AUTH, **kwargs):
    kwargs.setdefault("timeout", 5)
    return session.post(sandbox.serve_url, data=params, auth=auth, **kwargs)


def assert_rejected(response, fragment):
    assert response.status_code == 400
    assert response.headers[RESPONDER_HEADER] == "sandbox"
    body = response.json()
    assert body["success"] is False
    assert any(fragment in message for message in body["message"]), body["message"]


# --- accepted -------------------------------------------------------------------------------


def test_signed_post_is_accepted_with_the_seeds_success_shape(sandbox, session):
    params = event(action="purchase", advertiser_ref_id="order-7")
    response = post(session, sandbox, params)
    assert response.status_code == 200
    assert RESPONDER_HEADER not in response.headers
    body = response.json()
    assert set(body) == {"success", "site_event_type", "tracking_id", "advertiser_ref_id", "log_id", "message",
                         "log_action"}
    assert body["success"] is True
    assert body["site_event_type"] == "purchase"
    assert re.fullmatch(r"[0-9a-f]{32}", body["tracking_id"])
    assert body["advertiser_ref_id"] == "order-7"
    assert re.fullmatch(r"[0-9a-f]{18}-\d{8}-877", body["log_id"])
    assert body["message"] == []
    assert body["log_action"] is True
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}


def test_signed_get_with_a_query_string_is_accepted(sandbox, session):
    response = session.get(sandbox.serve_url, params=event(), auth=AUTH, timeout=5)
    assert response.status_code == 200
    assert response.json()["success"] is True


def test_keep_alive_connection_serves_many_requests(sandbox, session):
    for _ in range(5):
        assert post(session, sandbox, event()).json()["success"] is True
    assert sandbox.stats()["accepted"] == 5


def test_custom_event_with_site_event_name_is_accepted(sandbox, session):
    response = post(session, sandbox, event(action="conversion", site_event_name="review_submitted"))
    assert response.json()["site_event_type"] == "conversion"
    assert sandbox.requests()[-1]["event"] == "review_submitted"


# --- rejected -------------------------------------------------------------------------------


def test_unknown_consumer_key_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(), auth=MeasureAuth("someone-else", PRIVATE)), "unknown consumer key")


@pytest.mark.parametrize("header", [HEADER_CONSUMER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP])
def test_missing_header_is_rejected(sandbox, session, header):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    del prepared.headers[header]
    assert_rejected(session.send(prepared, timeout=5), f"missing header: {header}")


def test_stale_timestamp_is_rejected(sandbox, session):
    stale = MeasureAuth(CONSUMER, PRIVATE, clock=lambda: time.time() - 1000)
    assert_rejected(post(session, sandbox, event(), auth=stale), "timestamp outside tolerance")


def test_tolerance_is_configurable(session):
    late = MeasureAuth(CONSUMER, PRIVATE, clock=lambda: time.time() - 1000)
    with Sandbox({CONSUMER: PRIVATE}, tolerance=2000).start() as lenient:
        assert post(session, lenient, event(), auth=late).status_code == 200


def test_signature_made_with_another_private_key_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong")), "signature mismatch")


def test_body_changed_after_signing_is_rejected(sandbox, session):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    prepared.body = prepared.body.replace("player-1", "player-2")
    assert_rejected(session.send(prepared, timeout=5), "signature mismatch")


def test_signature_covers_the_host_header(sandbox, session):
    prepared = requests.Request("POST", sandbox.serve_url, data=event(), auth=AUTH).prepare()
    prepared.headers["Host"] = "877.measure.mobileapptracking.com"
    assert_rejected(session.send(prepared, timeout=5), "signature mismatch")


@pytest.mark.parametrize("name", ["action", "advertiser_id", "site_id", "sdk"])
def test_missing_required_parameter_is_rejected(sandbox, session, name):
    assert_rejected(post(session, sandbox, event(**{name: None})), f"missing parameter: {name}")


def test_conversion_without_event_name_or_id_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(action="conversion")), "site_event_name or site_event_id")


def test_wrong_advertiser_id_is_rejected(sandbox, session):
    assert_rejected(post(session, sandbox, event(advertiser_id="999")), "advertiser_id 999")


def test_repeated_parameter_is_rejected(sandbox, session):
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        HEADER_CONSUMER_KEY: CONSUMER,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: generate_signature(PRIVATE, "POST", "x", "/serve", timestamp),
    }
    response = session.post(sandbox.serve_url, data="action=session&action=login", headers=headers, timeout=5)
    assert_rejected(response, "invalid parameters")


def test_rejections_are_not_accepted_and_are_counted_by_reason(sandbox, session):
    post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong"))
    post(session, sandbox, event(site_id=None))
    stats = sandbox.stats()
    assert stats["rejected"] == 2 and stats["accepted"] == 0
    assert stats["rejected_reasons"] == {"signature mismatch": 1, "parameters": 1}
    assert not sandbox.accepted_ids()


# --- duplicates -----------------------------------------------------------------------------


def test_repeated_transaction_id_is_a_duplicate_with_the_seeds_shape(sandbox, session):
    params = event()
    first = post(session, sandbox, params).json()
    again = post(session, sandbox, params)
    assert again.status_code == 200
    assert RESPONDER_HEADER not in again.headers
    body = again.json()
    assert body["success"] is False
    assert body["message"] == [DUPLICATE_MESSAGE]
    assert body["log_id"] == first["log_id"]
    assert sandbox.accepted_ids()[params["transaction_id"]] == 1
    assert sandbox.stats()["duplicates"] == 1


def test_duplicate_window_expires(session):
    now = [1_700_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    auth = MeasureAuth(CONSUMER, PRIVATE, clock=clock)
    params = event()
    with Sandbox({CONSUMER: PRIVATE}, duplicate_window=60, clock=clock).start() as windowed:
        assert post(session, windowed, params, auth=auth).json()["success"] is True
        now[0] += 59
        assert post(session, windowed, params, auth=auth).json()["message"] == [DUPLICATE_MESSAGE]
        now[0] += 2
        assert post(session, windowed, params, auth=auth).json()["success"] is True
        assert windowed.accepted_ids()[params["transaction_id"]] == 2


def test_events_without_transaction_id_are_each_accepted(sandbox, session):
    params = event(transaction_id=None)
    assert post(session, sandbox, params).json()["success"] is True
    assert post(session, sandbox, params).json()["success"] is True
    assert sandbox.stats()["accepted"] == 2
    assert "no transaction_id" in sandbox.requests()[-1]["reasons"][0]


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 429])
def test_status_fault_at_rate_one(sandbox, session, code):
    sandbox.set_faults(status={code: 1.0})
    params = event()
    response = post(session, sandbox, params)
    assert response.status_code == code
    assert RESPONDER_HEADER not in response.headers
    assert sandbox.accepted_ids() == {}
    assert sandbox.stats()["faulted"] == {str(code): 1}
    sandbox.clear_faults()
    assert post(session, sandbox, params).json()["success"] is True  # the faulted one was not accepted


def test_drop_fault_closes_the_connection_without_an_answer(sandbox, session):
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())
    assert sandbox.stats()["faulted"] == {"drop": 1}
    assert sandbox.accepted_ids() == {}
    sandbox.clear_faults()
    assert post(session, sandbox, event()).status_code == 200


def test_timeout_fault_accepts_then_holds_the_answer_so_the_retry_is_a_duplicate(sandbox, session):
    sandbox.set_faults(timeout_rate=1.0, hang_s=1.0)
    params = event()
    with pytest.raises(requests.ReadTimeout):
        post(session, sandbox, params, timeout=(2, 0.2))
    sandbox.clear_faults()
    retry = post(session, sandbox, params)
    assert retry.json()["message"] == [DUPLICATE_MESSAGE]
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}
    assert sandbox.stats()["faulted"] == {"timeout": 1}


def test_latency_delays_every_answer(sandbox, session):
    sandbox.set_faults(latency_ms=150)
    started = time.monotonic()
    post(session, sandbox, event())
    assert time.monotonic() - started >= 0.15


def test_outage_answers_503(sandbox, session):
    sandbox.set_faults(outage_for=60)
    response = post(session, sandbox, event())
    assert response.status_code == 503
    assert RESPONDER_HEADER not in response.headers
    assert sandbox.stats()["faulted"] == {"outage": 1}


def test_outage_can_drop_connections(sandbox, session):
    sandbox.set_faults(outage_for=60, outage_mode="drop")
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())


def test_outage_window_in_absolute_time(sandbox, session):
    now = time.time()
    sandbox.set_faults(outage_start=now - 120, outage_end=now - 60)
    assert post(session, sandbox, event()).status_code == 200
    sandbox.set_faults(outage_start=now - 1, outage_end=now + 60)
    assert post(session, sandbox, event()).status_code == 503


def test_outage_ends(session):
    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731
    auth = MeasureAuth(CONSUMER, PRIVATE, clock=clock)
    with Sandbox({CONSUMER: PRIVATE}, faults={"outage_for": 30}, clock=clock).start() as down:
        assert post(session, down, event(), auth=auth).status_code == 503
        now[0] += 31
        assert post(session, down, event(), auth=auth).status_code == 200


def test_seeded_faults_are_reproducible(session):
    def outcomes():
        with Sandbox({CONSUMER: PRIVATE}, faults={"status": {"500": 0.5}, "seed": 7}).start() as seeded:
            return [post(session, seeded, event()).status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert {200, 500} == set(first)


def test_faults_over_http(sandbox, session):
    faults_url = f"{sandbox.url}/_sandbox/faults"
    answer = session.post(faults_url, json={"status": {"502": 1.0}, "latency_ms": 1}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == {"502": 1.0}
    assert session.get(faults_url, timeout=5).json()["latency_ms"] == 1
    assert post(session, sandbox, event()).status_code == 502
    assert session.delete(faults_url, timeout=5).status_code == 200
    assert post(session, sandbox, event()).status_code == 200


@pytest.mark.parametrize(
    "settings",
    [
        {"status": {"200": 0.5}},
        {"drop_rate": 2},
        {"status": {"500": 0.6}, "drop_rate": 0.6},
        {"outage_start": 10},
        {"outage_for": 5, "outage_end": 10},
        {"outage_mode": "explode"},
        {"latency": 5},
    ],
)
def test_invalid_faults_are_refused(sandbox, session, settings):
    answer = session.post(f"{sandbox.url}/_sandbox/faults", json=settings, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]
    with pytest.raises(FaultsError):
        Faults.from_mapping(settings)


def test_faults_draw_in_order():
    faults = Faults.from_mapping({"drop_rate": 0.1, "status": {"500": 0.2}, "timeout_rate": 0.3})

    class Fixed:
        def __init__(self, value):
            self.value = value

        def random(self):
            return self.value

    assert [faults.draw(Fixed(u), 0) for u in (0.05, 0.15, 0.45, 0.7)] == ["drop", "500", "timeout", None]


# --- inspection -----------------------------------------------------------------------------


def test_requests_endpoint_filters_by_transaction_id_since_and_limit(sandbox, session):
    first, second = event(), event()
    post(session, sandbox, first)
    middle = time.time()
    time.sleep(0.01)
    post(session, sandbox, second)
    post(session, sandbox, second)
    url = f"{sandbox.url}/_sandbox/requests"
    everything = session.get(url, timeout=5).json()
    ids = [first["transaction_id"], second["transaction_id"], second["transaction_id"]]
    assert [entry["transaction_id"] for entry in everything] == ids
    assert [entry["outcome"] for entry in everything] == ["accepted", "accepted", "duplicate"]
    only = session.get(url, params={"transaction_id": second["transaction_id"]}, timeout=5).json()
    assert len(only) == 2
    recent = session.get(url, params={"since": middle}, timeout=5).json()
    assert [entry["transaction_id"] for entry in recent] == [second["transaction_id"]] * 2
    assert len(session.get(url, params={"limit": 1}, timeout=5).json()) == 1
    assert session.get(url, params={"since": "yesterday"}, timeout=5).status_code == 400
    assert everything[0]["params"]["user_id"] == "player-1"
    assert everything[0]["signature"] == "valid"


def test_stats_endpoint_counts_every_outcome(sandbox, session):
    params = event()
    post(session, sandbox, params)
    post(session, sandbox, params)
    post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong"))
    sandbox.set_faults(status={"500": 1.0})
    post(session, sandbox, event())
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post(session, sandbox, event())
    stats = session.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    assert stats["received"] == 5
    assert (stats["accepted"], stats["duplicates"], stats["rejected"]) == (1, 1, 1)
    assert stats["faulted"] == {"500": 1, "drop": 1}
    assert stats["distinct_accepted"] == 1


def test_reset_forgets_requests_stats_and_accepted_ids(sandbox, session):
    params = event()
    post(session, sandbox, params)
    answer = session.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    assert answer.json()["received"] == 0
    assert sandbox.requests() == [] and sandbox.accepted_ids() == {}
    assert post(session, sandbox, params).json()["success"] is True


def test_request_log_is_bounded_and_keeps_the_newest(session):
    with Sandbox({CONSUMER: PRIVATE}, log_size=3).start() as small:
        ids = [event() for _ in range(5)]
        for params in ids:
            post(session, small, params)
        assert [entry["transaction_id"] for entry in small.requests()] == [p["transaction_id"] for p in ids[2:]]
        assert small.stats()["accepted"] == 5


def test_html_page_shows_recent_requests_with_masked_ips(sandbox, session):
    params = event(device_ip="198.51.100.23")
    post(session, sandbox, params)
    post(session, sandbox, event(), auth=MeasureAuth(CONSUMER, "wrong"))
    page = session.get(f"{sandbox.url}/_sandbox", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert params["transaction_id"] in text
    assert "198.51.100.x" in text and "198.51.100.23" not in text
    assert "signature mismatch" in text
    assert PRIVATE not in text
    assert session.get(sandbox.url, timeout=5).url.endswith("/_sandbox")


def test_html_page_escapes_what_clients_send(sandbox, session):
    post(session, sandbox, event(action="conversion", site_event_name="<script>alert(1)</script>"))
    assert "<script>alert" not in session.get(f"{sandbox.url}/_sandbox", timeout=5).text


def test_mask_ip():
    assert mask_ip("203.0.113.7") == "203.0.113.x"
    assert mask_ip("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert mask_ip("not an ip") == "(invalid)"
    assert mask_ip(None) == ""


def test_unknown_endpoint_and_method(sandbox, session):
    assert session.get(f"{sandbox.url}/nowhere", timeout=5).status_code == 404
    answer = session.put(sandbox.serve_url, timeout=5)
    assert answer.status_code == 405
    assert "POST" in answer.headers["Allow"]


def test_private_key_is_not_in_the_request_log(sandbox, session):
    post(session, sandbox, event())
    assert PRIVATE not in json.dumps(sandbox.requests())


# --- resolution -----------------------------------------------------------------------------


def test_no_resolution_without_definitions(sandbox, session):
    assert "resolution" not in post(session, sandbox, event(action="login")).json()


def test_resolution_in_the_answer_and_created_events_are_remembered(session):
    definitions = [EventDefinition(1, "Purchase", "purchase")]
    with Sandbox({CONSUMER: PRIVATE}, definitions=definitions).start() as resolving:
        first = post(session, resolving, event(action="login")).json()
        assert first["resolution"] == {
            "event": {"id": 2, "name": "login", "ref": "login", "type": "login"},
            "created": True,
            "matched_by": "new",
            "warnings": [],
        }
        second = post(session, resolving, event(action="login")).json()["resolution"]
        assert (second["event"]["id"], second["created"], second["matched_by"]) == (2, False, "type+ref")
        listed = session.get(f"{resolving.url}/_sandbox/definitions", timeout=5).json()
        assert [entry["id"] for entry in listed] == [1, 2]
        assert definitions == [EventDefinition(1, "Purchase", "purchase")]  # the caller's list is untouched
        resolving.reset()
        assert resolving.definitions() == definitions


def test_resolution_warnings_reach_the_answer_and_the_page(session):
    with Sandbox({CONSUMER: PRIVATE}, definitions=[EventDefinition(1, "Purchase", "login")]).start() as resolving:
        answer = post(session, resolving, event(action="purchase")).json()
        assert answer["success"] is True
        assert "Potential conflict" in answer["resolution"]["warnings"][0]
        page = session.get(f"{resolving.url}/_sandbox", timeout=5).text
        assert "Potential conflict" in page and "Purchase (id 1, login) by ref" in page


def test_unknown_site_event_id_is_rejected_when_definitions_are_loaded(session):
    with Sandbox({CONSUMER: PRIVATE}, definitions=[]).start() as resolving:
        response = post(session, resolving, event(action="conversion", site_event_id="42"))
        assert_rejected(response, "site_event_id 42")
        assert resolving.stats()["rejected_reasons"] == {"event": 1}


# --- concurrency ----------------------------------------------------------------------------


def _parallel(sandbox, batch, workers=40):
    local = threading.local()

    def send(params):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post(local.session, sandbox, params, timeout=10)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, batch))


def test_200_parallel_requests_are_each_accepted_once(sandbox):
    batch = [event() for _ in range(200)]
    responses = _parallel(sandbox, batch)
    assert all(response.json()["success"] is True for response in responses)
    accepted = sandbox.accepted_ids()
    assert len(accepted) == 200 and set(accepted.values()) == {1}
    assert sandbox.stats()["accepted"] == 200


def test_the_same_event_sent_in_parallel_is_accepted_exactly_once(sandbox):
    params = event()
    responses = _parallel(sandbox, [params] * 30, workers=30)
    assert sum(response.json()["success"] is True for response in responses) == 1
    assert sandbox.accepted_ids() == {params["transaction_id"]: 1}
    assert sandbox.stats()["duplicates"] == 29


# --- server lifecycle and command line ------------------------------------------------------


def test_busy_port_is_reported(sandbox):
    port = int(sandbox.url.rsplit(":", 1)[1])
    with pytest.raises(PortInUseError, match=f"port {port}"):
        Sandbox({CONSUMER: PRIVATE}).start(port=port)


def test_stop_returns_promptly_with_idle_keep_alive_connections(session):
    running = Sandbox({CONSUMER: PRIVATE}).start()
    post(session, running, event())
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 2


def args(*argv):
    return build_parser().parse_args(list(argv))


def test_cli_fail_rate_is_shared_by_the_status_codes():
    assert faults_from_args(args("--fail-rate", "0.3", "--status", "500,503")).status == {500: 0.15, 503: 0.15}
    assert faults_from_args(args("--fail-rate", "0.1")).status == {500: 0.1}
    assert faults_from_args(args("--status", "500=0.3,429=0.05")).status == {500: 0.3, 429: 0.05}
    with pytest.raises(FaultsError):
        faults_from_args(args("--status", "500"))


def test_cli_outage_forms():
    absolute = faults_from_args(args("--outage", "1700000000:1700000600"))
    assert (absolute.outage_start, absolute.outage_end) == (1700000000, 1700000600)
    iso = faults_from_args(args("--outage", "2023-11-14T22:13:20Z/2023-11-14T22:23:20Z"))
    assert (iso.outage_start, iso.outage_end) == (1700000000, 1700000600)
    relative = faults_from_args(args("--outage-for", "5", "--outage-mode", "drop"), now=100)
    assert (relative.outage_start, relative.outage_end, relative.outage_mode) == (100, 105, "drop")
    with pytest.raises(FaultsError):
        faults_from_args(args("--outage", "soon:later"))


def test_cli_needs_a_key_pair(monkeypatch, capsys):
    monkeypatch.delenv("MEASURE_CONSUMER_KEY", raising=False)
    monkeypatch.delenv("MEASURE_PRIVATE_KEY", raising=False)
    assert main(["--port", "0"]) == 2
    assert "MEASURE_PRIVATE_KEY" in capsys.readouterr().err


def test_cli_reports_a_busy_port(sandbox, capsys):
    port = sandbox.url.rsplit(":", 1)[1]
    assert main(["--port", port, "--consumer-key", CONSUMER, "--private-key", PRIVATE]) == 1
    err = capsys.readouterr().err
    assert "already in use" in err and PRIVATE not in err


def test_cli_reports_bad_definitions(tmp_path, capsys):
    bad = tmp_path / "events.json"
    bad.write_text('[{"id": 1, "name": "Login"}]')
    argv = ["--port", "0", "--consumer-key", CONSUMER, "--private-key", PRIVATE, "--definitions", str(bad)]
    assert main(argv) == 2
    assert "field 'type' is missing" in capsys.readouterr().err


def test_cli_serves_until_ctrl_c(session):
    env = dict(os.environ, MEASURE_CONSUMER_KEY=CONSUMER, MEASURE_PRIVATE_KEY=PRIVATE,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MEASURE_ADVERTISER_ID", None)
    command = [sys.executable, "-c", "import sys; from measure.dev.sandbox import main; sys.exit(main())",
               "--port", "0", "--definitions", str(ROOT / "examples" / "events.json")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        answer = session.post(f"{url}/serve", data=event(action="login"), auth=AUTH, timeout=5).json()
        assert answer["success"] is True and answer["resolution"]["event"]["name"] == "Login"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "stopped" in err
    assert PRIVATE not in banner + out + err


def test_html_page_links_each_request_to_its_timeline(sandbox, session):
    params = event()
    post(session, sandbox, params)
    text = session.get(f"{sandbox.url}/_sandbox", timeout=5).text
    tid = params["transaction_id"]
    assert f"href='/_sandbox/requests?transaction_id={tid}'" in text
    assert f"python -m measure status {tid}" in text
    (seen,) = session.get(f"{sandbox.url}/_sandbox/requests?transaction_id={tid}", timeout=5).json()
    assert seen["transaction_id"] == tid
