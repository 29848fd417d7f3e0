"""Keep secrets out of logs, errors, records and metrics.

`redact(text)` replaces, anywhere in a text (a URL, a log line, an error message):

- the password of a URL's user information: `rtsp://admin:***@cam/...` (the user name stays);
- the value of every `key=value` pair whose key names a credential — in a query (`?user=admin&pass=***`) and in
  the `key=value` path segments some camera firmwares use (`/user=admin&password=***&channel=1&stream=0.sdp`).
  A key names a credential when it contains `pas` (pass, passwd, password, passphrase, loginpas), `pw` (pwd),
  `token`, `key`, `secret`, `auth`, `sig`, `credential`, `session` or `cookie`, in any case.

Every pattern is anchored at the start of a run of characters, so the scan is linear in the text's length (a
megabyte of hostile input costs milliseconds, never minutes).

Example:
    >>> redact("rtsp://admin:hunter2@10.0.0.5:554/stream?token=abc")
    'rtsp://admin:***@10.0.0.5:554/stream?token=***'
    >>> redact("rtsp://10.0.0.5/user=admin&password=hunter2&channel=1&stream=0.sdp")
    'rtsp://10.0.0.5/user=admin&password=***&channel=1&stream=0.sdp'
"""

from __future__ import annotations

import logging
import re

_CREDENTIAL_NAME = re.compile(r"pas|pw|token|key|secret|auth|sig|credential|session|cookie", re.I)
# `scheme://user:password@`: the password runs to the last `@` before the path (passwords may hold `@`).
_USERINFO = re.compile(r"(?<![\w+.\-])([A-Za-z][\w+.\-]*://[^\s/@:]*):([^\s/]*)@")
_KEY = re.compile(r"(?<![\w.\-])([\w.\-]+)=")  # the start of a `key=value` pair
_VALUE = re.compile(r"[^&\s\"'<>;,#]*")
MASK = "***"


def redact(text: str) -> str:
    """`text` with URL passwords and the values of credential-named `key=value` pairs replaced by `***`."""
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    out: list[str] = []
    done = 0  # text[:done] is already copied (or masked)
    for match in _KEY.finditer(text):
        if match.start() < done or not _CREDENTIAL_NAME.search(match.group(1)):
            continue  # inside a value masked already, or not a credential
        value = _VALUE.match(text, match.end())
        out += [text[done:match.end()], MASK]
        done = value.end() if value else match.end()
    out.append(text[done:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record it sees, third-party ones included (urllib3 logs
    request URLs at DEBUG level, and Roboflow's API key travels in the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logger(name: str) -> None:
    """Attach one `RedactingFilter` to the named logger (idempotent)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
