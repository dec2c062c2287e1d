"""`python -m measure status`: an event's timeline from Cloud Logging (through a local stand-in that
answers recorded entries:list pages) and from the dev stack's log files written by the real
components (receive, send and sweep against the sandbox on the emulator)."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from measure.functions.receive import user_key
from measure.ops import status
from tests.helpers import app_client, base_env, bearer, seed_form
from tests.pipeline.stack import Pipeline, make_event, pipeline_fixture, sandbox_fixture  # noqa: F401

EVENT = "e-7f3c2a"
NOW = 1_764_684_000.0  # 2025-12-02T14:00:00Z

# Recorded in entries:list's shape (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list):
# two pages, the first with a nextPageToken.
RESOURCE = {"type": "cloud_run_revision",
            "labels": {"service_name": "measure-send", "revision_name": "measure-send-00007-xut",
                       "location": "europe-west1", "project_id": "studio-prod", "configuration_name": "measure-send"}}
INSTANCE = "0069c7a98813a9ff3e12bb5a3f4f1c5a3b86e3b2a5c3cc2ad0a6d1f7c2b4e99a0e4c6a0c2d7e1b2a"
PAGES = {
    None: {
        "entries": [
            {"insertId": "a1", "logName": "projects/studio-prod/logs/run.googleapis.com%2Fstdout",
             "timestamp": "2025-12-02T13:59:01.123456789Z", "receiveTimestamp": "2025-12-02T13:59:01.2Z",
             "severity": "INFO",
             "resource": {**RESOURCE, "labels": {**RESOURCE["labels"], "service_name": "measure-receive"}},
             "labels": {"instanceId": INSTANCE},
             "jsonPayload": {"message": "accepted", "component": "receive", "events": 1, "event_id": EVENT,
                             "event_name": "game_open", "user_keys": [user_key("u-1")], "received": 1764683941.1,
                             "time": 1764683941.123}},
            {"insertId": "a2", "timestamp": "2025-12-02T13:59:01.300Z", "severity": "WARNING",
             "resource": RESOURCE, "labels": {"instanceId": INSTANCE},
             "jsonPayload": {"message": "delivery", "component": "send", "event_id": EVENT, "attempt": 1,
                             "outcome": "transient", "http_status": 503, "log_id": None, "reason": "HTTP 503"}},
        ],
        "nextPageToken": "page-2",
    },
    "page-2": {
        "entries": [
            {"insertId": "a3", "timestamp": "2025-12-02T13:59:01.301Z", "severity": "INFO", "resource": RESOURCE,
             "labels": {"instanceId": INSTANCE},
             "jsonPayload": {"message": "retry due", "component": "send", "event_id": EVENT, "attempt": 1,
                             "retry_due": 1764683971.3}},
            {"insertId": "a4", "timestamp": "2025-12-02T13:59:32.000Z", "severity": "INFO",
             "resource": {**RESOURCE, "labels": {**RESOURCE["labels"], "service_name": "measure-sweep"}},
             "labels": {"instanceId": "00aa"},
             "jsonPayload": {"message": "delivery", "component": "sweep", "event_id": EVENT, "attempt": 2,
                             "outcome": "delivered", "http_status": 200, "log_id": "b2f3ce90d42e12e895-20251202-877",
                             "site_event_type": "open"}},
        ],
    },
}


class _Logging(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.asked.append((self.path, body, self.headers.get("Authorization")))
        page = json.dumps(PAGES[body.get("pageToken")]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


@pytest.fixture
def logging_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Logging)
    server.asked = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def run(*argv: str, env: dict | None = None, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = status.main(list(argv), env=env or {}, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_cloud_logging_is_asked_for_the_events_lines_page_by_page(logging_api):
    url = f"http://127.0.0.1:{logging_api.server_port}"
    code, out, err = run(EVENT, "--since", "2h", env={"GOOGLE_CLOUD_PROJECT": "studio-prod",
                                                       "MEASURE_LOGGING_ENDPOINT": url}, now=NOW)
    assert code == 0, err
    (path, first, auth), (_, second, _) = logging_api.asked
    assert path == "/v2/entries:list" and auth is None  # a loopback stand-in gets no token
    assert first["resourceNames"] == ["projects/studio-prod"] and first["orderBy"] == "timestamp asc"
    assert first["pageSize"] == status.PAGE_SIZE and "pageToken" not in first
    assert first["filter"] == ('timestamp>="2025-12-02T12:00:00.000Z" AND resource.type="cloud_run_revision" AND '
                               f'(jsonPayload.event_id=("{EVENT}") OR jsonPayload.event_ids:("{EVENT}"))')
    assert second == {**first, "pageToken": "page-2"}
    lines = out.splitlines()
    assert lines[0] == f"event {EVENT}"
    assert "received" in lines[1] and "13:59:01.100" in lines[1] and INSTANCE[:20] in lines[1]
    assert "published" in lines[2]
    assert "1 by send: transient, HTTP 503, log_id -, site_event_type - (HTTP 503)" in lines[3]
    assert "retry due" in lines[4] and "13:59:31.300" in lines[4]
    assert ("2 by sweep: delivered, HTTP 200, log_id b2f3ce90d42e12e895-20251202-877, site_event_type open"
            in lines[5])
    assert lines[6] == "  => delivered: attempt 2, log_id b2f3ce90d42e12e895-20251202-877"


def test_a_user_is_followed_from_the_accepted_lines_to_their_events(logging_api):
    url = f"http://127.0.0.1:{logging_api.server_port}"
    code, out, _ = run("--user", "u-1", "--since", "1d", "--project", "studio-prod", "--logging-endpoint", url,
                       "--json", now=NOW)
    assert code == 0
    user_query = logging_api.asked[0][1]["filter"]
    assert f'jsonPayload.user_keys:"{user_key("u-1")}"' in user_query and "u-1" not in user_query
    (shown,) = json.loads(out)
    assert shown["event_id"] == EVENT and shown["state"] == "delivered"
    assert [step["what"] for step in shown["steps"]] == ["received", "published", "attempt", "retry due", "attempt"]
    assert len(logging_api.asked) == 4  # the user's accepted lines (two pages), then the event's (two pages)
    assert f'jsonPayload.event_id=("{EVENT}")' in logging_api.asked[2][1]["filter"]


def test_an_event_nobody_logged_is_not_found_and_says_what_may_be_missing(logging_api):
    url = f"http://127.0.0.1:{logging_api.server_port}"
    code, out, _ = run("e-unknown", "--project", "p", "--logging-endpoint", url, now=NOW)
    assert code == status.NOT_FOUND
    assert "not found" in out and "ingest_routine_logs" in out


def test_an_error_from_cloud_logging_is_named(monkeypatch):
    monkeypatch.setattr(status, "CALL_TIMEOUT", 1.0)  # nothing listens: retried until then
    code, _, err = run(EVENT, "--project", "p", "--logging-endpoint", "http://127.0.0.1:9", now=NOW)
    assert code == status.FAILED and "Cloud Logging" in err


@pytest.mark.parametrize("argv, problem", [
    ((), "give an EVENT_ID"),
    ((EVENT, "--user", "u"), "not both"),
    ((EVENT, "--since", "yesterday", "--logs", "."), "--since"),
    ((EVENT, "--project", "p", "--logging-endpoint", "http://example.com"), "MEASURE_LOGGING_ENDPOINT"),
])
def test_usage_mistakes_are_named(argv, problem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .run/logs here
    code, _, err = run(*argv)
    assert code == status.USAGE and problem in err


def test_parse_when_reads_durations_times_and_unix_seconds():
    assert status.parse_when("2h", NOW) == NOW - 7200
    assert status.parse_when("2025-12-02T13:00:00Z", NOW) == NOW - 3600
    assert status.parse_when("2025-12-02T13:00:00", NOW) == NOW - 3600  # UTC unless it says
    assert status.parse_when("1764680400", NOW) == NOW - 3600


# --- against the dev stack's components: the lines they really write, in .run/logs-like files


@pytest.fixture
def logs_dir(tmp_path, capsys):
    """Call it to write what the components printed so far to DIR/NAME.log, as the dev stack does."""
    directory = tmp_path / "logs"
    directory.mkdir()

    def flush() -> Path:
        for text in capsys.readouterr().out.splitlines():
            if text.startswith("{"):
                name = json.loads(text).get("component", "other")
                with open(directory / f"{name}.log", "a") as log:
                    log.write(text + "\n")
        return directory
    return flush


def test_dev_stack_a_delivered_event_shows_its_attempt_with_the_sandboxs_log_id(pipeline, sandbox, logs_dir,
                                                                               monkeypatch):
    receive = app_client(monkeypatch, "receive", base_env(sandbox.serve_url))
    answer = receive.post("/measure", data=seed_form(), headers=bearer())
    assert answer.status_code == 202
    (event_id,) = answer.get_json()["event_ids"]
    (received,) = pipeline.topology.pull(pipeline.topology.names.events_tap_subscription)
    assert pipeline.sender.process(received.message.data, dict(received.message.attributes)).result == "delivered"
    (seen,) = sandbox.requests(transaction_id=event_id)
    code, out, _ = run(event_id, "--logs", str(logs_dir()))
    assert code == 0
    assert "received" in out and "published" in out
    assert f"log_id {seen['log_id']}" in out and f"=> delivered: attempt 1, log_id {seen['log_id']}" in out
    code, by_user, _ = run("--user", seed_form()["user_id"], "--logs", str(logs_dir()))
    assert code == 0 and by_user == out  # the same timeline, found from the player
    assert run("--user", "somebody-else", "--logs", str(logs_dir()))[0] == status.NOT_FOUND


def test_dev_stack_two_failures_then_the_delivery(topology, sandbox, monkeypatch, logs_dir):
    # The second failure's retry comes due after the sweep's hold (sweep.HOLD_S, 10 s), so the run
    # that made it hides it instead of trying again at once: exactly two failures, then the delivery.
    pipeline = Pipeline(topology, sandbox, monkeypatch, MEASURE_RETRY_SCHEDULE="0,11")
    sandbox.set_faults(status={503: 1.0})
    event = make_event(user_id="twice")
    assert pipeline.send(event) == "retried"
    assert pipeline.sweeper.run(budget=5)["retried"] == 1
    sandbox.clear_faults()
    deadline = time.monotonic() + 30
    while pipeline.sweeper.run(budget=5)["delivered"] != 1:
        assert time.monotonic() < deadline, "the sweep did not deliver the event"
    (accepted,) = [r for r in sandbox.requests(transaction_id=event.event_id) if r["outcome"] == "accepted"]
    code, out, _ = run(event.event_id, "--logs", str(logs_dir()), "--json")
    assert code == 0
    (shown,) = json.loads(out)
    attempts = [step for step in shown["steps"] if step["what"] == "attempt"]
    assert [(a["attempt"], a["component"], a["outcome"], a["http_status"]) for a in attempts] == [
        (1, "send", "transient", 503), (2, "sweep", "transient", 503), (3, "sweep", "delivered", 200)]
    assert attempts[-1]["log_id"] == accepted["log_id"]
    assert [step["what"] for step in shown["steps"]].count("retry due") == 2
    assert shown["state"] == "delivered"


def test_dev_stack_a_dead_letter_says_why(topology, sandbox, monkeypatch, logs_dir):
    pipeline = Pipeline(topology, sandbox, monkeypatch, private_key="not-the-key")
    event = make_event(user_id="refused")
    assert pipeline.send(event) == "dead_lettered"
    code, out, _ = run(event.event_id, "--logs", str(logs_dir()))
    assert code == 0
    (verdict,) = [line for line in out.splitlines() if "=>" in line]
    assert "dead letter: rejected:" in verdict and "signature" in verdict.lower()
    assert f"dead-letters show {event.event_id}" in verdict


def test_a_long_outage_shows_its_first_and_last_attempts_and_counts_the_rest():
    def line(at, message, **fields):
        return status.Line(at, {"message": message, "event_id": EVENT, **fields}, fields.get("component", "sweep"))

    lines = [line(NOW, "delivery", component="send", attempt=1, outcome="transient", status=503, reason="HTTP 503")]
    for n in range(2, 12):
        lines.append(line(NOW + n, "delivery", attempt=n, outcome="transient", status=503, reason="HTTP 503"))
        lines.append(line(NOW + n + 0.1, "retry due", attempt=n, retry_due=NOW + n + 1))
    lines.append(line(NOW + 20, "delivery", attempt=12, outcome="delivered", status=200, log_id="L-12"))
    shown = status.timeline(EVENT, lines)
    text = shown.render()
    assert "8 more alike: attempts 3 to 10" in text
    assert "1 by send" in text and "2 by sweep" in text and "11 by sweep" in text and " 5 by sweep" not in text
    assert text.endswith("=> delivered: attempt 12, log_id L-12")
    assert len([s for s in shown.as_dict()["steps"] if s["what"] == "attempt"]) == 12  # --json keeps them all


def test_a_named_project_is_asked_even_where_an_old_make_run_left_its_logs(logging_api, tmp_path, monkeypatch):
    # A laptop that once ran `make run` keeps ./.run/logs; asked about production, status must not
    # answer "not found" from those files.
    (tmp_path / ".run" / "logs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{logging_api.server_port}"
    code, _, err = run(EVENT, "--since", "2h", env={"GOOGLE_CLOUD_PROJECT": "studio-prod",
                                                    "MEASURE_LOGGING_ENDPOINT": url}, now=NOW)
    assert code == 0, err
    assert logging_api.asked
