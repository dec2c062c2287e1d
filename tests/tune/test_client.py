"""The Measurement API client against the real sandbox over loopback: signing on the wire, outcomes,
connection reuse, timeouts, no redirects, no adapter retries, and TLS that verifies certificates."""

import datetime
import socket
import ssl
import threading
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from measure.dev.sandbox import Sandbox
from measure.tune.client import MeasurementClient
from measure.tune.outcome import Kind
from measure.tune.signing import encode_post_params, generate_signature, request_target
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY

PARAMS = {"action": "session", "advertiser_id": ADVERTISER, "site_id": "2960", "sdk": "server",
          "response_format": "json", "user_id": "u 1+&=", "device_ip": "175.124.248.15",
          "system_date": "1795459363", "transaction_id": "t-1"}


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as box:
        yield box


def client_for(url, private_key=PRIVATE_KEY, **kwargs):
    return MeasurementClient(url, lambda: (CONSUMER_KEY, private_key), **kwargs)


@contextmanager
def serving(handler_class, tls: ssl.SSLContext | None = None):
    """A throwaway loopback HTTP server for what the sandbox does not do (redirects, TLS)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_signed_post_is_verified_and_delivered(sandbox):
    outcome = client_for(sandbox.serve_url).deliver(PARAMS)
    assert outcome.kind is Kind.DELIVERED and outcome.status == 200 and outcome.log_id
    (seen,) = sandbox.requests(transaction_id="t-1")
    assert seen["params"]["user_id"] == "u 1+&="  # escaped in the body, intact at the other end
    assert seen["signature"] == "valid"


def test_the_body_sent_is_the_one_encoding_and_exactly_what_is_signed(sandbox):
    # One encoding of the parameters (encode_post_params), sent as the body and signed as sent:
    # the signature on the wire is over "&" + the bytes that went out, and the sandbox verifies it.
    client = client_for(sandbox.serve_url)
    sent = []
    client.session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    assert client.deliver(PARAMS).kind is Kind.DELIVERED
    (request,) = sent
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    assert body == encode_post_params(PARAMS)[1:]
    host, uri = request_target(request.url)
    assert request.headers["mat-signature"] == generate_signature(
        PRIVATE_KEY, "POST", host, uri, request.headers["mat-timestamp"], "&" + body)
    assert sandbox.requests(transaction_id="t-1")[0]["signature"] == "valid"


def test_wrong_key_is_rejected_and_a_repeat_is_a_duplicate(sandbox):
    assert client_for(sandbox.serve_url, private_key="wrong").deliver(PARAMS).kind is Kind.REJECTED
    client = client_for(sandbox.serve_url)
    assert [client.deliver(PARAMS).kind, client.deliver(PARAMS).kind] == [Kind.DELIVERED, Kind.DUPLICATE]


def test_the_keys_are_read_for_every_attempt(sandbox):
    # A rotated secret (Secret Manager behind its TTL cache) is used from the next attempt on.
    keys = iter([(CONSUMER_KEY, "old"), (CONSUMER_KEY, PRIVATE_KEY)])
    client = MeasurementClient(sandbox.serve_url, lambda: next(keys))
    assert [client.deliver(PARAMS).kind, client.deliver(PARAMS).kind] == [Kind.REJECTED, Kind.DELIVERED]


def test_read_timeout_and_refused_connection_are_transient_outages(sandbox):
    sandbox.set_faults(timeout_rate=1.0, hang_s=2)
    outcome = client_for(sandbox.serve_url, read_timeout=0.3).deliver(PARAMS)
    assert (outcome.kind, outcome.reason, outcome.outage) == (Kind.TRANSIENT, "timeout", True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = client_for(f"http://127.0.0.1:{port}/serve").deliver(PARAMS)
    assert (refused.kind, refused.reason, refused.outage) == (
        Kind.TRANSIENT, "connection error: ConnectionRefusedError", True)


def test_a_connect_that_hangs_is_a_connect_timeout():
    # A listener that never accepts, its backlog full: further SYNs go unanswered, as with a
    # black-holed route. The connect timeout, not the (long) read timeout, gives up on it.
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            filler = stack.enter_context(socket.socket())
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.fail("the backlog never filled")
        outcome = client_for(f"http://127.0.0.1:{port}/serve", connect_timeout=0.3, read_timeout=30).deliver(PARAMS)
    assert (outcome.kind, outcome.reason, outcome.outage) == (Kind.TRANSIENT, "connect timeout", True)
    assert outcome.latency < 5


def test_dropped_connection_and_5xx_are_transient_and_tried_once(sandbox):
    # No adapter retries: one attempt is one request at the API; retrying is the pipeline's call.
    sandbox.set_faults(drop_rate=1.0)
    dropped = client_for(sandbox.serve_url).deliver(PARAMS)
    assert (dropped.kind, dropped.reason) == (Kind.TRANSIENT, "connection error: RemoteDisconnected")
    assert (sandbox.stats()["received"], sandbox.stats()["faulted"]) == (1, {"drop": 1})
    sandbox.reset()
    sandbox.set_faults(status={503: 1.0})
    outcome = client_for(sandbox.serve_url).deliver(PARAMS)
    assert (outcome.kind, outcome.status, outcome.retry_after) == (Kind.TRANSIENT, 503, 1.0)
    assert (sandbox.stats()["received"], sandbox.stats()["faulted"]) == (1, {"503": 1})


def test_connections_are_reused(sandbox):
    client = client_for(sandbox.serve_url)
    for i in range(20):
        assert client.deliver({**PARAMS, "transaction_id": f"reuse-{i}"}).kind is Kind.DELIVERED
    assert (sandbox.stats()["connections"], sandbox.stats()["received"]) == (1, 20)
    assert client.connection_counts() == (1, 20)


def test_concurrent_attempts_each_keep_a_connection_of_the_pool(sandbox):
    # pool_size = the instance's concurrency: every thread finds a kept-alive connection next time.
    sandbox.set_faults(latency_ms=30)
    client = client_for(sandbox.serve_url, pool_size=4)
    kinds = []

    def work(n):
        for i in range(5):
            kinds.append(client.deliver({**PARAMS, "transaction_id": f"pool-{n}-{i}"}).kind)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert kinds == [Kind.DELIVERED] * 20
    assert sandbox.stats()["received"] == 20 and sandbox.stats()["connections"] <= 4


def test_a_redirect_is_an_answer_not_followed(sandbox):
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", sandbox.serve_url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with serving(Redirect) as port:
        outcome = client_for(f"http://127.0.0.1:{port}/serve").deliver(PARAMS)
    assert (outcome.kind, outcome.status) == (Kind.TRANSIENT, 307)
    assert sandbox.stats()["received"] == 0  # the signed request never went where Location pointed


def test_tls_refuses_a_self_signed_certificate(tmp_path):
    """Verification is on, as for any production client: a certificate nobody vouches for is refused
    before anything is sent."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen = []

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with serving(Answer, tls=context) as port:
        outcome = client_for(f"https://localhost:{port}/serve").deliver(PARAMS)
    assert (outcome.kind, outcome.reason, outcome.outage) == (
        Kind.TRANSIENT, "connection error: SSLCertVerificationError", True)
    assert seen == []


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(ValueError, match="https"):
        client_for("http://203.0.113.7/serve")
