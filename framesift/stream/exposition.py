"""Prometheus exposition of a pipeline's statistics (`--metrics-port`), derived from their declarations
(`framesift.stats`): every counter and gauge a snapshot holds becomes a metric family, labelled by source,
strategy, sink or reason where it is one of several.

Example:
    >>> with MetricsServer(pipeline.snapshot, port=9108):   # doctest: +SKIP
    ...     pipeline.run()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from framesift.errors import InputError
from framesift.resources import Resource
from framesift.stats import Stats, samples


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


class MetricsServer(Resource):
    """`/metrics` served on host:port from a background thread until `close()` (idempotent)."""

    def __init__(self, snapshot: Callable[[], Stats], port: int, host: str = "127.0.0.1"):
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise InputError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()
