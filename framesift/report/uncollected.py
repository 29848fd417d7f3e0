"""What a run did not collect, from its `--summary` file: sampled against registered, refused by the limits or
the batch cap, near-duplicates, dropped — so a user sees whether the budgets are too tight.

The summary counts one run (several collectors of a workflow added up); a dataset folder may hold several runs.

Example:
    >>> summary = {"datapoints_sampled": 10, "datapoints_registered": 6, "datapoints_rejected_by_limits": 4}
    >>> verdict(summary).split(":")[0]
    '6 of 10 sampled datapoints were collected (60%); the limits refused 4 (40%)'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from framesift.errors import InputError
from framesift.report.charts import PALETTE, Chart, bar

REQUIRED = ("datapoints_sampled", "datapoints_registered")
# (summary counter, what it means, shown even at 0): the fates of a sampled datapoint, registered first.
OUTCOMES = (
    ("datapoints_registered", "registered", True),
    ("datapoints_rejected_by_limits", "refused: limits", True),
    ("datapoints_rejected_by_batch_cap", "refused: batch cap", True),
    ("datapoints_rejected_near_duplicate", "near-duplicates", True),
    ("datapoints_rejected_store_unavailable", "refused: no limit store", False),
    ("datapoints_failed", "failed to write", False),
)
TITLE = "What the run did not collect"


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The counters of a `framesift run --summary` file; `InputError` when it is missing or no such file."""
    hint = "write one with framesift run --summary FILE"
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputError(f"the summary {path} does not exist ({hint})") from None
    except OSError as error:
        raise InputError(f"cannot read the summary {path}: {error.strerror or error}") from None
    except ValueError:
        raise InputError(f"the summary {path} is not JSON ({hint})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int) for k in REQUIRED):
        raise InputError(f"{path} is not a framesift summary (no {' or '.join(REQUIRED)}; {hint})")
    return data


def outcomes(summary: dict[str, Any]) -> list[tuple[str, int]]:
    """What became of the sampled datapoints, (what, how many), the counters at 0 that matter included."""
    rows = [(label, _count(summary, key)) for key, label, always in OUTCOMES if always or _count(summary, key)]
    reasons = summary.get("datapoints_dropped_by_reason")
    if isinstance(reasons, dict) and any(reasons.values()):
        rows += [(f"dropped: {reason}", int(n)) for reason, n in sorted(reasons.items()) if n]
    else:
        rows.append(("dropped", _count(summary, "datapoints_dropped")))
    return rows


def verdict(summary: dict[str, Any]) -> str:
    """One paragraph: how much of what was sampled was collected, and what held the rest back."""
    sampled, registered = summary["datapoints_sampled"], summary["datapoints_registered"]
    if sampled == 0:
        return "The run sampled nothing: no strategy matched a frame (or collection was off)."
    limits, cap = _count(summary, "datapoints_rejected_by_limits"), _count(summary, "datapoints_rejected_by_batch_cap")
    said = [f"{registered} of {sampled} sampled datapoints were collected ({_share(registered, sampled)})"]
    if limits:
        said.append(f"the limits refused {limits} ({_share(limits, sampled)}): the budgets are tight — raise the "
                    "limits of the strategies at 100% in the budget chart to collect more of what they pick")
    if cap:
        said.append(f"the batch cap refused {cap} ({_share(cap, sampled)}): raise max_batch_images or recreate "
                    "batches more often")
    if not limits and not cap:
        said.append("neither the limits nor the batch cap refused anything: the budgets did not hold collection back")
    duplicates = _count(summary, "datapoints_rejected_near_duplicate")
    if duplicates:
        said.append(f"{duplicates} were near-duplicates of frames just collected (the gate, not a budget)")
    dropped = _count(summary, "datapoints_dropped")
    if dropped:
        said.append(f"{dropped} were dropped before a decision (the collector's queue was full, or the run ended)")
    return "; ".join(said) + "."


def uncollected_charts(summary: dict[str, Any], name: str) -> list[Chart]:
    """The fates of the sampled datapoints, and per strategy what it sampled against what it registered."""
    rows = outcomes(summary)
    colours = [PALETTE[4]] + [PALETTE[2 if "limits" in label or "batch" in label else 1] for label, _ in rows[1:]]
    charts = [Chart("uncollected", f"{TITLE} (of {summary['datapoints_sampled']} sampled; {name})",
                    bar([label for label, _ in rows], [("datapoints", [n for _, n in rows], colours)],
                        horizontal=True, value_title="datapoints"), verdict(summary))]
    sampled, registered = summary.get("strategies_sampled"), summary.get("strategies")
    if isinstance(sampled, dict) and isinstance(registered, dict) and sampled:
        names = list(sampled)
        charts.append(Chart("strategies_sampled", f"Per strategy: sampled and registered ({name})",
                            bar(names, [("sampled", [_count(sampled, n) for n in names], PALETTE[0]),
                                        ("registered", [_count(registered, n) for n in names], PALETTE[4])],
                                value_title="datapoints"),
                            "A datapoint that several strategies matched counts as sampled by each; it is registered "
                            "under one (the first with budget left)."))
    return charts


def _count(counters: dict[str, Any], key: str) -> int:
    value = counters.get(key)
    return value if isinstance(value, int) else 0


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%"
