"""The active-learning configuration: Roboflow Inference's format, validated strictly.

`load_config(path)` reads a JSON or YAML file; `parse_config(data)` validates a mapping. Both raise
`ConfigError`, whose `problems` list every problem by field path, for example
`sampling_strategies[1].epsilon: must be <= 1.0`. A file is read as `framesift.documents` reads every
document (JSON's data only; a key given twice, an alias bomb, a document nested too deeply refused). The
strategies' models are the registered ones (`framesift.collectors.sampling.strategies`, one file each, yours
too): their types, fields and messages come from there.

Example:
    >>> parse_config({"enabled": False}).enabled
    False
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, get_args

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
)

from framesift.collectors.sampling.strategies import ClassesBasedStrategy as ClassesBasedStrategy
from framesift.collectors.sampling.strategies import CloseToThresholdStrategy as CloseToThresholdStrategy
from framesift.collectors.sampling.strategies import DetectionsNumberBasedStrategy as DetectionsNumberBasedStrategy
from framesift.collectors.sampling.strategies import Limit as Limit
from framesift.collectors.sampling.strategies import NewObjectsStrategy as NewObjectsStrategy
from framesift.collectors.sampling.strategies import Probability as Probability
from framesift.collectors.sampling.strategies import RandomStrategy as RandomStrategy
from framesift.collectors.sampling.strategies import Strategy, StrictModel, Tag, registered, strategy_types
from framesift.collectors.sampling.strategies import UncertaintyStrategy as UncertaintyStrategy
from framesift.collectors.sampling.strategies.base import LIMIT_WINDOWS as LIMIT_WINDOWS
from framesift.collectors.sampling.strategies.base import TAG_PATTERN as TAG_PATTERN
from framesift.collectors.sampling.strategies.registry import strategy_union
from framesift.documents import TOO_DEEP, quoted, read_document
from framesift.errors import ConfigError

BATCH_PREFIX_PATTERN = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}$"
REQUIRED_WHEN_ENABLED = ("persist_predictions", "sampling_strategies", "batching_strategy")

_BUILT_WITH = registered()  # the strategies `ActiveLearningConfig` knows (`config_model`: also those added since)
if TYPE_CHECKING:
    StrategyConfig: TypeAlias = Strategy
else:
    StrategyConfig = strategy_union(_BUILT_WITH)


class BatchingStrategy(StrictModel):
    batches_name_prefix: Annotated[str, StringConstraints(pattern=BATCH_PREFIX_PATTERN)]
    recreation_interval: Literal["never", "daily", "weekly", "monthly"]
    max_batch_images: Annotated[int, Field(gt=0)] | None = None


class NearDuplicates(StrictModel):
    """framesift's own: a sampled frame whose signature (a 64-bit difference hash of its brightness) lies within
    `max_distance` bits of one collected from the same source in the last `within_s` seconds (among the last
    `memory` collected) is not collected — before any budget is spent."""

    max_distance: Annotated[int, Field(ge=0, le=64)] = 6
    memory: Annotated[int, Field(ge=1, le=10_000)] = 32
    within_s: Annotated[float, Field(gt=0)] = 600.0


class ActiveLearningConfig(StrictModel):
    """SPEC §1, and framesift's own optional additions (`near_duplicates`). Only `enabled` is required when
    collection is off."""

    enabled: bool
    persist_predictions: bool = False
    sampling_strategies: list[StrategyConfig] = []
    batching_strategy: BatchingStrategy | None = None
    max_image_size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] | None = None
    jpeg_compression_level: Annotated[int, Field(ge=1, le=100)] = 95
    tags: list[Tag] = []
    target_workspace: str | None = None
    target_project: str | None = None
    target_dataset_api_key: SecretStr | None = None
    near_duplicates: NearDuplicates | None = None  # framesift's own

    @field_validator("sampling_strategies")
    @classmethod
    def _names_unique(cls, strategies: list[StrategyConfig]) -> list[StrategyConfig]:
        seen: set[str] = set()
        for strategy in strategies:
            if strategy.name in seen:
                raise ValueError(f"strategy name {quoted(strategy.name)} is used twice (names must be unique)")
            seen.add(strategy.name)
        return strategies


def parse_config(data: Any, source: str = "configuration") -> ActiveLearningConfig:
    """Validate a mapping; raise `ConfigError` listing every problem by field path."""
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): must be a mapping, got {type(data).__name__}"], source)
    problems: list[str] = []
    config = None
    model = config_model()
    try:
        config = model.model_validate(data)
    except ValidationError as error:
        problems = validation_problems(error, config_lists(), CONFIG_PATTERNS, model)
    except RecursionError:
        raise ConfigError([TOO_DEEP], source) from None
    if data.get("enabled") is True:
        problems += [f"{name}: required when enabled" for name in REQUIRED_WHEN_ENABLED if name not in data]
        if data.get("sampling_strategies") == []:
            problems.append("sampling_strategies: must not be empty when enabled")
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), source)
    assert config is not None
    return config


def config_model() -> type[ActiveLearningConfig]:
    """The configuration's model for the strategies registered now: `ActiveLearningConfig`, or (once a strategy
    was registered after it was made: a plug-in) a subclass whose `sampling_strategies` know them all."""
    return _model_for(registered())


@functools.cache
def _model_for(strategies: tuple[type[Strategy], ...]) -> type[ActiveLearningConfig]:
    if strategies == _BUILT_WITH:
        return ActiveLearningConfig
    listed: Any = list  # a list of a union made at run time
    return create_model(ActiveLearningConfig.__name__, __base__=ActiveLearningConfig, __module__=__name__,
                        sampling_strategies=(listed[strategy_union(strategies)], []))


def load_config(path: str | os.PathLike[str]) -> ActiveLearningConfig:
    """Read a JSON or YAML configuration file (as `framesift.documents` reads them) and validate it."""
    return parse_config(read_document(Path(path)), str(path))


def active_learning_disabled_by_env(environ: Mapping[str, str] = os.environ) -> bool:
    """The strongest kill switch: `ACTIVE_LEARNING_ENABLED` set to false, 0, no or off (any case)."""
    return environ.get("ACTIVE_LEARNING_ENABLED", "").strip().lower() in {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Tagged:
    """A list whose items are told apart by their `type`: what to call one in messages, and the types it knows."""

    noun: str
    types: tuple[str, ...]


def config_lists() -> dict[str, Tagged]:
    """The configuration's lists of items told apart by `type`: its strategies, of the types registered now."""
    return {"sampling_strategies": Tagged("strategy", strategy_types())}


CONFIG_PATTERNS = {
    "batches_name_prefix": "must be 1-64 characters from A-Z a-z 0-9 - _ . and not start with '.'",
    "tags": "must be 1-64 characters from a-z A-Z 0-9 - _ : / . [ ] < > { } @",
}


def validation_problems(error: ValidationError, lists: Mapping[str, Tagged], patterns: Mapping[str, str],
                        model: type[BaseModel]) -> list[str]:
    """Pydantic's errors as `path: message` lines (`sampling_strategies[1].epsilon: must be <= 1.0`).

    `lists` names the fields holding items told apart by `type` (their tags are left out of paths, and an unknown
    type is said in their words); `patterns` gives, by field name, what a string that fails its pattern must be.
    An unknown field says which field of `model` (the model validated) it resembles (`unknown field (did you mean
    'traffic_percentage'?)`).
    """
    tags = {tag for tagged in lists.values() for tag in tagged.types}
    known = field_names(model)
    return [_describe(e, lists, tags, patterns, known) for e in error.errors(include_url=False)]


@functools.cache
def field_names(model: type[BaseModel]) -> frozenset[str]:
    """Every field name (and alias) of `model` and of the models its fields hold."""
    names: set[str] = set()
    seen: set[type] = set()
    todo: list[Any] = [model]
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if kind not in seen:
                seen.add(kind)
                names.update(info.alias or name for name, info in kind.model_fields.items())
                todo.extend(info.annotation for info in kind.model_fields.values())
        else:
            todo.extend(get_args(kind))
    return frozenset(names)


def _describe(error: Mapping[str, Any], lists: Mapping[str, Tagged], tags: set[str],
              patterns: Mapping[str, str], known: frozenset[str]) -> str:
    """One pydantic error as `path: message`."""
    loc = error["loc"]
    path = _path(loc, tags)
    kind, ctx = error["type"], error.get("ctx") or {}
    tagged = next((lists[part] for part in reversed(loc) if isinstance(part, str) and part in lists),
                  Tagged("item", ()))
    field_names = [part for part in loc if isinstance(part, str) and part not in tags]
    messages = {
        "missing": "required",
        "extra_forbidden": "unknown field" + _resembles(loc[-1], known),
        "less_than_equal": f"must be <= {ctx.get('le')}",
        "less_than": f"must be < {ctx.get('lt')}",
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "too_short": f"must have at least {ctx.get('min_length')} item(s)",
        "too_long": f"must have at most {ctx.get('max_length')} item(s)",
        "string_too_short": "must not be empty",
        "literal_error": f"must be one of {ctx.get('expected')}",
        "union_tag_invalid": f"unknown {tagged.noun} type {quoted(ctx.get('tag'))} "
                             f"(expected one of {', '.join(tagged.types)})",
        "union_tag_not_found": f"type: required (one of {', '.join(tagged.types)})",
        "string_pattern_mismatch": next((patterns[f] for f in reversed(field_names) if f in patterns),
                                        f"must match {ctx.get('pattern')}"),
        "value_error": str(ctx.get("error", error["msg"])),
    }
    message = messages.get(kind) or re.sub(r"^Input should be", "must be", error["msg"])
    return f"{path or '(top level)'}: {message}"


def _resembles(key: Any, known: frozenset[str]) -> str:
    """` (did you mean 'x'?)` when `key` is close to a known field name `x` (difflib), else nothing."""
    close = difflib.get_close_matches(str(key), sorted(known - {key}), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _path(loc: tuple[Any, ...], tags: set[str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags:
            continue  # the discriminator's tag that pydantic inserts after a tagged item
        else:
            out += f".{part}" if out else str(part)
    return out
