"""openapi.yaml documents the webhook precisely, and a live `receive` behaves as it says.

The document is checked against the OpenAPI 3.0 meta-schema and against the code (fields,
required fields, lengths, batch and body limits, error codes). Then schemathesis (`st run`, every
phase: the schema's examples, boundary coverage, fuzzing with positive and negative data, methods
the schema does not allow, missing and wrong auth) runs against a real functions-framework server
publishing to the Pub/Sub emulator, with a bounded number of examples. Its JSON report must show
no server error and no response outside the document.

    MEASURE_OPENAPI_EXAMPLES=N   fuzzing examples per operation (default 40)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from measure import events
from measure.dev.devstack import REPO_ROOT, SERVER_START_TIMEOUT, function_server
from measure.dev.emulator import Names, create_topology, free_port, log_tail
from measure.events import validation
from measure.functions import receive as webhook
from tests.helpers import TOKENS, base_env

SPEC_PATH = REPO_ROOT / "openapi.yaml"
HOOKS = Path(__file__).with_name("openapi_hooks.py")
EXAMPLES = int(os.environ.get("MEASURE_OPENAPI_EXAMPLES") or 40)
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "unsupported_method",
          "allow_header_conformance", "ignored_auth")
SERVER_ERRORS = {"ServerError", "ContentTypeServerError"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


# --- the document ---------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_0(spec):
    from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

    errors = [str(e) for e in OPENAPI_30_VALIDATOR.iter_errors(spec)]
    assert not errors, errors[:5]
    assert spec["openapi"].startswith("3.0")


def test_paths_methods_auth_and_content_types(spec):
    assert set(spec["paths"]) == {"/", "/measure", "/measure/debug"} == {*webhook.ROUTES, webhook.DEBUG_ROUTE}
    for path in spec["paths"].values():
        assert set(path) == {"post"}
    bearer = spec["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearer": []}]
    content = spec["components"]["requestBodies"]["Events"]["content"]
    assert set(content) == {events.FORM, events.JSON, events.NDJSON}
    for route in webhook.ROUTES:
        assert set(spec["paths"][route]["post"]["responses"]) == {"202", "400", "401", "404", "405", "413", "415",
                                                                  "503"}
    debug = spec["paths"][webhook.DEBUG_ROUTE]["post"]
    assert set(debug["responses"]) == {"200", "401", "404", "405", "413", "415", "503"}
    assert debug["requestBody"] == spec["paths"]["/measure"]["post"]["requestBody"]


def test_the_event_schema_is_the_code_s(spec):
    schemas = spec["components"]["schemas"]
    event = schemas["Event"]
    assert set(event["properties"]) == set(events.FIELDS)
    assert event["required"] == list(events.REQUIRED_FIELDS)
    assert event["additionalProperties"] is False and event["maxProperties"] == events.MAX_EVENT_KEYS
    assert schemas["Batch"]["maxItems"] == events.MAX_BATCH
    assert schemas["EventId"]["maxLength"] == events.MAX_FIELD_LENGTH["event_id"]

    def max_length(node: dict) -> int | None:
        if "$ref" in node:
            return max_length(schemas[node["$ref"].rsplit("/", 1)[1]])
        found = [node.get("maxLength")] + [max_length(n) for key in ("allOf", "anyOf") for n in node.get(key, [])]
        found = [n for n in found if n is not None]
        return max(found) if found else None

    text_fields = [name for name in events.FIELDS
                   if validation._PASSTHROUGH_CHECKS.get(name, validation._text) is validation._text
                   and name != "time_stamp"]
    for name in text_fields:
        assert max_length(event["properties"][name]) == events.MAX_FIELD_LENGTH[name], name
    assert str(webhook.MAX_BODY_BYTES) in spec["info"]["description"].replace(",", "")


def test_error_codes_are_the_webhook_s(spec):
    documented = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    source = Path(webhook.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'error_response\(\s*[\w.]+,\s*"(\w+)"', source))
    assert used and used <= documented, used - documented
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["index", "field", "problem"] and problem["additionalProperties"] is False


# --- schemathesis against a live server -----------------------------------------------------------


@pytest.fixture(scope="module")
def live_receive(pubsub_emulator, tmp_path_factory):
    """A real `receive` publishing to its own topics on the emulator."""
    topology = create_topology(pubsub_emulator.project, emulator_host=pubsub_emulator.host,
                               names=Names().suffixed("-openapi"), tap=True)
    log_path = tmp_path_factory.mktemp("openapi") / "receive.log"
    service = function_server("receive", port=free_port(), env={**base_env(), **topology.env()}, log_path=log_path)
    try:
        service.wait_ready(time.monotonic() + SERVER_START_TIMEOUT)
        yield service.url, topology, log_path
    finally:
        service.stop()


def schemathesis(url: str, report_path: Path, *options: str) -> dict:
    """One `st run` against `url`; its JSON report."""
    command = [str(Path(sys.executable).with_name("st")), "run", str(SPEC_PATH), "--url", url,
               "-H", f"Authorization: Bearer {TOKENS[0]}", "--seed", "6", "--checks", ",".join(CHECKS),
               "--continue-on-failure", "--request-timeout", "30", "--generation-database", "none",
               "--report", "json", "--report-json-path", str(report_path), "--no-color", *options]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    # Run elsewhere: schemathesis keeps a cache directory (.schemathesis/) in its working directory.
    result = subprocess.run(command, cwd=report_path.parent, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert report_path.exists(), f"st run wrote no report (exit {result.returncode}):\n{result.stdout[-3000:]}"
    data = json.loads(report_path.read_text())
    data["_output"] = result.stdout[-6000:]
    return data


@pytest.fixture(scope="module")
def report(live_receive, tmp_path_factory):
    """Examples and fuzzing on every operation, /measure/debug first and alone, so that the
    emulator can show it published nothing; the boundary-value coverage phase (about 1,500
    requests an operation) on /measure only, since / takes the very same request body."""
    url, topology, log_path = live_receive
    work = tmp_path_factory.mktemp("schemathesis")
    debug = schemathesis(url, work / "debug.json", "--phases", "examples,fuzzing", "--max-examples", str(EXAMPLES),
                         "--include-path", webhook.DEBUG_ROUTE)
    published_by_debug = topology.pull(topology.names.events_tap_subscription, expect=1, timeout=2)
    runs = [debug,
            schemathesis(url, work / "fuzzing.json", "--phases", "examples,fuzzing", "--max-examples", str(EXAMPLES),
                         "--exclude-path", webhook.DEBUG_ROUTE),
            schemathesis(url, work / "coverage.json", "--phases", "coverage", "--include-path", "/measure")]
    return {
        "published_by_debug": [m.message.data[:200] for m in published_by_debug],
        "complete": all(r["complete"] for r in runs),
        "errors": [e for r in runs for e in r["errors"]],
        "failures": [f for r in runs for f in r["failures"]],
        "tested": [r["operations"]["tested"] for r in runs],
        "phases": {name: r["phases"][name]["status"] for r in runs for name in r["phases"]
                   if r["phases"][name]["status"] != "skip"},
        "generated": [r["test_cases"]["generated"] for r in runs],
        "_output": "\n".join(r["_output"] for r in runs),
        "_log": log_tail(log_path, 40),
    }


def test_schemathesis_ran_every_phase(report):
    assert report["complete"] and report["errors"] == [], (report["errors"], report["_output"])
    assert report["tested"] == [1, 2, 1]
    assert set(report["phases"]) == {"examples", "fuzzing", "coverage"}, report["phases"]
    assert report["generated"][0] >= EXAMPLES and report["generated"][1] >= EXAMPLES, report["generated"]
    assert report["generated"][2] >= 1000, report["generated"]


def test_nothing_schemathesis_sent_to_the_debug_path_was_published(report):
    assert report["published_by_debug"] == []


def test_no_input_makes_the_live_webhook_answer_5xx(report, live_receive):
    errors = [f for f in report["failures"] if f["type"] in SERVER_ERRORS]
    assert not errors, (errors, report["_output"])
    assert "Traceback" not in report["_log"], report["_log"]


def test_schema_valid_events_were_accepted_and_published(report, live_receive):
    _, topology, _ = live_receive
    published = topology.pull(topology.names.events_tap_subscription, expect=1, timeout=5)
    assert published, "no generated event was accepted: the 202 answer went unchecked"


def test_every_answer_is_one_the_document_describes(report):
    assert report["failures"] == [], (report["failures"], report["_output"])
