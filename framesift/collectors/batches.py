"""Labeling-batch names (SPEC §4), always from UTC.

Example:
    >>> from datetime import datetime, timezone
    >>> batch_name("p", "weekly", datetime(2023, 10, 26, tzinfo=timezone.utc))
    'p_2023_10_23'
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def batch_name(prefix: str, interval: str, now: datetime | None = None) -> str:
    """`never` → the prefix; `daily` → today; `weekly` → this week's Monday; `monthly` → the 1st of this month."""
    if interval == "never":
        return prefix
    day = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    if interval == "weekly":
        day -= timedelta(days=day.weekday())
    elif interval == "monthly":
        day = day.replace(day=1)
    elif interval != "daily":
        raise ValueError(f"unknown recreation_interval {interval!r}")
    return f"{prefix}_{day:%Y_%m_%d}"
