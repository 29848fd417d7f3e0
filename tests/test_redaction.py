"""Secrets never reach logs: URL passwords and secret query values are redacted, third-party records included."""

from __future__ import annotations

import logging

from framesift.redaction import RedactingFilter, redact_text, redact_url


def test_redact_url_keeps_everything_but_the_secrets():
    assert redact_url("rtsp://admin:hunter2@10.0.0.5:554/s?token=abc&x=1") == \
        "rtsp://admin:***@10.0.0.5:554/s?token=***&x=1"
    assert redact_url("/videos/clip.mp4") == "/videos/clip.mp4"
    assert redact_url("http://cam/stream") == "http://cam/stream"


def test_redact_text_finds_secrets_inside_free_text():
    assert redact_text('"POST /upload?api_key=k3y&name=a HTTP/1.1" 200') == \
        '"POST /upload?api_key=***&name=a HTTP/1.1" 200'
    assert redact_text("open rtsp://u:p4ss@host/x failed") == "open rtsp://u:***@host/x failed"


def test_the_filter_redacts_a_third_party_record(caplog):
    logger = logging.getLogger("some.library")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.DEBUG):
        logger.debug('%s "%s %s"', "http://127.0.0.1:80", "POST", "/x?api_key=k3y")
    assert "k3y" not in caplog.text and "api_key=***" in caplog.text
