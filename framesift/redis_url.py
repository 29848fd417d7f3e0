"""A Redis client from a URL the user gave (`--redis`, `--al-config`, `--store`), checked before anything connects;
and what Redis answered, in one sentence.

A password holding `@ / : #` must be percent-encoded (`p%40ss`): otherwise the URL's authority ends early, and
redis-py would connect to whatever it then reads as the host (`redis://:p@ss/w:rd#1@127.0.0.1:6390/0` has the host
`ss`). Such a URL, like any other that does not parse, is refused in one sentence (its password redacted).

Example:
    >>> client = redis_client("redis://:p%40ss@127.0.0.1:6379/0", 0.5, InputError)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from framesift.errors import InputError
from framesift.redaction import redact

if TYPE_CHECKING:
    import redis


def redis_client(url: str, timeout: float, refused: type[InputError]) -> redis.Redis:
    """A redis-py client of `url` (not connected yet); `refused(one sentence)` when the URL does not parse."""
    import redis

    check_redis_url(url, refused)
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    health_check_interval=0)
    except ValueError as error:
        raise refused(f"bad Redis URL {redact(url)}: {error}") from None


def check_redis_url(url: str, refused: type[InputError]) -> None:
    """Raise `refused` when the authority of a `redis://` or `rediss://` URL ends before its last `@` (a password
    with `@ / : #` not percent-encoded); what else does not parse, redis-py refuses (`redis_client`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return  # unix://: a socket's path, read by redis-py
    rest = url[len(parts.scheme) + 3:]
    if "@" in rest[len(parts.netloc):]:
        raise refused(f"the Redis URL {redact(url)} does not parse: its password holds @, /, : or # that are not "
                      "percent-encoded (write @ as %40, / as %2F, : as %3A, # as %23)")


def credentials_refused(error: Exception) -> bool:
    """Whether Redis refused the URL's user or password (redis-py raises one of several errors for that)."""
    import redis

    return isinstance(error, redis.AuthenticationError) or any(code in str(error) for code in ("WRONGPASS", "NOAUTH"))


def describe_redis_error(error: Exception, url: str) -> str:
    """A redis-py error as one sentence (never holding a password)."""
    import redis

    if credentials_refused(error):
        return f"Redis at {url} refused framesift's credentials ({error})"
    if isinstance(error, redis.ResponseError):
        return f"Redis at {url} refused the limit decision ({error})"
    return f"Redis at {url} is unreachable ({type(error).__name__}: {error})"
