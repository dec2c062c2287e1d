import json

import pytest

from measure import logs


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Invalid device_ip 175.124.248.15", "Invalid device_ip 175.124.248.0/24"),
        ("connect to 10.0.0.1:8080 failed", "connect to 10.0.0.0/24:8080 failed"),
        ("ip 2001:db8::1 refused", "ip 2001:db8::/48 refused"),
        ("at 18:42:45.431Z", "at 18:42:45.431Z"),
        ("version 1.2.3 and v1.2.3.4", "version 1.2.3 and v1.2.3.4"),
        ("999.1.1.1 is no address", "999.1.1.1 is no address"),
    ],
)
def test_scrub_masks_addresses_in_free_text(text, masked):
    assert logs.scrub(text) == masked


def test_a_log_line_masks_ip_fields_and_addresses_in_any_string(capsys):
    logs.info("delivery", ip="175.124.248.15", reason="Invalid device_ip 175.124.248.15", latency_ms=3.5)
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["ip"] == "175.124.248.0/24" and record["reason"] == "Invalid device_ip 175.124.248.0/24"
    assert record["severity"] == "INFO" and record["latency_ms"] == 3.5
    assert "175.124.248.15" not in line


class _Request:
    def __init__(self, trace_header):
        self.headers = {"X-Cloud-Trace-Context": trace_header}


def test_trace_is_only_set_for_a_well_formed_header(capsys, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")

    @logs.traced  # as main.py wraps each HTTP entry point
    def handler(request):
        logs.info("inside")
        return "ok"

    assert handler(_Request("abc123/1;o=1")) == "ok"
    handler(_Request("../../evil"))
    logs.info("after")
    first, second, after = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["logging.googleapis.com/trace"] == "projects/p/traces/abc123"
    assert "logging.googleapis.com/trace" not in second
    assert "logging.googleapis.com/trace" not in after  # the request's trace ends with it
