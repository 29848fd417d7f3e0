"""Prometheus exposition of a pipeline's statistics (`--metrics-port`), derived from their declarations
(`framesift.stats`): every counter and gauge a snapshot holds becomes a metric family, labelled by source,
strategy, sink or reason where it is one of several. The same server (the standard library's, in background
threads, within bounds: `framesift.stream.serving`) serves the live page (`framesift.stream.live`) when given one.

Example:
    >>> with MetricsServer(pipeline.snapshot, port=9108, page=LivePage(pipeline)):   # doctest: +SKIP
    ...     pipeline.run()           # http://127.0.0.1:9108/metrics and http://127.0.0.1:9108/live
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from framesift.errors import InputError
from framesift.resources import Resource
from framesift.stats import Stats, samples
from framesift.stream.serving import MAX_CONNECTIONS, TIMEOUT_S, BoundedServer, listen

if TYPE_CHECKING:
    from framesift.stream.live import LivePage


class SnapshotCollector:
    """A prometheus_client collector that reads a snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Stats]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict[str, Any] = {}
        for name, kind, help, labels, value in samples(self._snapshot()):
            family = families.get(name)
            if family is None:
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = families[name] = cls(name, help, labels=[label for label, _ in labels])
            if value is not None:
                family.add_metric([label_value for _, label_value in labels], value)
        yield from families.values()


class ConnectionsCollector:
    """A prometheus_client collector of what the server's bounds turned away (`framesift.stream.serving`)."""

    def __init__(self, server: BoundedServer):
        self._server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily("framesift_http_connections_refused", "HTTP connections refused at once: "
                                  "max_connections were being served", value=self._server.connections_refused)
        yield CounterMetricFamily("framesift_http_connections_timed_out", "HTTP connections closed after "
                                  "timeout_s without a word", value=self._server.connections_timed_out)


class MetricsServer(Resource):
    """`/metrics` served on host:port from background threads until `close()` (idempotent); given a `LivePage`,
    the live page too, at `/live` (and `/` leads there).

    Bound to 127.0.0.1 unless `host` says otherwise; while it is bound to a loopback address, the live page answers
    only requests addressed to a loopback name (`Host: 127.0.0.1`, `localhost`, `[::1]`), so that no web page the
    machine's browser opens can read the cameras through a name of its own that resolves to 127.0.0.1 (DNS
    rebinding). `port=0` picks a free port (`server.port` says which). Raises `InputError` when it cannot listen.
    At most `max_connections` are served at once, each closed after `timeout_s` idle (`framesift.stream.serving`:
    what they turn away is counted on `/metrics`).
    """

    def __init__(self, snapshot: Callable[[], Stats], port: int, host: str = "127.0.0.1",
                 page: LivePage | None = None, *, max_connections: int = MAX_CONNECTIONS,
                 timeout_s: float = TIMEOUT_S):
        from prometheus_client import CollectorRegistry, make_wsgi_app

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot))
        self._metrics = make_wsgi_app(registry)
        self._page = page
        try:
            self._server = listen(host, port, self._app, max_connections, timeout_s)
        except OSError as error:
            raise InputError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
        registry.register(ConnectionsCollector(self._server))
        self._loopback = _is_loopback(host)
        self.host, self.port = host, self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="framesift-metrics", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        """`http://host:port` (a page's address when the host is one a browser can open)."""
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self._page is not None and (path == "/" or path == "/live" or path.startswith("/live/")):
            if self._loopback and not _is_loopback(urlsplit("//" + environ.get("HTTP_HOST", "")).hostname or ""):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"the live page answers only to 127.0.0.1 or localhost (see --metrics-host)\n"]
            if path == "/":
                start_response("302 Found", [("Location", "/live"), ("Content-Length", "0")])
                return [b""]
            return self._page.wsgi(environ, start_response)
        return self._metrics(environ, start_response)  # prometheus_client's own: gzip, OpenMetrics, name[] filters

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
