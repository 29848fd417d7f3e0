"""The HTTP server of `/metrics` and the live page (`framesift.observe.exposition`): the standard library's WSGI
server, a thread per connection, within two bounds so that no client can make it grow without end. A connection
that sends or reads nothing for `timeout_s` is closed (counted as timed out), and at most `max_connections` are
served at once: one more is answered `503 Service Unavailable` at once, without a thread, and closed (counted as
refused). The stream never waits for it: it runs on its own threads, and a refusal never blocks the one that
accepts.

Example:
    >>> server = listen("127.0.0.1", 0, app, max_connections=32, timeout_s=10.0)    # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()          # doctest: +SKIP
    >>> server.connections_refused, server.connections_timed_out                     # doctest: +SKIP
    (0, 0)
"""

from __future__ import annotations

import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

MAX_CONNECTIONS = 32  # served at once: a page polls over a connection or two at a time; Prometheus scrapes over one
TIMEOUT_S = 10.0  # a connection idle this long (nothing sent, nothing read) is closed
_BUSY = b"too many connections at once; try again in a moment\n"
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))


class BoundedServer(ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per connection, at most `max_connections` of them, each timed out after
    `timeout_s` idle; `connections_refused` and `connections_timed_out` count what the bounds turned away."""

    daemon_threads = True  # a page left open never holds the process
    request_queue_size = 64  # connections the system holds until they are accepted (a page's burst, a scrape)
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any):
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._count = threading.Lock()
        self.connections_refused = 0
        self.connections_timed_out = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with self._count:
                self.connections_refused += 1
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # its thread releases the slot when it ends
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that timed out or that its client dropped is counted or ignored; anything else is printed,
        as the standard library does."""
        error = sys.exc_info()[1]
        if isinstance(error, TimeoutError):
            with self._count:
                self.connections_timed_out += 1
        elif not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


class _Handler(WSGIRequestHandler):
    timeout = TIMEOUT_S  # the socket's, set by setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Log no request."""


def listen(host: str, port: int, app: Any, max_connections: int = MAX_CONNECTIONS,
           timeout_s: float = TIMEOUT_S) -> BoundedServer:
    """A server of the WSGI `app` listening on host:port (IPv6 when the address is one), within the bounds given;
    `serve_forever()` serves it. Raises `OSError` when it cannot listen."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class Server(BoundedServer):
        address_family = family

    class Handler(_Handler):
        timeout = timeout_s

    Server.max_connections = max_connections
    server = make_server(str(address[0]), port, app, Server, handler_class=Handler)
    assert isinstance(server, BoundedServer)
    return server


def _refuse(request: socket.socket) -> None:
    """Say 503 without waiting: what the socket's buffer takes now, or nothing."""
    try:
        request.setblocking(False)
        request.send(BUSY)
    except OSError:
        pass
