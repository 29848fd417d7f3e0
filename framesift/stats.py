"""What framesift counts, as types: each statistic is declared once, here, with its kind and meaning.

Everything that reports numbers derives them from these declarations: `as_dict()` (a snapshot as JSON),
`StreamStats.summary()` (the `--summary` file) and `samples()` (the Prometheus exposition on `--metrics-port`).
A field declared with `counter()` or `gauge()` is exposed as `framesift_<name>` (a counter gains `_total`); one
declared with a `label` holds a dict from that label's values to numbers (a `quantile` label's `p50` is exposed as
Prometheus writes it, `quantile="0.5"`); one declared with `histogram()` holds a `Histogram`; `each()` holds a
dict of nested statistics told apart by a label (per source, per strategy), `nested()` one nested set under a name
prefix. A plain field is reported in JSON only (totals that Prometheus sums itself, texts).

Example:
    >>> stats = SourceStats(frames_decoded=3, dropped_by_reason={"newer_frame": 1})
    >>> [(name, labels, value) for name, _, _, labels, value in samples(stats)][:2]
    [('framesift_frames_decoded', (), 3.0), ('framesift_frames_inferred', (), 0.0)]
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Labels = tuple[tuple[str, str], ...]
# (metric name, "counter" | "gauge" | "histogram", help, labels, value)
Sample = tuple[str, str, str, Labels, "float | Histogram | None"]
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # a histogram's bounds


@dataclass
class Histogram:
    """Observations counted into buckets by upper bound, as Prometheus keeps them; `counts` holds one more than
    `bounds` (what exceeds the last bound), each bucket's own count (not cumulative).

    Example:
        >>> h = Histogram.of((0.01, 0.1)); h.observe(0.004); h.observe(0.05); h.observe(3.0)
        >>> h.buckets()
        [('0.01', 1.0), ('0.1', 2.0), ('+Inf', 3.0)]
    """

    bounds: tuple[float, ...]
    counts: list[int]
    sum: float = 0.0

    @classmethod
    def of(cls, bounds: Sequence[float]) -> Histogram:
        return cls(tuple(bounds), [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.sum)

    def buckets(self) -> list[tuple[str, float]]:
        """(upper bound, observations up to it) of every bucket, `+Inf` last: prometheus_client's form."""
        running, out = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


def counter(help: str, *, metric: str | None = None, label: str | None = None) -> Any:
    """A count that only grows; with `label`, a dict of counts by that label."""
    return _declared("counter", help, metric, label)


def gauge(help: str, *, metric: str | None = None, label: str | None = None, default: Any = 0) -> Any:
    """A value that goes up and down; with `label`, a dict of values by that label."""
    return _declared("gauge", help, metric, label, default)


def histogram(help: str, bounds: Sequence[float] = SECONDS, *, metric: str | None = None) -> Any:
    """Observations counted into buckets (a `Histogram`), exposed as `framesift_<name>_bucket`, `_sum`, `_count`."""
    return field(default_factory=lambda: Histogram.of(bounds),
                 metadata={"kind": "histogram", "help": help, "metric": metric, "label": None})


def each(label: str) -> Any:
    """A dict of nested statistics, one per value of `label` (a source, a strategy)."""
    return field(default_factory=dict, metadata={"each": label})


def nested(prefix: str) -> Any:
    """One optional set of nested statistics, exposed under `framesift_<prefix>...`."""
    return field(default=None, metadata={"nested": prefix})


def total() -> Any:
    """The sum of the same-named counter of every source (JSON only: Prometheus sums the per-source series)."""
    return field(default=0, metadata={"total": True})


def _declared(kind: str, help: str, metric: str | None, label: str | None, default: Any = 0) -> Any:
    metadata = {"kind": kind, "help": help, "metric": metric, "label": label}
    if label is not None:
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Stats:
    """The base of every statistics type: `as_dict()` for JSON."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def samples(stats: Stats, prefix: str = "framesift_", labels: Labels = ()) -> Iterator[Sample]:
    """Every declared counter and gauge of `stats` (and of what it nests) as Prometheus samples. One with no value
    yet (an empty dict, a gauge at None) comes with the value None, so that its metric is declared all the same."""
    for declared in dataclasses.fields(stats):
        meta, value = declared.metadata, getattr(stats, declared.name)
        if "each" in meta:
            for key, child in value.items():
                yield from samples(child, prefix, (*labels, (meta["each"], key)))
        elif "nested" in meta:
            if value is not None:
                yield from samples(value, prefix + meta["nested"], labels)
        elif "kind" in meta:
            name = prefix + (meta["metric"] or declared.name)
            items = (value.items() or [("", None)]) if meta["label"] else [(None, value)]
            for key, number in items:
                where = labels if key is None else (*labels, (meta["label"], _label_value(meta["label"], key)))
                if not (number is None or isinstance(number, Histogram)):
                    number = float(number)
                yield name, meta["kind"], meta["help"], where, number


def _label_value(label: str, key: str) -> str:
    """A label's value as exposed: a quantile as Prometheus writes it (`p50` -> `0.5`, `p99` -> `0.99`)."""
    if label == "quantile" and key.startswith("p") and key[1:].isdigit():
        return str(int(key[1:]) / 100)
    return key


@dataclass
class SourceStats(Stats):
    """One source of a pipeline."""

    frames_decoded: int = counter("frames decoded")
    frames_inferred: int = counter("frames the model ran on")
    frames_dropped: int = 0  # the sum of dropped_by_reason
    dropped_by_reason: dict[str, int] = counter("frames decoded but not inferred, by reason", metric="frames_dropped",
                                                label="reason")
    frames_skipped: int = 0  # the sum of skipped_by_reason
    skipped_by_reason: dict[str, int] = counter("frames not handed on, by reason: max_fps (--max-fps), keyframes_only "
                                                "(a live camera's GOP the model takes no frame of, decoded keyframe "
                                                "only)", metric="frames_skipped", label="reason")
    frames_unsampled: int = counter("frames of a replayed file that no draw sampled: not handed on, decoded only "
                                           "when a sampled frame refers to them")
    decode_errors: int = counter("packets that did not decode, and reads that failed")
    corrupt_frames: int = counter("frames decoded with damage concealed by FFmpeg")
    reconnects: int = counter("times the source was reopened")
    connected: bool = gauge("1 while the source is open", metric="source_connected", default=False)
    ever_connected: bool = gauge("1 once the source has been open since start (0: a wrong URL, a camera off)",
                                 metric="source_ever_connected", default=False)
    fps: float = gauge("frames inferred per second over the last 5 s")
    frame_age_s: dict[str, float | None] = gauge("frame age at prediction (s), over the last 4096 frames",
                                                 metric="frame_age_seconds", label="quantile")


@dataclass
class SinkStats(Stats):
    """One sink (`--predictions`, `--save-video`, or one given to `Pipeline`)."""

    dropped: int = counter("frames a sink dropped (its queue was full)", metric="sink_dropped")
    failed: int = counter("frames a sink failed on", metric="sink_failed")


@dataclass
class StrategyStats(Stats):
    """One sampling strategy."""

    sampled: int = counter("datapoints a strategy matched", metric="strategy_sampled")
    registered: int = counter("datapoints registered per strategy", metric="strategy_registered")
    rejected_near_duplicate: int = counter("datapoints a strategy matched that were near-duplicates",
                                           metric="strategy_rejected_near_duplicate")


@dataclass
class FleetStats(Stats):
    """A box's part in a fleet's replay of an archive (`--redis`), and the fleet's counts as the box last read them
    (every third of a lease; `framesift replay status` reads the same)."""

    recordings_claimed: int = counter("recordings of the archive this box claimed")
    recordings_taken_over: int = counter("recordings this box took over from a box whose lease had run out")
    leases_lost: int = counter("recordings this box stopped because its lease ran out (paused past it)")
    recordings: int = gauge("recordings of the fleet's archive")
    recordings_done: int = gauge("recordings the fleet replayed to their end")
    recordings_held: int = gauge("recordings a box of the fleet holds now")
    recordings_failed: int = gauge("recordings no box could read")
    recordings_left: int = gauge("recordings not yet replayed to their end")
    frames: int = gauge("frames the fleet replayed (by its replay log)")
    frames_per_second: float | None = gauge("the fleet's frames a second since its first claim", default=None)
    seconds_left: float | None = gauge("the estimated time left to the end of the archive (s)", default=None)
    leases_expired: int = gauge("leases that ran out and were not yet taken over")
    leases_taken_over: int = gauge("recordings taken over from a box whose lease ran out, by the whole fleet")
    box: str = ""  # this box's name in the fleet (host:pid)
    redis_lost: str | None = None  # why Redis could not be reached, once it could not


@dataclass
class OutboxStats(Stats):
    """A remote target's outbox and its sender."""

    pending: int = gauge("datapoints waiting in the outbox")
    pending_bytes: int = gauge("bytes waiting in the outbox")
    dead: int = gauge("datapoints the target refused for good (in dead/)")
    dead_bytes: int = gauge("bytes in dead/")
    oldest_pending_age_s: float | None = gauge("age of the oldest pending datapoint (s)",
                                               metric="oldest_pending_age_seconds", default=None)
    delivered: int = counter("datapoints the target confirmed")
    retried: int = counter("deliveries that failed for now and are tried again")
    refused_full: int = counter("datapoints refused because the outbox was full")
    vanished: int = counter("pending entries whose files were removed by hand while running")
    last_error: str | None = None
    outbox: str = ""  # the outbox's folder


@dataclass
class CollectorStats(Stats):
    """What happened to every datapoint offered to a collector."""

    datapoints_sampled: int = counter("datapoints some strategy matched")
    datapoints_registered: int = counter("datapoints written to the target (for a remote one: to its outbox)")
    datapoints_dropped: int = counter("datapoints dropped (see datapoints_dropped_by_reason)")
    # the four reasons a datapoint is refused: one metric labelled by reason (`rejected_by_reason`), these in JSON
    datapoints_rejected_by_limits: int = 0  # refused by the strategies' limits
    datapoints_rejected_by_batch_cap: int = 0  # refused because the batch was full
    datapoints_rejected_store_unavailable: int = 0  # refused while the limit store was unreachable
    datapoints_rejected_near_duplicate: int = 0  # near-duplicates of frames collected lately (no budget spent)
    rejected_by_reason: dict[str, int] = counter("datapoints a strategy matched that were not collected, by reason: "
                                                 "limits, batch_cap, store_unavailable, near_duplicate",
                                                 metric="datapoints_rejected", label="reason")
    datapoints_failed: int = counter("datapoints that could not be written (see last_failure)")
    dropped_by_reason: dict[str, int] = counter("datapoints dropped, by reason",
                                                metric="datapoints_dropped_by_reason", label="reason")
    limit_store_available: bool = gauge("1 while the limit store answers", default=True)
    limit_store_unavailable_decisions: int = counter("limit decisions made without the shared limit store")
    limit_store_error: str | None = None  # why the limit store was last unavailable
    queue_depth: int = gauge("datapoints waiting for the collector's thread")
    config_version: int | None = gauge("the version of the configuration in force (from a store)", default=None)
    config_sha: str | None = None  # its content hash
    config_reloads: int = counter("new configurations put in force while running")
    config_reloads_refused: int = counter("configurations found in the store and kept out (invalid)")
    config_store_error: str | None = None  # why the store was last unreachable, or what it last held that was refused
    registered_by_config_version: dict[str, int] = counter("datapoints registered, by the configuration that "
                                                           "selected them", metric="registered_by_config",
                                                           label="config_version")
    last_failure: str | None = None  # why the last failed datapoint could not be written
    limits: list[dict[str, Any]] = field(default_factory=list)  # each limit's fill (`LimitFill` as a dict)
    strategies: dict[str, StrategyStats] = each("strategy")
    target: OutboxStats | None = nested("outbox_")


@dataclass
class StreamStats(Stats):
    """A pipeline: totals over its sources, each source, the sinks, and the collector when collecting."""

    frames_decoded: int = total()
    frames_inferred: int = total()
    frames_dropped: int = total()
    frames_skipped: int = total()
    frames_unsampled: int = total()
    decode_errors: int = total()
    corrupt_frames: int = total()
    reconnects: int = total()
    inference_s: Histogram = histogram("seconds a call of the models took (the workflow's steps on a batch of "
                                       "frames)", metric="inference_seconds")
    elapsed_s: float = 0.0
    errors: dict[str, int] = counter("exceptions in callbacks, sinks and status callbacks", label="where")
    sources: dict[str, SourceStats] = each("source")
    sinks: dict[str, SinkStats] = each("sink")
    collectors: dict[str, CollectorStats] = each("collector")  # by workflow step (`collect` for --al-config)
    fleet: FleetStats | None = nested("fleet_")  # an archive shared by a fleet (`--redis`)

    @classmethod
    def of(cls, sources: dict[str, SourceStats], **others: Any) -> StreamStats:
        """The statistics of a stream of these sources, its totals summed over them."""
        totals = {f.name: sum(getattr(s, f.name) for s in sources.values())
                  for f in dataclasses.fields(cls) if f.metadata.get("total")}
        return cls(**totals, sources=sources, **others)

    def collected(self) -> CollectorStats:
        """The collectors' counters added up (one collector's are its own): sums of counts, a limit store available
        when it was for all, the first error, counts per reason and per strategy name added up, and the outbox of
        a single collector."""
        collectors = list(self.collectors.values())
        total = CollectorStats()
        if len(collectors) <= 1:
            return collectors[0] if collectors else total
        for declared in dataclasses.fields(CollectorStats):
            values = [getattr(c, declared.name) for c in collectors]
            if declared.name == "limit_store_available":
                setattr(total, declared.name, all(values))
            elif declared.name == "strategies":
                for name in {n for v in values for n in v}:
                    total.strategies[name] = StrategyStats(*(sum(getattr(v[name], f.name) for v in values if name in v)
                                                             for f in dataclasses.fields(StrategyStats)))
            elif declared.name == "limits":  # each collector's own limits, side by side
                total.limits = [fill for v in values for fill in v]
            elif declared.name == "limit_store_unavailable_decisions":  # one store, shared: not added up
                total.limit_store_unavailable_decisions = max(values)
            elif isinstance(values[0], dict):  # counts by reason, by configuration version
                setattr(total, declared.name, {k: sum(v.get(k, 0) for v in values) for k in {k for v in values
                                                                                              for k in v}})
            elif declared.type in ("int", "bool"):
                setattr(total, declared.name, sum(values))
            elif declared.name != "target":
                setattr(total, declared.name, next((v for v in values if v is not None), None))
        return total

    def summary(self) -> dict[str, Any]:
        """The `--summary` JSON: the stream's totals and the collectors' counters (added up) side by side at the
        top, the registered (`strategies`) and sampled (`strategies_sampled`) counts per strategy, the outbox
        (`target`, one collector's), each collector's own counters when there are several (`collectors`), the
        sinks and the sources."""
        out = self.as_dict()
        collectors = out.pop("collectors")
        collected = self.collected().as_dict()
        strategies = collected.pop("strategies")
        out["datapoints_dropped_by_reason"] = collected.pop("dropped_by_reason")
        out["strategies"] = {name: counts["registered"] for name, counts in strategies.items()}
        out["strategies_sampled"] = {name: counts["sampled"] for name, counts in strategies.items()}
        target = collected.pop("target")
        out.update(collected)
        if target is not None:
            out["target"] = target
        if len(collectors) > 1:
            out["collectors"] = collectors
        return out
