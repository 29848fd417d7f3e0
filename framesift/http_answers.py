"""HTTP answers as outcomes, shared by the remote targets and the hosted configuration store.

A network error, 408, 429 and 5xx are retried (`RetryableError`, with the `Retry-After` the server gave, in seconds
or as a date, believed up to an hour); any other 4xx is a refusal for good (`PermanentError`, with the start of the
server's answer). Messages never hold a URL (a key may travel in it) nor any of the secrets passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from framesift.errors import PermanentError, RetryableError
from framesift.redaction import redact

RETRY_AFTER_MAX = 3600.0  # a server (or a proxy) asking for more is not believed: an edge box waits an hour at most


def send(session: Any, method: str, url: str, *, server: str, **kwargs: Any) -> Any:
    """`session.request(...)`; a failure to get any answer becomes a `RetryableError` naming `server` (redacted)."""
    import requests

    try:
        return session.request(method, url, **kwargs)
    except requests.RequestException as error:  # its message holds the URL, and so maybe a key: never shown
        raise RetryableError(f"{type(error).__name__} talking to {redact(server)}") from None


def check(response: Any, what: str, secrets: Sequence[str] = ()) -> Any:
    """The answer's JSON (or `{}` when it has none) when the status is a success; raises the outcome otherwise."""
    status = response.status_code
    if status in (408, 429) or status >= 500:
        raise RetryableError(f"HTTP {status} from {what}", retry_after(response))
    if status >= 400:
        text = response.text[:300]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        raise PermanentError(f"HTTP {status} from {what}: {text}")
    try:
        return response.json()
    except ValueError:
        return {}


def retry_after(response: Any) -> float | None:
    """The `Retry-After` header in seconds (a number of seconds or an HTTP date), at most `RETRY_AFTER_MAX`; None
    when absent or unreadable (the sender's own backoff applies then)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)
