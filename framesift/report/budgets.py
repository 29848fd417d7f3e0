"""Budget use: how close each strategy came to each of its limits, from the datapoints a dataset holds.

A limit of N per minute (hour, day) admits at most N datapoints of its strategy in any sliding window of that
length (SPEC §4). The report counts, for each strategy and limit, the most datapoints found in any such window
(by the frames' capture time: the limiter's own clock for recordings replayed fast, and within moments of its
decision for a live source) and how often the window was full: a strategy at its limit had frames refused, which
only the run's summary counts.

The records do not hold the limits: they come from the configuration the run used.

Example:
    >>> window_use([0.0, 10.0, 20.0, 70.0], seconds=60, limit=3)
    (3, 1)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from framesift.collectors.config.schema import ActiveLearningConfig
from framesift.report.charts import PALETTE, Chart, bar
from framesift.report.gallery import Gallery

TITLE = "Budget use against each strategy's limits"
PER = {"minutely": "a minute", "hourly": "an hour", "daily": "a day"}


def window_use(times: Sequence[float], seconds: float, limit: int) -> tuple[int, int]:
    """For sorted `times`: the most of them in any window of `seconds` (ending at one of them), and how many of
    them filled their window to `limit` or beyond."""
    peak = full = start = 0
    for end, now in enumerate(times):
        while times[start] <= now - seconds:
            start += 1
        count = end - start + 1
        peak = max(peak, count)
        full += count >= limit
    return peak, full


def budget_chart(gallery: Gallery, config: ActiveLearningConfig | None) -> Chart:
    """The peak use of every limit of `config`'s strategies, as a share of the limit."""
    if config is None:
        return Chart("budgets", TITLE, None, "Give the configuration the run used (framesift report --al-config "
                                             "FILE) to compare the datapoints with each strategy's limits.")
    times: dict[str, list[float]] = defaultdict(list)
    strategies = gallery.strategies.names
    for item in gallery.items:
        if item[4] is not None:
            times[strategies[item[1]]].append(item[4])
    labels, shares, colours, rows = [], [], [], []
    for strategy in config.sampling_strategies:
        ordered = sorted(times.get(strategy.name, ()))
        for limit in strategy.limits:
            peak, full = window_use(ordered, limit.window_seconds, limit.value)
            labels.append(f"{strategy.name} · {limit.value} {PER[limit.type]}")
            shares.append(round(100 * peak / limit.value, 1))
            colours.append(PALETTE[2] if peak >= limit.value else PALETTE[0])
            rows.append([strategy.name, f"{limit.value} {PER[limit.type]}", f"{peak} ({shares[-1]:g}%)", str(full)])
    if not rows:
        return Chart("budgets", TITLE, None, "No strategy of the configuration has limits: nothing held back by a "
                                             "budget.")
    chart = bar(labels, [("peak use, % of the limit", shares, colours)], horizontal=True,
                value_title="the most in any window, % of the limit")
    chart["options"]["scales"]["x"]["suggestedMax"] = 100
    note = ("The most datapoints of each strategy in any sliding window of its limit's length (by capture time). "
            "Red: the budget was used up, so frames the strategy matched then were refused — with --summary the "
            "report counts them.")
    return Chart("budgets", TITLE, chart, note,
                 [["strategy", "limit", "most in any window", "datapoints that used it up"], *rows])
