"""Prometheus exposition of a pipeline snapshot (`--metrics-port`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Snapshot = Callable[[], dict[str, Any]]

_SOURCE_COUNTERS = ("frames_decoded", "frames_inferred", "frames_skipped", "decode_errors", "corrupt_frames",
                    "reconnects")
_COLLECTOR_COUNTERS = ("datapoints_sampled", "datapoints_registered", "datapoints_dropped",
                       "datapoints_rejected_by_limits", "datapoints_rejected_by_batch_cap",
                       "datapoints_rejected_store_unavailable", "datapoints_failed")
_OUTBOX_COUNTERS = ("delivered", "retried", "refused_full")  # a remote target's outbox
_OUTBOX_GAUGES = {"pending": "pending", "pending_bytes": "pending_bytes", "dead": "dead", "dead_bytes": "dead_bytes",
                  "oldest_pending_age_s": "oldest_pending_age_seconds"}


class SnapshotCollector:
    """A prometheus_client collector that reads the pipeline's snapshot at each scrape."""

    def __init__(self, snapshot: Snapshot):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._snapshot()
        sources = snap.get("sources", {})
        for name in _SOURCE_COUNTERS:
            family = CounterMetricFamily(f"framesift_{name}", name.replace("_", " "), labels=["source"])
            for source, values in sources.items():
                family.add_metric([source], values[name])
            yield family
        dropped = CounterMetricFamily("framesift_frames_dropped", "frames not processed", labels=["source", "reason"])
        for source, values in sources.items():
            for reason, count in values["dropped_by_reason"].items():
                dropped.add_metric([source, reason], count)
        yield dropped
        fps = GaugeMetricFamily("framesift_fps", "inferred frames per second", labels=["source"])
        connected = GaugeMetricFamily("framesift_source_connected", "1 while the source is open", labels=["source"])
        age = GaugeMetricFamily("framesift_frame_age_seconds", "frame age at prediction", labels=["source", "quantile"])
        for source, values in sources.items():
            fps.add_metric([source], values["fps"])
            connected.add_metric([source], 1.0 if values["connected"] else 0.0)
            for quantile, value in values["frame_age_s"].items():
                if value is not None:
                    age.add_metric([source, quantile], value)
        yield from (fps, connected, age)
        collector = snap.get("collector") or {}
        for name in _COLLECTOR_COUNTERS:
            if name in collector:
                yield CounterMetricFamily(f"framesift_{name}", name.replace("_", " "), value=collector[name])
        registered = CounterMetricFamily("framesift_strategy_registered", "datapoints registered per strategy",
                                         labels=["strategy"])
        for strategy, values in collector.get("strategies", {}).items():
            registered.add_metric([strategy], values["registered"])
        yield registered
        by_reason = CounterMetricFamily("framesift_datapoints_dropped_by_reason", "datapoints dropped, by reason",
                                        labels=["reason"])
        for reason, count in collector.get("dropped_by_reason", {}).items():
            by_reason.add_metric([reason], count)
        yield by_reason
        outbox = collector.get("target") or {}
        for name in _OUTBOX_COUNTERS:
            if name in outbox:
                yield CounterMetricFamily(f"framesift_outbox_{name}", f"outbox: {name}", value=outbox[name])
        for name, metric in _OUTBOX_GAUGES.items():
            if outbox.get(name) is not None:
                yield GaugeMetricFamily(f"framesift_outbox_{metric}", f"outbox: {metric}", value=outbox[name])


def serve_prometheus(snapshot: Snapshot, port: int, host: str = "127.0.0.1") -> Any:
    """Serve `/metrics` on host:port from a background thread; returns the server (call `.shutdown()`)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
