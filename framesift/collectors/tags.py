"""The tags of a registered datapoint (SPEC §6).

Example:
    >>> datapoint_tags(["site-a"], ["night"], model_id="people/3", environ={"ACTIVE_LEARNING_TAGS": "cam1,site-a"})
    ['cam1', 'site-a', 'night', 'people-3']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence


def datapoint_tags(
    config_tags: Sequence[str],
    strategy_tags: Sequence[str],
    model_id: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> list[str]:
    """Environment tags, configuration tags, strategy tags, then the model id (only when predictions are
    persisted; pass None otherwise) with '/' replaced by '-'. Duplicates removed, first kept."""
    env_tags = [t.strip() for t in environ.get("ACTIVE_LEARNING_TAGS", "").split(",") if t.strip()]
    model_tags = [model_id.replace("/", "-")] if model_id else []
    return list(dict.fromkeys([*env_tags, *config_tags, *strategy_tags, *model_tags]))
