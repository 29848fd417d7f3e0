"""Prometheus exposition of a pipeline's statistics (`--metrics-port`), derived from their declarations
(`framesift.stats`): every counter, gauge and histogram a snapshot holds becomes a metric family, labelled by
source, strategy, sink or reason where it is one of several; beside them `framesift_build_info{version, device,
onnxruntime}`, prometheus_client's process metrics (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
`process_open_fds`, ...: read from /proc, so on Linux only) and the connections the server's bounds turned away. The
same server (the standard library's, in background threads, within bounds: `framesift.observe.serving`) serves the
live page (`framesift.observe.live`) when given one.

Example:
    >>> with MetricsServer(pipeline.snapshot, port=9108, page=LivePage(pipeline)):   # doctest: +SKIP
    ...     pipeline.run()           # http://127.0.0.1:9108/metrics and http://127.0.0.1:9108/live
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from framesift.errors import InputError
from framesift.observe.serving import MAX_CONNECTIONS, TIMEOUT_S, BoundedServer, listen
from framesift.resources import Service
from framesift.stats import Histogram, Sample, Stats, samples
from framesift.workers import Worker

if TYPE_CHECKING:
    from framesift.observe.live import LivePage


class SnapshotCollector:
    """A prometheus_client collector that reads a snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Stats]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        yield from metric_families(samples(self._snapshot()))


def metric_families(found: Iterable[Sample]) -> list[Any]:
    """Prometheus metric families of statistics' samples (`framesift.stats.samples`), one per metric name."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
    families: dict[str, Any] = {}
    for name, kind, help, labels, value in found:
        family = families.get(name)
        if family is None:
            family = families[name] = kinds[kind](name, help, labels=[label for label, _ in labels])
        label_values = [label_value for _, label_value in labels]
        if isinstance(value, Histogram):
            family.add_metric(label_values, buckets=value.buckets(), sum_value=value.sum)
        elif value is not None:
            family.add_metric(label_values, value)
    return list(families.values())


class BuildInfo:
    """`framesift_build_info{version, device, onnxruntime} 1`: what runs, for a fleet's dashboards."""

    def __init__(self, device: str):
        from framesift.models.session import onnxruntime_version
        from framesift.version import __version__

        self._labels = {"version": __version__, "device": device, "onnxruntime": onnxruntime_version() or "none"}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import InfoMetricFamily

        yield InfoMetricFamily("framesift_build", "framesift's version, where its models run (cpu, cuda:0, "
                               "tensorrt:0, none for the stub) and the ONNX Runtime wheel's version",
                               value=self._labels)


class ConnectionsCollector:
    """A prometheus_client collector of what the server's bounds turned away (`framesift.observe.serving`)."""

    def __init__(self, server: BoundedServer):
        self._server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily("framesift_http_connections_refused", "HTTP connections refused at once: "
                                  "max_connections were being served", value=self._server.connections_refused)
        yield CounterMetricFamily("framesift_http_connections_timed_out", "HTTP connections closed after "
                                  "timeout_s without a word", value=self._server.connections_timed_out)


class MetricsServer(Service):
    """`/metrics` served on host:port from background threads, from `start()` (or `with`) until `close()`
    (idempotent); given a `LivePage`, the live page too, at `/live` (and `/` leads there). Made, it holds its
    address (a port in use is refused then) but answers nothing yet.

    Bound to 127.0.0.1 unless `host` says otherwise; while it is bound to a loopback address, the live page answers
    only requests addressed to a loopback name (`Host: 127.0.0.1`, `localhost`, `[::1]`), so that no web page the
    machine's browser opens can read the cameras through a name of its own that resolves to 127.0.0.1 (DNS
    rebinding). `port=0` picks a free port (`server.port` says which). `device` says where the models run (in
    `framesift_build_info`). Raises `InputError` when it cannot listen. At most `max_connections` are served at
    once, each closed after `timeout_s` idle (`framesift.observe.serving`: what they turn away is counted on
    `/metrics`).
    """

    def __init__(self, snapshot: Callable[[], Stats], port: int, host: str = "127.0.0.1",
                 page: LivePage | None = None, device: str = "none", *, max_connections: int = MAX_CONNECTIONS,
                 timeout_s: float = TIMEOUT_S):
        from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot))
        registry.register(BuildInfo(device))
        ProcessCollector(registry=registry)  # it registers itself
        self._metrics = make_wsgi_app(registry)
        self._page = page
        try:
            self._server = listen(host, port, self._app, max_connections, timeout_s)
        except OSError as error:
            raise InputError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
        registry.register(ConnectionsCollector(self._server))
        self._loopback = is_loopback(host)
        self.host, self.port = host, self._server.server_port
        self.worker = Worker("metrics server", self._server.serve_forever)
        self._closed = False

    def start(self) -> None:
        """Serve from now on (idempotent)."""
        if not self._closed:
            self.worker.start_once()

    @property
    def url(self) -> str:
        """`http://host:port` (a page's address when the host is one a browser can open)."""
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self._page is not None and (path == "/" or path == "/live" or path.startswith("/live/")):
            if self._loopback and not is_loopback(urlsplit("//" + environ.get("HTTP_HOST", "")).hostname or ""):
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
            if self.worker.started:
                self._server.shutdown()  # it waits for serve_forever to end: only when it runs
                self.worker.join()
            self._server.server_close()


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
