"""The sandbox's HTML page: recent requests, masked IPs, escaping."""

from measure.dev.sandbox import mask_ip
from measure.signing import MeasureAuth
from tests.dev.sandbox.client import CONSUMER, PRIVATE, event, post


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


def test_html_page_links_each_request_to_its_timeline(sandbox, session):
    params = event()
    post(session, sandbox, params)
    text = session.get(f"{sandbox.url}/_sandbox", timeout=5).text
    tid = params["transaction_id"]
    assert f"href='/_sandbox/requests?transaction_id={tid}'" in text
    assert f"python -m measure status {tid}" in text
    (seen,) = session.get(f"{sandbox.url}/_sandbox/requests?transaction_id={tid}", timeout=5).json()
    assert seen["transaction_id"] == tid
