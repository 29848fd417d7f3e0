"""Why a strategy chose a datapoint, in a few words, from its record (`selected_because`, `near_duplicates`): for the
report's tiles and the live page's thumbnails.

Example:
    >>> why({"strategy": "crowded", "selected_because": {"objects": 7, "boxes": [0, 1, 2, 3, 4, 5, 6]}})[0]
    'crowded: 7 objects counted'
"""

from __future__ import annotations

from typing import Any


def why(record: dict[str, Any]) -> list[Any]:
    """`[text, boxes]`: why the record's strategy chose it, in a few words, and the detections that decided."""
    strategy = str(record.get("strategy", "?"))
    because = record.get("selected_because")
    because = because if isinstance(because, dict) else {}
    words = [f"{strategy}: {_reason(because)}" if because else strategy]
    near = record.get("near_duplicates")
    if isinstance(near, dict) and "nearest_distance" in near:
        distance = near["nearest_distance"]
        words.append("the first of its source lately" if distance is None
                     else f"{distance}/64 bits from the nearest collected frame")
    boxes = because.get("boxes")
    return [" · ".join(words), [b for b in boxes if isinstance(b, int)] if isinstance(boxes, list) else []]


def _reason(because: dict[str, Any]) -> str:
    """`selected_because` in words (`strategies.evidence` says what each strategy records)."""
    boxes = because.get("boxes") or []
    if "track_ids" in because:
        return "new " + ", ".join(f"{c} #{t}" for c, t in zip(because.get("classes", []), because["track_ids"],
                                                                strict=False))
    if "candidates_in_band" in because:
        low, high = because.get("band", ("?", "?"))
        scores = ", ".join(str(s) for s in because.get("scores", []))
        return f"{because['candidates_in_band']} scored in [{low}, {high}): {scores}"
    if "margin" in because:
        return f"margin {because['margin']}, entropy {because.get('entropy')}"
    if "threshold" in because:
        what = f"{len(boxes)} box{'' if len(boxes) == 1 else 'es'}" if "boxes" in because \
            else ", ".join(because.get("classes", []))
        return f"{what} within {because.get('epsilon')} of {because['threshold']}"
    if "objects" in because:
        return f"{because['objects']} objects counted"
    if "classes" in because:
        return "class " + ", ".join(str(c) for c in because["classes"])
    return ", ".join(f"{k} {v}" for k, v in because.items())
