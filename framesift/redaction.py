"""Keep secrets out of logs, errors, records and metrics.

`redact(text)` replaces, anywhere in a text (a URL, a log line, an error message):

- the password of a URL's user information: `rtsp://admin:***@cam/...` (the user name stays). A password may hold
  `@ / : #` that were not percent-encoded, so the user information runs to the LAST `@` of the URL (up to the
  first blank or quote): `redis://:***@127.0.0.1:6390/0` for `redis://:p@ss/w:rd#1@127.0.0.1:6390/0`. A user name
  that is no plain name (it holds `/ ? #`) goes as well: `***@host`. An `@` later in a URL's path or query hides
  more than the password, never less;
- the value of every `key=value` pair whose key names a credential — in a query (`?user=admin&pass=***`) and in
  the `key=value` path segments some camera firmwares use (`/user=admin&password=***&channel=1&stream=0.sdp`).
  A key names a credential when it contains `pas` (pass, passwd, password, passphrase, loginpas), `pw` (pwd),
  `token`, `key`, `secret`, `auth`, `sig`, `credential`, `session` or `cookie`, in any case.

Every pattern is anchored at the start of a run of characters, and each URL is scanned once to its end, so the
scan is linear in the text's length (a megabyte of hostile input costs milliseconds, never minutes).

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
_SCHEME = re.compile(r"(?<![\w+.\-])[A-Za-z][\w+.\-]*://")  # where a URL starts
_URL_END = re.compile(r"[\s\"'<>]|$")  # where it ends
_KEY = re.compile(r"(?<![\w.\-])([\w.\-]+)=")  # the start of a `key=value` pair
_VALUE = re.compile(r"[^&\s\"'<>;,#]*")
MASK = "***"


def redact(text: str) -> str:
    """`text` with URL passwords and the values of credential-named `key=value` pairs replaced by `***`."""
    text = _redact_user_information(text)
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


def _redact_user_information(text: str) -> str:
    """Every URL's user information, up to the last `@` of the URL, as `user:***` (or `***`)."""
    out: list[str] = []
    copied = 0  # text[:copied] is in `out` already
    scanned = 0  # URLs before this were handled (a URL given as another's query value is part of it)
    for scheme in _SCHEME.finditer(text):
        if scheme.start() < scanned:
            continue
        end = _URL_END.search(text, scheme.end())
        assert end is not None  # `$` always matches
        scanned = end.start()
        at = text.rfind("@", scheme.end(), scanned)
        user, colon, _ = text[scheme.end():max(at, scheme.end())].partition(":")
        plain = not any(c in user for c in "/?#")
        if at >= 0 and (colon or not plain):
            out += [text[copied:scheme.end()], f"{user}:{MASK}" if plain else MASK]
            copied = at
    out.append(text[copied:])
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
