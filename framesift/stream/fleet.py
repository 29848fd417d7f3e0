"""One archive replayed by a fleet of boxes sharing one Redis (`--redis`): each recording by one box at a time.

A box claims a recording with a lease (a key set only if absent, with an expiry: Redis's clock, not the boxes',
decides when it runs out) and renews it every third of the lease while it replays, and until the datapoints of the
recording's last frames are written. The replay log is a Redis hash beside the leases, written with the file log's
crash-safe ordering (`Checkpoint`: an entry once the collectors wrote the datapoints of its frames), and only by the
box holding the recording's lease: a box whose lease ran out while it was only slow (paused, swapping) finds its
next write refused, stops that recording, and says so; the box that took it over goes on from the last frame the
log says, or from the last frame in the dataset's records beside it, when that is later (a local target shared by
the fleet). A box that dies (a power cut, `kill -9`) loses its leases when they expire, and another box takes its
recordings over.

A recording is known to the fleet by its path relative to the archive's root (the folder given, or a glob's part
before its first wildcard) and its size, not by its local path: one archive mounted at two paths (NFS) is one
archive. A recording that cannot be read is marked failed once for the fleet, with the reason. When Redis cannot be
reached, the box stops claiming and says so; what it replayed stays in the log up to its last checkpoint.

Keys, under `framesift:replay:<dataset>:`: `log` (identity -> `{"frames", "finished", "file"}`), `known` (identity
-> its frames, 0 when its container does not say), `failed` (identity -> reason), `holders` (identity ->
`{"box", "since"}`), `lease:<identity>` (the box holding it), `stats` (`frames`, `takeovers`, `started`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framesift.errors import LimitStoreError
from framesift.redaction import redact
from framesift.redis_url import redis_client
from framesift.resources import Service
from framesift.stats import FleetStats
from framesift.stream.archives import Recording, recording_identity
from framesift.stream.replay import last_frames
from framesift.workers import Worker

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
SURE = 0.8  # of a lease since it was last renewed: past it, a box no longer counts on holding it
PREFIX = "framesift:replay:"

# KEYS: log, failed, lease, holders, stats; ARGV: identity, box, lease ms. Returns done | failed | held | claimed |
# taken (claimed from a box whose lease ran out before it finished).
_CLAIM = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry and cjson.decode(entry)['finished'] then return 'done' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'failed' end
local owner = redis.call('GET', KEYS[3])
if owner == ARGV[2] then redis.call('PEXPIRE', KEYS[3], ARGV[3]) return 'claimed' end
if owner then return 'held' end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
local now = redis.call('TIME')
redis.call('HSETNX', KEYS[5], 'started', now[1])
local before = redis.call('HGET', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode({box = ARGV[2], since = tonumber(now[1])}))
if before then redis.call('HINCRBY', KEYS[5], 'takeovers', 1) return 'taken' end
return 'claimed'
"""

# KEYS: lease; ARGV: box, lease ms. 1 when still held (renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: log, lease, holders, stats; ARGV: identity, box, entry (JSON), frames, finished (0/1). 0: the lease is
# not this box's (nothing written); 1: written or already said.
_RECORD = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local frames = tonumber(ARGV[4])
local before = redis.call('HGET', KEYS[1], ARGV[1])
local had = 0
if before then
  local last = cjson.decode(before)
  if last['finished'] then return 1 end
  had = last['frames']
  if ARGV[5] == '0' and frames <= had then return 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if frames > had then redis.call('HINCRBY', KEYS[4], 'frames', frames - had) end
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) redis.call('HDEL', KEYS[3], ARGV[1]) end
return 1
"""

# KEYS: lease, failed, holders; ARGV: identity, box, reason. Marks the recording failed (once) and lets it go.
_FAIL = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# KEYS: lease, holders; ARGV: box, identity. Lets a recording go (an orderly stop): another box takes it at once.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[1])
"""


class FleetLog(Service):
    """The replay log of an archive shared by a fleet through Redis, with the leases of the recordings it replays
    (`claim`), renewed by a thread while held (started by `start()`, `with`, or else the first claim); the same
    `frames_done` and `record` as `ReplayLog`. Close it (a context manager): what it still holds is let go, so
    another box takes it over at once."""

    def __init__(self, url: str, dataset: str, records: str | None = None,
                 lease_s: float = DEFAULT_LEASE_S, box: str | None = None):
        self.url, self.dataset, self.lease_s = url, dataset, lease_s
        self._identities: dict[str, str] = {}  # the path of each recording known -> its identity
        self.box = box or f"{socket.gethostname()}:{os.getpid()}"
        self._records = records  # a local target's folder: its records say what was collected before a crash
        self._redis: redis.Redis = redis_client(url, max(5.0, lease_s / 3), LimitStoreError)
        self._prefix = f"{PREFIX}{dataset}:"
        self._scripts = {name: self._redis.register_script(source) for name, source in
                         (("claim", _CLAIM), ("renew", _RENEW), ("record", _RECORD), ("fail", _FAIL),
                          ("release", _RELEASE))}
        self._lock = threading.Lock()
        self._held: dict[str, tuple[Recording, float]] = {}  # identity -> (recording, monotonic time the lease
        # on it was last known to run `lease_s` more: before the claim or the renewal that said so)
        self.unreachable: str | None = None  # why Redis could not be reached, once it could not
        self.claimed = self.taken_over = self.lost_leases = 0
        self._counts: dict[str, Any] | None = None  # the fleet's, as last read (`status`)
        self._stop = threading.Event()
        self._renewer = Worker("lease renewal", self._renew)  # checked by each claim and entry: its death ends the run

    def start(self) -> None:
        """Start renewing the leases this box holds (idempotent; nothing after `close()`)."""
        if not self._stop.is_set():
            self._renewer.start_once()

    def key(self, name: str) -> str:
        return self._prefix + name

    def identity(self, recording: Recording) -> str:
        return self._identities[recording.path]

    def known(self, recordings: list[Recording], root: str) -> None:
        """Make the recordings of an archive (named from its folder `root`) known to the fleet."""
        for recording in recordings:
            self._identities[recording.path] = recording_identity(recording, root)
        if recordings:
            self._call(lambda: self._redis.hset(self.key("known"), mapping={
                self.identity(r): r.frames or 0 for r in recordings}))

    def claim(self, recording: Recording) -> str:
        """done, failed, held (by another box), claimed or taken (over from a box whose lease ran out);
        unreachable when Redis cannot be reached (`unreachable` says why)."""
        self._renewer.check()
        self.start()  # a lease is never held without its renewal
        identity = self.identity(recording)
        keys = [self.key("log"), self.key("failed"), self.key(f"lease:{identity}"), self.key("holders"),
                self.key("stats")]
        asked = time.monotonic()
        answer = self._call(lambda: self._scripts["claim"](keys=keys, args=[identity, self.box,
                                                                              int(self.lease_s * 1000)]))
        if answer is None:
            return "unreachable"
        state = _text(answer)
        if state in ("claimed", "taken"):
            with self._lock:
                self._held[identity] = (recording, asked)
            self.claimed += 1
            self.taken_over += state == "taken"
        return state

    def frames_done(self, recording: Recording) -> int | None:
        """Frames of a recording replayed by the fleet (or after the last in the records of a shared local
        target, when that is later), or None when it was replayed to its end."""
        entry = self._call(lambda: self._redis.hget(self.key("log"), self.identity(recording)))
        frames = 0
        if entry is not None:
            said = json.loads(entry)
            if said["finished"]:
                return None
            frames = int(said["frames"])
        if self._records is not None and os.path.isdir(self._records):
            frames = max(frames, last_frames(Path(self._records)).get(recording.path, -1) + 1)
        return frames

    def record(self, recording: Recording, frames: int, finished: bool) -> None:
        """Say that the first `frames` frames of `recording` were replayed, or all of them, if this box still
        holds its lease (else the recording is noted `lost`: its reader stops it)."""
        self._renewer.check()
        identity = self.identity(recording)
        entry = json.dumps({"frames": frames, "finished": finished, "file": recording.path})
        keys = [self.key("log"), self.key(f"lease:{identity}"), self.key("holders"), self.key("stats")]
        written = self._call(lambda: self._scripts["record"](keys=keys, args=[identity, self.box, entry, frames,
                                                                              int(finished)]))
        if written == 0:
            self._lose(identity, recording)
        elif written == 1 and finished:
            with self._lock:
                self._held.pop(identity, None)

    def fail(self, recording: Recording, reason: str) -> None:
        """Mark a recording failed for the whole fleet (once), with the reason."""
        identity = self.identity(recording)
        with self._lock:
            self._held.pop(identity, None)
        keys = [self.key(f"lease:{identity}"), self.key("failed"), self.key("holders")]
        self._call(lambda: self._scripts["fail"](keys=keys, args=[identity, self.box, reason]))

    def holds(self, recording: Recording) -> bool:
        """Whether this box holds the lease on `recording` for sure: claimed, not lost, and renewed less than
        `SURE` of a lease ago by its own monotonic clock (a box paused past its lease knows it without asking)."""
        with self._lock:
            held = self._held.get(self._identities.get(recording.path, ""))
        return held is not None and self.unreachable is None and time.monotonic() < held[1] + SURE * self.lease_s

    def stats(self) -> FleetStats:
        """This box's part, and the fleet's counts as last read."""
        counts = self._counts or {}
        return FleetStats(
            recordings_claimed=self.claimed, recordings_taken_over=self.taken_over, leases_lost=self.lost_leases,
            recordings=counts.get("recordings", 0), recordings_done=counts.get("done", 0),
            recordings_held=counts.get("claimed", 0), recordings_failed=len(counts.get("failed", {})),
            recordings_left=counts.get("left", 0), frames=counts.get("frames", 0),
            frames_per_second=counts.get("frames_per_second"), seconds_left=counts.get("seconds_left"),
            leases_expired=counts.get("expired", 0), leases_taken_over=counts.get("taken_over", 0), box=self.box,
            redis_lost=self.unreachable)

    def close(self) -> None:
        """Let go of what this box still holds (another box takes it over at once); idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._renewer.started:
            self._renewer.join()
        with self._lock:
            held, self._held = dict(self._held), {}
        if self.unreachable is None:
            for identity in held:
                self._call(lambda i=identity: self._scripts["release"](
                    keys=[self.key(f"lease:{i}"), self.key("holders")], args=[self.box, i]))
        self._redis.close()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self._counts = self._call(lambda: status(self._redis, self.dataset)) or self._counts
            except (ValueError, KeyError, TypeError) as error:  # keys written by hand: the leases matter more
                log.warning("the fleet's counts in Redis cannot be read (%s); its leases are kept all the same",
                            error)
            with self._lock:
                held = dict(self._held)
            for identity, (recording, renewed) in held.items():
                asked = time.monotonic()
                if asked >= renewed + SURE * self.lease_s:  # paused past it: another box may have it already
                    self._lose(identity, recording)
                    continue
                answer = self._call(lambda i=identity: self._scripts["renew"](
                    keys=[self.key(f"lease:{i}")], args=[self.box, int(self.lease_s * 1000)]))
                if answer == 0:
                    self._lose(identity, recording)
                elif answer == 1:
                    with self._lock:
                        if identity in self._held:
                            self._held[identity] = (recording, asked)

    def _lose(self, identity: str, recording: Recording) -> None:
        with self._lock:
            if self._held.pop(identity, None) is None:
                return
            self.lost_leases += 1
        log.warning("this box (%s) lost its lease on %s (another box holds it now, or its lease ran out): it stops "
                    "replaying it", self.box, recording.path)

    def _call(self, command: Any) -> Any:
        """`command()`, or None once Redis cannot be reached (said once: this box then stops claiming)."""
        import redis

        if self.unreachable is not None:
            return None
        try:
            return command()
        except redis.RedisError as error:
            self.unreachable = f"{type(error).__name__}: {redact(str(error))}"
            log.error("Redis at %s cannot be reached (%s): this box stops claiming recordings and stops the one it "
                      "replays; the replay log keeps what was written up to its last checkpoint, and the other boxes "
                      "take the rest over", redact(self.url), self.unreachable)
            return None


def fleet_status(url: str, dataset: str) -> dict[str, Any]:
    """The fleet's replay of `dataset` as it stands (`status`), read from the Redis at `url`."""
    client = redis_client(url, 5.0, LimitStoreError)
    try:
        return status(client, dataset)
    finally:
        client.close()


def status(client: redis.Redis, dataset: str) -> dict[str, Any]:
    """The fleet's replay of `dataset` as it stands: recordings done, claimed, failed and left, frames, the fleet's
    frames a second and the estimated end, which box holds what, leases expired and taken over."""
    prefix = f"{PREFIX}{dataset}:"
    known = {_text(k): int(v) for k, v in client.hgetall(prefix + "known").items()}
    entries = {_text(k): json.loads(v) for k, v in client.hgetall(prefix + "log").items()}
    failed = {_text(k): _text(v) for k, v in client.hgetall(prefix + "failed").items()}
    holders = {_text(k): json.loads(v) for k, v in client.hgetall(prefix + "holders").items()}
    stats = {_text(k): int(v) for k, v in client.hgetall(prefix + "stats").items()}
    now = int(client.time()[0])
    held = {identity: holder for identity, holder in holders.items()
            if client.get(prefix + f"lease:{identity}") is not None}
    done = sum(1 for entry in entries.values() if entry["finished"])
    frames = stats.get("frames", 0)
    elapsed = now - stats["started"] if "started" in stats else 0
    rate = frames / elapsed if elapsed > 0 else None
    total = sum(known.values()) if known and all(known.values()) else None
    left = None if total is None else max(0, total - frames - sum(known[i] for i in failed if i in known))
    return {
        "dataset": dataset, "recordings": len(known), "done": done, "claimed": len(held), "failed": failed,
        "left": max(0, len(known) - done - len(failed)), "frames": frames, "frames_total": total,
        "frames_per_second": None if rate is None else round(rate, 1),
        "seconds_left": None if rate is None or left is None or rate == 0 else round(left / rate),
        "holders": {identity.split("\0")[0]: holder for identity, holder in held.items()},
        "expired": len(holders) - len(held), "taken_over": stats.get("takeovers", 0),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
