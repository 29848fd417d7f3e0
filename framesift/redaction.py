"""Keep secrets out of logs, errors, records and metrics.

Example:
    >>> redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream?token=abc")
    'rtsp://admin:***@10.0.0.5:554/stream?token=***'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_KEYS = re.compile(r"(api_?key|token|password|passwd|pwd|secret|auth|signature|sig)", re.I)


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
