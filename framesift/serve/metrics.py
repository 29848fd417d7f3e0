"""`/metrics` of `framesift serve`: requests and latency per route (the route's template, never a request's path
or query), the inference queue, and each dataset's collector (the same counters as `framesift run`'s, labelled by
dataset).

Example:
    >>> metrics = ServeMetrics()
    >>> metrics.observe("/infer/object_detection", 200, 0.012)
    >>> b'route="/infer/object_detection"' in metrics.registry_text()
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from framesift.observe.exposition import metric_families
from framesift.stats import samples

if TYPE_CHECKING:
    from framesift.serve.collection import Collection
    from framesift.serve.models import InferenceQueue

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """The server's own metrics in a registry of their own; the queue and the collectors read at each scrape."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.latency = Histogram("framesift_serve_request_seconds", "seconds from a request's arrival to its answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("framesift_serve_requests", "requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self._watched: tuple[InferenceQueue, Collection | None] | None = None  # what the next scrape reads
        self.registry.register(self)  # a custom collector: `collect`

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.latency.labels(route).observe(seconds)
        self.requests.labels(route, str(status)).inc()

    def exposition(self, queue: InferenceQueue, collection: Collection | None) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST

        self._watched = (queue, collection)
        return self.registry_text(), CONTENT_TYPE_LATEST

    def registry_text(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self._watched is None:
            return
        queue, collection = self._watched
        yield GaugeMetricFamily("framesift_serve_queue_depth", "requests waiting for the inference thread",
                                value=queue.depth())
        yield CounterMetricFamily("framesift_serve_overloaded", "requests refused (503) because the inference "
                                  "queue was full", value=queue.overloaded)
        yield CounterMetricFamily("framesift_serve_model_calls", "model calls (a call may answer several requests)",
                                  value=queue.batches)
        if collection is None:
            return
        uncollected = CounterMetricFamily("framesift_serve_uncollected", "requests offered to no collector, by "
                                          "reason", labels=["reason"])
        for reason, count in collection.uncollected.items():
            uncollected.add_metric([reason], count)
        yield uncollected
        yield from metric_families(sample for dataset, stats in collection.snapshot().items()
                                   for sample in samples(stats, labels=(("dataset", dataset),)))
