"""The stand-ins' HTTP server: connections are counted as they open, and a stop wakes the handlers
idling on keep-alive connections instead of waiting for their clients."""

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler

from measure.dev.localserver import LocalServer


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the sandbox and the proxy

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class _Counting(LocalServer):
    opened = 0

    def connection_opened(self):
        self.opened += 1


def test_a_stop_wakes_idle_keep_alive_connections_and_each_connection_is_counted_once():
    server = _Counting(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    for _ in range(3):  # one connection, three requests
        client.request("GET", "/")
        assert client.getresponse().read() == b"ok"
    assert server.opened == 1
    server.shutdown()
    server.close_connections()  # the handler is blocked reading the idle connection's next request
    server.server_close()
    thread.join(5)
    # The idle connection was shut down by the server, not left for its client to close.
    client.sock.settimeout(2)
    started = time.monotonic()
    assert client.sock.recv(1) == b""
    assert time.monotonic() - started < 1
    client.close()
