"""Watching a run: progress lines (`progress`), Prometheus `/metrics` (`exposition`), the live page (`live`), and
the small HTTP server serving both (`serving`)."""
