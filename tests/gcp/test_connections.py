"""measure.gcp.connections.Pool over real sockets: reuse, closed and stale connections, timeouts,
refusals, and TLS that verifies certificates."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from measure.gcp.connections import ConnectionFailedError, Pool, RequestTimeoutError
from measure.tools.emulator import free_port


class Server:
    """A local HTTP/1.1 server; `close_after` answers with Connection: close, `hang` never answers
    in time, and it counts the connections it accepted."""

    def __init__(self, *, close: bool = False, hang: float = 0.0, tls: ssl.SSLContext | None = None):
        self.connections = 0
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                outer.connections += 1
                super().setup()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.paths.append(self.path)
                if hang:
                    threading.Event().wait(hang)
                data = b"echo:" + body
                self.send_response(201)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Thing", "yes")
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/serve?x=1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    made: list[Server] = []

    def make(**kwargs) -> Server:
        made.append(Server(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_one_connection_carries_many_requests_and_the_answer_is_whole(server):
    s = server()
    pool = Pool()
    answers = [pool.request("POST", s.url(), body=b"n%d" % i) for i in range(10)]
    assert [(a.status, a.data) for a in answers] == [(201, b"echo:n%d" % i) for i in range(10)]
    assert answers[0].headers.get("x-thing") == "yes"  # header names are case-insensitive
    assert s.paths[0] == "/serve?x=1"
    assert (s.connections, pool.connections_made, pool.requests_sent) == (1, 1, 10)


def test_connection_close_from_the_server_is_honoured(server):
    s = server(close=True)
    pool = Pool()
    for _ in range(3):
        assert pool.request("POST", s.url(), body=b"x").status == 201
    assert s.connections == 3 == pool.connections_made


def test_an_idle_connection_the_server_closed_is_not_reused(server):
    s = server()
    pool = Pool()
    pool.request("POST", s.url(), body=b"a")
    [idle] = next(iter(pool._idle.values()))
    idle.sock.shutdown(socket.SHUT_RDWR)  # as if the server had timed the keep-alive out
    assert pool.request("POST", s.url(), body=b"b").data == b"echo:b"
    assert pool.connections_made == 2


def test_concurrent_requests_each_get_a_connection_and_idle_ones_are_capped(server):
    s = server(hang=0.2)
    pool = Pool(maxsize=3)
    threads = [threading.Thread(target=pool.request, args=("POST", s.url()), kwargs={"body": b"x"}) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert pool.connections_made == 6
    assert len(next(iter(pool._idle.values()))) == 3


def test_a_slow_answer_is_a_timeout_and_its_connection_is_not_kept(server):
    s = server(hang=2.0)
    pool = Pool(read_timeout=0.2)
    with pytest.raises(RequestTimeoutError, match="timed out"):
        pool.request("POST", s.url(), body=b"x")
    assert not any(pool._idle.values())


def test_a_refused_connection_is_a_connection_failure():
    with pytest.raises(ConnectionFailedError) as caught:
        Pool().request("POST", f"http://127.0.0.1:{free_port()}/serve", body=b"x")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_tls_verifies_the_certificate(server, tmp_path):
    """A self-signed certificate is refused: verification is on, as for any production client."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    s = server(tls=context)
    with pytest.raises(ConnectionFailedError) as caught:
        Pool().request("POST", s.url("https"), body=b"x")
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


def test_only_absolute_http_urls_are_taken():
    with pytest.raises(ValueError, match="absolute http"):
        Pool().request("GET", "ftp://example.com/x")
