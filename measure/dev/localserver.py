"""The HTTP server under the local stand-ins (the sandbox, the Pub/Sub proxy): threaded, bound
without a DNS lookup, and able to wake the handlers idling on keep-alive connections so a stop
returns at once."""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would otherwise make stop() wait for their clients.
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: Any):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        self.connection_opened()
        super().process_request(request, client_address)

    def connection_opened(self) -> None:
        """A new connection was accepted (the sandbox counts them)."""

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on an idle keep-alive connection so it ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
