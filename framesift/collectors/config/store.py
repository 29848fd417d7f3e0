"""Configuration stores: one active-learning configuration per dataset, set in one place, read by every box.

- `RedisStore` (`redis://host:port/db`, the Redis the fleet shares for budgets): each `set` is validated, then stored
  with a version that only grows and its content hash; every version is kept (`get(version=N)`, `history()`), and a
  message on the dataset's channel tells the running instances at once.
- `RoboflowStore` (`roboflow:<workspace>`): Roboflow's documented endpoints, `GET` and `POST
  {api}/{workspace}/{project}/active_learning` (a set's body is `{"config": {...}}`); it keeps no history, so a
  version is counted here, by content.
- `FileStore` (a path): the file itself, for one dataset; versions counted by content as well.

A configuration found invalid in a store (written there by hand) is never returned: `get` raises `ConfigError`
(`NotStored` for a current version that is no version number).

Example:
    >>> with open_store("redis://127.0.0.1:6379/0") as store:   # doctest: +SKIP
    ...     store.set("people", {"enabled": False}).version
    3
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from framesift.collectors.config.schema import ActiveLearningConfig, parse_config
from framesift.documents import parse_document, read_document
from framesift.errors import ConfigError, FramesiftError, InputError
from framesift.redaction import redact
from framesift.redis_url import redis_client
from framesift.resources import Resource


class StoreUnavailable(FramesiftError, ConnectionError):
    """The store cannot be reached, or refused the request (a network error, a wrong key)."""


class StoreRefused(InputError):
    """The store refused framesift's credentials (a wrong Redis password, a Roboflow key it does not take): a
    configuration error at start (exit code 2), counted like an outage while running."""


class NotStored(InputError):
    """The store holds no configuration (or not that version) for the dataset."""


@dataclass(frozen=True)
class Version:
    """One version a store keeps: its number, content hash and when it was set."""

    version: int
    sha: str
    set_at: float | None


@dataclass(frozen=True)
class StoredConfig:
    """A configuration as a store holds it: validated, with its version and content hash."""

    dataset: str
    version: int
    sha: str  # the first 12 hex digits of the SHA-256 of its canonical JSON
    data: dict[str, Any]  # what `set` was given (and `get` prints back)
    config: ActiveLearningConfig
    set_at: float | None = None

    @classmethod
    def of(cls, dataset: str, version: int, data: Mapping[str, Any], set_at: float | None = None,
           source: str = "configuration") -> StoredConfig:
        """Validate `data` (`ConfigError` with every problem by path), then hash it, and wrap it."""
        config = parse_config(data, source)
        return cls(dataset, version, content_sha(data), dict(data), config, set_at)


def content_sha(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class ConfigStore(Protocol):
    name: str  # the store, as a user named it (secrets redacted)

    def get(self, dataset: str, version: int | None = None) -> StoredConfig:
        """The configuration in force (or version `version`); `NotStored`, `StoreUnavailable`, `ConfigError`."""
        ...

    def set(self, dataset: str, data: Mapping[str, Any]) -> StoredConfig:
        """Validate, then store as the next version."""
        ...

    def history(self, dataset: str) -> list[Version]:
        """Every version kept, oldest first."""
        ...

    def wait(self, dataset: str, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the store to announce a change; True when it did (a store that cannot
        tell just waits, and says False)."""
        ...

    def close(self) -> None: ...


def open_store(url: str, *, api_key: str | None = None, timeout: float = 2.0) -> ConfigStore:
    """A store from its URL: `redis://...`, `rediss://...`, `roboflow:<workspace>` (or `<workspace>/<project>`,
    whose project then names the dataset), a file path, or the name of a bundled configuration (`realistic`: see
    `framesift.configs`) where no such file is here."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, timeout=timeout)
    if url.startswith("roboflow:"):
        return RoboflowStore(url.removeprefix("roboflow:"), api_key, timeout=timeout)
    if "://" in url:  # a URL of another kind is no file name: `file:///etc/x.yaml` wrote ./file:/etc/x.yaml
        raise InputError(f"{redact(url)} is no configuration store: give redis://, rediss://, unix://, "
                         "roboflow:<workspace> or a file's path")
    if not Path(url).exists() and not Path(url).suffix and "/" not in url:  # a name, not a file's path
        from framesift.configs import named, names

        bundled = named(url)
        if bundled is None:
            raise InputError(f"no file {url!r} here, nor a bundled configuration of that name "
                             f"({', '.join(names())})")
        return FileStore(str(bundled))
    return FileStore(url)


# -- Redis ----------------------------------------------------------------------------------------------------------
# KEYS: the version counter, the versions hash, the current version; ARGV: the document, the channel.
_SET_LUA = """
local version = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], version, ARGV[1])
redis.call('SET', KEYS[3], version)
redis.call('PUBLISH', ARGV[2], version)
return version
"""


class RedisStore(Resource):
    """Every version of each dataset's configuration in Redis, under `framesift:{<dataset>}:config:*` (one
    Cluster slot per dataset, beside its budgets); a set is one atomic script that also publishes the new
    version on `framesift:{<dataset>}:config`."""

    def __init__(self, url: str, *, timeout: float = 2.0, prefix: str = "framesift"):
        self._client = redis_client(url, timeout, InputError)
        self.name = redact(url)
        self._prefix = prefix
        self._set = self._client.register_script(_SET_LUA)
        self._subscriptions: dict[str, Any] = {}

    def _keys(self, dataset: str) -> tuple[str, str, str, str]:
        from urllib.parse import quote

        space = f"{self._prefix}:{{{quote(dataset, safe='')}}}:config"
        return f"{space}:seq", f"{space}:versions", f"{space}:current", space

    def get(self, dataset: str, version: int | None = None) -> StoredConfig:
        seq, versions, current, _ = self._keys(dataset)
        with _unavailable(self.name):
            if version is None:
                found = self._client.get(current)
                if found is None:
                    raise NotStored(f"{self.name} holds no configuration for {dataset!r}")
                version = self._version(dataset, found)
            document = self._client.hget(versions, str(version))
        if document is None:
            raise NotStored(f"{self.name} holds no version {version} of the configuration of {dataset!r}")
        return self._stored(dataset, version, document)

    def set(self, dataset: str, data: Mapping[str, Any]) -> StoredConfig:
        parse_config(data)  # validated before anything is stored
        document = json.dumps({"config": data, "sha": content_sha(data), "set_at": time.time()})
        seq, versions, current, channel = self._keys(dataset)
        with _unavailable(self.name):
            version = int(self._set(keys=[seq, versions, current], args=[document, channel]))
        return self._stored(dataset, version, document.encode())

    def history(self, dataset: str) -> list[Version]:
        _, versions, _, _ = self._keys(dataset)
        with _unavailable(self.name):
            documents = self._client.hgetall(versions)
        kept = []
        for number, document in documents.items():
            if not _is_version(number):  # a field written there by hand: no version of ours
                continue
            try:
                body = json.loads(document)
                kept.append(Version(int(number), str(body["sha"]), _set_at(body)))
            except (ValueError, KeyError, TypeError, RecursionError):
                kept.append(Version(int(number), "(damaged)", None))
        return sorted(kept, key=lambda v: v.version)

    def wait(self, dataset: str, timeout: float) -> bool:
        """Wait for the dataset's channel to announce a version (a dropped subscription is made again)."""
        import redis

        channel = self._keys(dataset)[3]
        pubsub = self._subscriptions.get(channel)
        try:
            if pubsub is None:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel)
                self._subscriptions[channel] = pubsub
            return pubsub.get_message(timeout=timeout) is not None
        except (redis.RedisError, OSError):  # Redis went away: subscribe again at the next wait; poll meanwhile
            self._subscriptions.pop(channel, None)
            time.sleep(timeout)
            return False

    def _version(self, dataset: str, found: bytes | str) -> int:
        """The current version as stored: a number `set` wrote; anything else (a value set by hand) is kept out
        like an invalid configuration."""
        if not _is_version(found):
            shown = found[:40].decode(errors="replace") if isinstance(found, bytes) else found[:40]
            raise NotStored(f"{self.name} holds no usable configuration for {dataset!r}: its current version is "
                            f"{shown!r}, not a version number (set by hand?)")
        return int(found)

    def _stored(self, dataset: str, version: int, document: bytes | str) -> StoredConfig:
        source = f"configuration {version} of {dataset!r} in {self.name}"
        text = document.decode(errors="replace") if isinstance(document, bytes) else document
        body = parse_document(text, source, json_only=True)
        if not isinstance(body, dict) or not isinstance(body.get("config"), Mapping):
            raise ConfigError([f"(top level): version {version} in {self.name} is not a stored configuration"],
                              f"configuration of {dataset!r}")
        return StoredConfig.of(dataset, version, body["config"], _set_at(body), source)

    def close(self) -> None:
        for pubsub in self._subscriptions.values():
            pubsub.close()
        self._subscriptions.clear()
        self._client.close()


def _set_at(body: Mapping[str, Any]) -> float | None:
    """When a stored version was set, as `set` writes it; a value written by hand that is no such time is none."""
    when = body.get("set_at")
    return float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) and 0 <= when < 1e11 else None


def _is_version(value: bytes | str) -> bool:
    """Whether a stored value is a version number as `set` writes them (1, 2, ...)."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return text.isascii() and text.isdigit() and len(text) < 19 and int(text) > 0


@contextmanager
def _unavailable(name: str) -> Iterator[None]:
    """redis-py's errors as `StoreRefused` (credentials) or `StoreUnavailable` sentences."""
    import redis

    from framesift.redis_url import credentials_refused

    try:
        yield
    except redis.RedisError as error:
        if credentials_refused(error):
            raise StoreRefused(f"the configuration store {name} refused framesift's credentials ({error})") from None
        raise StoreUnavailable(f"the configuration store {name} is unavailable ({type(error).__name__}: "
                               f"{error})") from None


# -- Roboflow -------------------------------------------------------------------------------------------------------
class RoboflowStore(Resource):
    """The Roboflow API's active-learning configuration of a project (`ROBOFLOW_API_URL`, the key from the
    argument, `ROBOFLOW_API_KEY`); the project is the dataset, or the one named in `workspace/project`."""

    def __init__(self, where: str, api_key: str | None, *, timeout: float = 10.0):
        import requests

        workspace, _, self._project = where.partition("/")
        if not workspace:
            raise InputError("a Roboflow store is roboflow:<workspace> (or roboflow:<workspace>/<project>)")
        self._workspace = workspace
        self._key = api_key or os.environ.get("ROBOFLOW_API_KEY", "")
        if not self._key:
            raise InputError("the Roboflow store needs an API key (--api-key or ROBOFLOW_API_KEY)")
        self._base = (os.environ.get("ROBOFLOW_API_URL") or "https://api.roboflow.com").rstrip("/")
        self._http = requests.Session()
        self._timeout = timeout
        self.name = f"roboflow:{where}"
        self._versions: dict[str, list[StoredConfig]] = {}  # what this process has seen, by dataset

    def project(self, dataset: str) -> str:
        return self._project or dataset

    def get(self, dataset: str, version: int | None = None) -> StoredConfig:
        if version is not None:
            raise InputError("the Roboflow API keeps no versions of a configuration: get the one in force")
        body = self._request("GET", dataset)
        data = body.get("config") if isinstance(body, dict) else None
        if data is None:
            raise NotStored(f"{self.name} holds no active-learning configuration for {self.project(dataset)!r}")
        return self._counted(dataset, data)

    def set(self, dataset: str, data: Mapping[str, Any]) -> StoredConfig:
        parse_config(data)
        self._request("POST", dataset, json={"config": data})
        return self._counted(dataset, data)

    def history(self, dataset: str) -> list[Version]:
        raise InputError("the Roboflow API keeps no history of a configuration")

    def wait(self, dataset: str, timeout: float) -> bool:
        time.sleep(timeout)  # the API tells nobody: the follower polls at its refresh interval
        return False

    def _counted(self, dataset: str, data: Mapping[str, Any]) -> StoredConfig:
        """Number each distinct content this process sees: 1, 2, ... (the API keeps no version)."""
        seen = self._versions.setdefault(dataset, [])
        sha = content_sha(data)
        if not seen or seen[-1].sha != sha:
            seen.append(StoredConfig.of(dataset, len(seen) + 1, data, time.time(),
                                        f"configuration of {self.project(dataset)!r} in {self.name}"))
        return seen[-1]

    def _request(self, method: str, dataset: str, **kwargs: Any) -> Any:
        from framesift.errors import DeliveryError
        from framesift.http_answers import check, send

        url = f"{self._base}/{self._workspace}/{self.project(dataset)}/active_learning"
        try:
            response = send(self._http, method, url, server=self._base, params={"api_key": self._key},
                            timeout=self._timeout, **kwargs)
            kind = response.headers.get("Content-Type", "")
            if "json" not in kind.lower():  # a captive portal's or a proxy's page, not the API's answer
                raise StoreUnavailable(f"the configuration store {self.name} is unavailable: the answer was not the "
                                       f"API's (HTTP {response.status_code}, {kind or 'no content type'}; a captive "
                                       f"portal or a proxy at {redact(self._base)}?)")
            if response.status_code in (401, 403):
                raise StoreRefused(f"the configuration store {self.name} refused the API key (HTTP "
                                   f"{response.status_code}): check --api-key or ROBOFLOW_API_KEY")
            if response.status_code == 404:
                return {}
            return check(response, "active_learning", secrets=[self._key])
        except DeliveryError as error:
            raise StoreUnavailable(f"the configuration store {self.name} is unavailable ({error})") from None

    def close(self) -> None:
        self._http.close()


# -- a file ---------------------------------------------------------------------------------------------------------
class FileStore(Resource):
    """One file, one configuration (whatever the dataset); a version is counted each time its content changes."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.name = str(path)
        self._seen: list[StoredConfig] = []
        self._stamp: tuple[int, int, int] | None = None

    def get(self, dataset: str, version: int | None = None) -> StoredConfig:
        if version is not None:
            raise InputError("a configuration file keeps no versions: get the one in force")
        self._stamp = _stamp(self.path)  # before reading: a change while reading is seen at the next wait
        stored = StoredConfig.of(dataset, len(self._seen) + 1, read_document(self.path), time.time(), self.name)
        if not self._seen or self._seen[-1].sha != stored.sha:
            self._seen.append(stored)
        return self._seen[-1]

    def set(self, dataset: str, data: Mapping[str, Any]) -> StoredConfig:
        from framesift.durable import write_atomically

        parse_config(data)
        write_atomically(self.path, json.dumps(data, indent=2).encode())
        return self.get(dataset)

    def history(self, dataset: str) -> list[Version]:
        raise InputError("a configuration file keeps no history")

    def wait(self, dataset: str, timeout: float) -> bool:
        """True when the file changed (edited in place or replaced by a rename) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if _stamp(self.path) != self._stamp:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        pass  # holds nothing open


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
