"""Sliding-window limits and the batch cap, decided together in one atomic step (SPEC §4).

A `Limiter` answers one question per datapoint: of the strategies that matched (in definition order), which is
the first none of whose limits is reached, given that the current batch is not full? It consumes one unit of
each of that strategy's limits and one place in the batch, or nothing at all.

Windows are sliding: a limit of N per W seconds admits a datapoint at time t only if fewer than N were admitted
in (t - W, t], so no half-open span [s, s + W) ever holds more than N.

- `MemoryLimiter`: one process, a lock around the decision.
- `RedisLimiter`: every process on one Redis shares the budgets; the decision is one Lua script, one round trip.
- `FallbackLimiter`: wraps a `RedisLimiter` and follows the `pause` or `memory` policy while Redis is unavailable
  (unreachable, or refusing: a wrong password, an ACL, out of memory); `health()` says which, and since when.

Keys are namespaced by the target dataset and the strategy name, so the same strategy name used by two
configurations of one dataset shares its budget.

A decision happens now, by the limiter's clock, unless the caller says when (`at`, seconds since the epoch): a
recording replayed faster than real time spends its budgets on its own clock (SPEC §9, "Video time"). A window
holds every admission later than its start, so admissions from a clock ahead of `at` (another recording replayed
beside it) count against it.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol
from urllib.parse import quote

from framesift.errors import LimitStoreError
from framesift.redaction import redact
from framesift.redis_url import credentials_refused, describe_redis_error, redis_client
from framesift.resources import Resource

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Candidate:
    """A matched strategy and its limits as (window seconds, max count) pairs."""

    name: str
    limits: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class BatchCap:
    """The batch a datapoint would join, its cap, and how many it already held before this process started."""

    name: str
    max_images: int | None
    already_there: int = 0


class Outcome(Enum):
    ACCEPTED = "accepted"
    BATCH_FULL = "batch_full"
    NO_CREDIT = "limits"
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    strategy: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


@dataclass(frozen=True)
class LimitFill:
    """How much of one limit is spent: `used` of `max` in the last `window_s` seconds; the oldest use leaves the
    window (one credit comes back) in `next_credit_s` seconds (None when none is used)."""

    strategy: str
    window_s: int
    max: int
    used: int
    next_credit_s: float | None


@dataclass(frozen=True)
class StoreHealth:
    """Whether the limit store answers, how many decisions were made without it, and why it last did not."""

    available: bool = True
    unavailable_decisions: int = 0
    last_error: str | None = None


class Limiter(Protocol):
    def decide(self, dataset: str, candidates: Sequence[Candidate], batch: BatchCap,
               at: float | None = None) -> Decision:
        """Select the first candidate with credit and consume it, atomically with the batch cap; `at` is the
        datapoint's time (default: now)."""
        ...

    def fill(self, dataset: str, candidates: Sequence[Candidate], at: float | None = None) -> list[LimitFill]:
        """Each limit of each candidate, as spent at `at` (default: now); consumes nothing."""
        ...

    def health(self) -> StoreHealth: ...

    def close(self) -> None: ...


class MemoryLimiter(Resource):
    """Budgets of one process. Thread-safe; `clock` is injectable for tests.

    A local dataset's budgets go on across runs (`resume`): its windows begin from what its records say was
    admitted (the dataset's lock, `LocalDataset(exclusive=True)`, keeps a second process from spending them too).
    """

    def __init__(self, clock: Clock = time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted: dict[tuple[str, str, int], list[float]] = {}  # sorted admission times
        self._batches: dict[tuple[str, str], int] = {}
        self._before: dict[tuple[str, str], list[float]] = {}  # (dataset, strategy) -> admitted by earlier runs
        self._resumed: set[str] = set()  # the folders whose earlier admissions are in `_before`

    def resume(self, dataset: str, folder: str, admitted: Mapping[str, Sequence[float]]) -> None:
        """Begin the windows of `dataset`, written in `folder`, from what earlier runs admitted there (`admitted`:
        strategy -> sorted times, seconds since the epoch); once per folder (two collectors of one folder)."""
        with self._lock:
            if folder in self._resumed:
                return
            self._resumed.add(folder)
            for strategy, times in admitted.items():
                before = self._before.setdefault((dataset, strategy), [])
                before[:] = sorted([*before, *times])

    def decide(self, dataset: str, candidates: Sequence[Candidate], batch: BatchCap,
               at: float | None = None) -> Decision:
        with self._lock:
            now = self._clock() if at is None else at
            in_batch = max(self._batches.get((dataset, batch.name), 0), batch.already_there)
            if batch.max_images is not None and in_batch >= batch.max_images:
                return Decision(Outcome.BATCH_FULL)
            for candidate in candidates:
                windows = [(self._window(dataset, candidate.name, w, now), n) for w, n in candidate.limits]
                if all(len(admitted) < n for admitted, n in windows):
                    for admitted, _ in windows:
                        bisect.insort(admitted, now)
                    self._batches[(dataset, batch.name)] = in_batch + 1
                    return Decision(Outcome.ACCEPTED, candidate.name)
            return Decision(Outcome.NO_CREDIT)

    def fill(self, dataset: str, candidates: Sequence[Candidate], at: float | None = None) -> list[LimitFill]:
        with self._lock:
            now = self._clock() if at is None else at
            fills = []
            for candidate in candidates:
                for window, max_count in candidate.limits:
                    admitted = self._window(dataset, candidate.name, window, now)
                    fills.append(LimitFill(candidate.name, window, max_count, len(admitted),
                                           admitted[0] + window - now if admitted else None))
            return fills

    def _window(self, dataset: str, strategy: str, seconds: int, now: float) -> list[float]:
        key = (dataset, strategy, seconds)
        if key not in self._admitted:  # a window opened now begins with what earlier runs admitted
            before = self._before.get((dataset, strategy), [])
            self._admitted[key] = before[bisect.bisect_right(before, now - seconds):]
        admitted = self._admitted[key]
        del admitted[:bisect.bisect_right(admitted, now - seconds)]
        return admitted

    def health(self) -> StoreHealth:
        return StoreHealth()

    def close(self) -> None:
        pass  # owns nothing


# KEYS: batch counter, then every candidate's limit keys in order.
# ARGV: now ("" = the server's clock), unique member, batch cap (-1 = none), batch floor, candidate count,
#       then per candidate: its limit count, then (window seconds, max) pairs.
# Returns {0} batch full, {-1} no credit, else {index of the selected candidate (1-based)}.
_DECIDE_LUA = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local member, cap, floor = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local in_batch = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), floor)
if cap >= 0 and in_batch >= cap then return 0 end
local argi, keyi = 6, 2
for c = 1, tonumber(ARGV[5]) do
  local n = tonumber(ARGV[argi]); argi = argi + 1
  local ok = true
  for l = 0, n - 1 do
    local key, window, max = KEYS[keyi + l], tonumber(ARGV[argi + 2 * l]), tonumber(ARGV[argi + 2 * l + 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= max then ok = false end
  end
  if ok then
    for l = 0, n - 1 do
      local key, window = KEYS[keyi + l], tonumber(ARGV[argi + 2 * l])
      redis.call('ZADD', key, now, member)
      redis.call('EXPIRE', key, window + 1)
    end
    redis.call('SET', KEYS[1], in_batch + 1)
    return c
  end
  argi, keyi = argi + 2 * n, keyi + n
end
return -1
"""


class RedisLimiter(Resource):
    """Budgets shared by every process on one Redis; each decision is one server-side script call.

    Keys look like `framesift:{<dataset>}:limit:<strategy>:<window>`; the braces make every key of one dataset hash
    to one Redis Cluster slot. Timestamps come from `clock`, or from the Redis server's clock when it is None
    (the default), so a fleet shares one clock. A malformed URL raises `LimitStoreError`.
    """

    def __init__(self, url: str, *, clock: Clock | None = None, timeout: float = 0.5, prefix: str = "framesift"):
        self._client = redis_client(url, timeout, LimitStoreError)
        self.url = redact(url)
        self._script = self._client.register_script(_DECIDE_LUA)
        self._clock = clock
        self._prefix = prefix

    def decide(self, dataset: str, candidates: Sequence[Candidate], batch: BatchCap,
               at: float | None = None) -> Decision:
        space = self._space(dataset)
        keys = [f"{space}:batch:{quote(batch.name, safe='')}"]
        if at is None and self._clock is not None:
            at = self._clock()
        args: list[str | int | float] = [
            "" if at is None else repr(at),
            uuid.uuid4().hex,
            -1 if batch.max_images is None else batch.max_images,
            batch.already_there,
            len(candidates),
        ]
        for candidate in candidates:
            args.append(len(candidate.limits))
            for window, max_count in candidate.limits:
                keys.append(self._limit_key(space, candidate.name, window))
                args += [window, max_count]
        result = int(self._script(keys=keys, args=args))
        if result == 0:
            return Decision(Outcome.BATCH_FULL)
        if result < 0:
            return Decision(Outcome.NO_CREDIT)
        return Decision(Outcome.ACCEPTED, candidates[result - 1].name)

    def fill(self, dataset: str, candidates: Sequence[Candidate], at: float | None = None) -> list[LimitFill]:
        """Two round trips (the clock, then one read pipeline); raises what redis-py raises."""
        if at is None and self._clock is not None:
            at = self._clock()
        if at is None:
            seconds, micros = self._client.time()
            at = seconds + micros / 1e6
        space, limits = self._space(dataset), [(c.name, w, n) for c in candidates for w, n in c.limits]
        pipeline = self._client.pipeline(transaction=False)
        for name, window, _ in limits:
            key = self._limit_key(space, name, window)
            pipeline.zcount(key, f"({at - window!r}", "+inf")
            pipeline.zrangebyscore(key, f"({at - window!r}", "+inf", start=0, num=1, withscores=True)
        answers = pipeline.execute()
        return [LimitFill(name, window, max_count, int(used), oldest[0][1] + window - at if oldest else None)
                for (name, window, max_count), used, oldest in zip(limits, answers[::2], answers[1::2], strict=True)]

    def _space(self, dataset: str) -> str:
        return f"{self._prefix}:{{{quote(dataset, safe='')}}}"

    @staticmethod
    def _limit_key(space: str, strategy: str, window: int) -> str:
        return f"{space}:limit:{quote(strategy, safe='')}:{window}"

    def ping(self) -> None:
        """One round trip; raises what redis-py raises when Redis is unreachable or refuses us."""
        self._client.ping()

    def health(self) -> StoreHealth:
        return StoreHealth()

    def close(self) -> None:
        self._client.close()  # idempotent: it disconnects the pool


class FallbackLimiter(Resource):
    """A `RedisLimiter` that keeps the pipeline going while Redis is unavailable.

    Unavailable means unreachable (a network error, a timeout) or refusing (a wrong password, an ACL that forbids
    the script, a Redis out of memory). `policy="pause"` rejects every datapoint until Redis answers again;
    `policy="memory"` decides with local budgets meanwhile. Redis is retried at most every `retry_interval`
    seconds, so an outage costs one timeout per interval, not one per datapoint. Outages and recoveries are
    logged; `health()` tells whether the last attempt succeeded, how many decisions were made without Redis, and
    the last error in words.
    """

    def __init__(self, primary: RedisLimiter, policy: str = "pause", *, retry_interval: float = 2.0,
                 clock: Clock = time.monotonic):
        if policy not in ("pause", "memory"):
            raise LimitStoreError(f"unknown Redis fallback policy {policy!r} (expected 'pause' or 'memory')")
        self._primary = primary
        self._policy = policy
        self._local = MemoryLimiter()
        self._retry_interval = retry_interval
        self._clock = clock
        self._retry_at = 0.0
        self._available = True
        self._unavailable_decisions = 0
        self._last_error: str | None = None

    def decide(self, dataset: str, candidates: Sequence[Candidate], batch: BatchCap,
               at: float | None = None) -> Decision:
        import redis

        if self._available or self._clock() >= self._retry_at:
            try:
                decision = self._primary.decide(dataset, candidates, batch, at)
            except redis.RedisError as error:
                self.unavailable(error)
            else:
                if not self._available:
                    log.warning("Redis is available again; shared budgets resume")
                self._available = True
                return decision
        self._unavailable_decisions += 1
        if self._policy == "memory":
            return self._local.decide(dataset, candidates, batch, at)
        return Decision(Outcome.STORE_UNAVAILABLE)

    def fill(self, dataset: str, candidates: Sequence[Candidate], at: float | None = None) -> list[LimitFill]:
        """Redis's fill while it answers (nothing while it is unavailable: `health()` says why); the local budgets'
        under the `memory` policy meanwhile."""
        import redis

        if self._available:
            try:
                return self._primary.fill(dataset, candidates, at)
            except redis.RedisError as error:
                self.unavailable(error)
        return self._local.fill(dataset, candidates, at) if self._policy == "memory" else []

    def unavailable(self, error: Exception) -> None:
        """Note that Redis failed (logged once per outage); it is tried again after `retry_interval` seconds."""
        self._last_error = describe_redis_error(error, self._primary.url)
        if self._available:
            log.warning("%s; collection follows the %r policy until it is back", self._last_error, self._policy)
        self._available = False
        self._retry_at = self._clock() + self._retry_interval

    def health(self) -> StoreHealth:
        return StoreHealth(self._available, self._unavailable_decisions, self._last_error)

    def close(self) -> None:
        self._primary.close()


def open_limiter(redis_url: str | None, fallback: str = "pause") -> Limiter:
    """The limiter for a run: memory without a URL, Redis with the fallback policy otherwise.

    Redis is asked once at the start: refused credentials raise `LimitStoreError` (a configuration error, not an
    outage); an unreachable Redis is an outage, which the fallback policy covers from the first datapoint.
    """
    if redis_url is None:
        return MemoryLimiter()  # redis-py is not imported: it took a quarter of a stub bootstrap's start-up
    import redis

    primary = RedisLimiter(redis_url)
    limiter = FallbackLimiter(primary, fallback)
    try:
        primary.ping()
    except redis.RedisError as error:
        if credentials_refused(error):
            primary.close()
            raise LimitStoreError(describe_redis_error(error, primary.url)) from None
        limiter.unavailable(error)
    return limiter
