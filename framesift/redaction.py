"""Keep secrets out of logs, errors, records and metrics.

Example:
    >>> redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream?token=abc")
    'rtsp://admin:***@10.0.0.5:554/stream?token=***'
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_KEYS = re.compile(r"(api_?key|token|password|passwd|pwd|secret|auth|signature|sig)", re.I)
_SECRET_IN_TEXT = re.compile(r"((?:api_?key|token|password|secret)=)[^&\s\"']+", re.I)
_PASSWORD_IN_URL = re.compile(r"(\w+://[^/\s:@]+:)[^@\s/]+@")


def redact_url(url: str) -> str:
    """The URL with its password and secret-looking query values replaced by `***`; other text unchanged."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, host = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", url)


def redact_text(text: str) -> str:
    """Secret query values (`api_key=...`) and URL passwords in free text replaced by `***`."""
    return _PASSWORD_IN_URL.sub(r"\1***@", _SECRET_IN_TEXT.sub(r"\1***", text))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record it sees, third-party ones included (urllib3 logs
    request URLs at DEBUG level, and Roboflow's API key travels in the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logger(name: str) -> None:
    """Attach one `RedactingFilter` to the named logger (idempotent)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
