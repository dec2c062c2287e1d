import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
        ("::1", "::/48"),
        ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ],
)
def test_scrub_masks_addresses_in_free_text(text, masked):
    assert logs.scrub(text) == masked


@given(address=st.ip_addresses(), before=st.sampled_from(["", "ip ", "(", "from "]),
       after=st.sampled_from(["", " refused", ":443", ")"]))
def test_scrub_leaves_no_whole_address_anywhere_in_a_text(address, before, after):
    # Whatever shortcut scrub takes for texts that cannot hold an address, one that does is masked.
    if address.version == 6 and after == ":443":
        after = "]:443"  # a port after an IPv6 address needs its brackets to be told apart
        before = f"{before}["
    text = f"{before}{address}{after}"
    scrubbed = logs.scrub(text)
    assert str(address) not in scrubbed or ipaddress.ip_network(f"{address}/{24 if address.version == 4 else 48}",
                                                                 strict=False).network_address == address


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
