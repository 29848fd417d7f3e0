"""Writes the active-learning configuration's reference from the pydantic models that validate it:
docs/configuration-reference.md (a table of fields per object) and docs/schema/active-learning-config.schema.json
(a JSON Schema, draft-07, for editors). Run it after changing the models; `--check` writes nothing and exits 1,
naming the stale files, when what it would write differs from what is there (tests/test_docs.py runs it).

    python scripts/docs_reference.py [--check]

Each field's meaning is its pydantic `description` when it has one, else the entry of MEANINGS below; a field with
neither stops the script, so no field reaches the reference without a meaning.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framesift.collectors.config.schema import REQUIRED_WHEN_ENABLED, ActiveLearningConfig  # the models, from one place

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration-reference.md"
SCHEMA = ROOT / "docs" / "schema" / "active-learning-config.schema.json"
SCHEMA_FROM_DOCS = SCHEMA.relative_to(REFERENCE.parent).as_posix()

# What each object is, by its model's name (the JSON Schema's `$defs` key): the reference's sentence under its
# heading, and the object's description in the schema.
OBJECTS = {
    "ActiveLearningConfig": "The configuration: Roboflow Inference's active-learning format, with framesift's own "
                            "optional `near_duplicates`. Only `enabled` is required while collection is off.",
    "BatchingStrategy": "How the datapoints are grouped into labeling batches, named by the UTC date.",
    "NearDuplicates": "framesift's own gate: a sampled frame within `max_distance` bits of one collected from the same "
                      "source recently is not collected, before any budget is spent. `{}` turns it on with the "
                      "defaults.",
    "Limit": "At most `value` datapoints of the strategy in any sliding window of a minute, an hour or a day.",
    "RandomStrategy": "Matches every datapoint (the stub model's too), then draws `u < traffic_percentage`.",
    "CloseToThresholdStrategy": "Matches when at least `minimum_objects_close_to_threshold` eligible predictions have "
                                "`abs(confidence − threshold) < epsilon` (classification: the top class, or any "
                                "class with `only_top_classes: false`), then draws `u < probability`.",
    "ClassesBasedStrategy": "Classification only: matches when the top class (multi-label: any predicted class) is "
                            "selected, then draws `u < probability`.",
    "DetectionsNumberBasedStrategy": "Matches when the number `n` of eligible detections satisfies `n > more_than` "
                                     "and `n < less_than` (each optional), then draws `u < probability`.",
    "UncertaintyStrategy": "framesift's own: matches on what the model computed before its threshold and NMS — a "
                           "candidate in `score_band` (detection), or a small top-two margin or a high entropy "
                           "(classification) — then draws `u < probability`. Never matches a stub prediction.",
    "NewObjectsStrategy": "framesift's own, detection only: matches the frame on which an eligible object appears "
                          "that was not in the previous frames of that source (a new track, reported once), then "
                          "draws `u < probability`.",
}

# Rules the models check that a JSON Schema cannot say: written under the object's table.
ALSO_CHECKED = {
    "ActiveLearningConfig": "When `enabled` is true, " + ", ".join(f"`{name}`" for name in REQUIRED_WHEN_ENABLED)
                            + " are required and `sampling_strategies` is not empty (the schema says so too); "
                            "strategy names are unique.",
    "DetectionsNumberBasedStrategy": "`more_than` is smaller than `less_than` when both are given.",
    "UncertaintyStrategy": "At least one of `score_band`, `max_margin` and `min_entropy` is given (the schema says so "
                           "too); `score_band` is `[low, high]` with low < high.",
}

# Each field's meaning, by `Model.field`, or by `field` alone for the strategies' shared fields.
MEANINGS = {
    "ActiveLearningConfig.enabled": "`false` collects nothing. The environment's `ACTIVE_LEARNING_ENABLED=false` and a "
                                    "source's `disable_active_learning` win over it.",
    "ActiveLearningConfig.persist_predictions": "Save the model's predictions beside each image as pre-annotations "
                                                "(the stub model's never are).",
    "ActiveLearningConfig.sampling_strategies": "Evaluated in order for every datapoint; of those that match, the "
                                                "first none of whose limits is reached is selected.",
    "ActiveLearningConfig.batching_strategy": "How datapoints are grouped into labeling batches.",
    "ActiveLearningConfig.max_image_size": "`[height, width]`, height first: larger frames are downscaled to fit, "
                                           "never upscaled.",
    "ActiveLearningConfig.jpeg_compression_level": "The JPEG quality of the saved images.",
    "ActiveLearningConfig.tags": "Tags of every datapoint, after those of `ACTIVE_LEARNING_TAGS`.",
    "ActiveLearningConfig.target_workspace": "Roboflow's field: accepted and recorded in each record.",
    "ActiveLearningConfig.target_project": "Roboflow's field: accepted and recorded in each record.",
    "ActiveLearningConfig.target_dataset_api_key": "The key of a `roboflow:` target; wins over `--api-key` and "
                                                   "`ROBOFLOW_API_KEY`. Never shown.",
    "ActiveLearningConfig.near_duplicates": "framesift's own near-duplicate gate; off when absent.",
    "BatchingStrategy.batches_name_prefix": "The batches' names begin with it.",
    "BatchingStrategy.recreation_interval": "`never`: one batch named by the prefix; `daily`: `prefix_YYYY_MM_DD`; "
                                            "`weekly`: the date of this week's Monday; `monthly`: the 1st of the "
                                            "month (UTC).",
    "BatchingStrategy.max_batch_images": "At most this many datapoints in a batch, those already in the folder "
                                         "counted; more are refused by the batch cap.",
    "NearDuplicates.max_distance": "A sampled frame within this many of the 64 bits of the signature of a recently "
                                   "collected one is a near-duplicate.",
    "NearDuplicates.memory": "Compared with the last this many frames collected from the same source...",
    "NearDuplicates.within_s": "...in the last this many seconds (by the frames' `captured_at`).",
    "Limit.type": "The sliding window's length: 60 s, 3600 s or 86400 s.",
    "Limit.value": "At most this many datapoints of the strategy in any such window.",
    "name": "The strategy's name, unique in the configuration: its budgets are counted by dataset and name.",
    "type": "The strategy's type.",
    "tags": "Tags of the datapoints this strategy selects.",
    "limits": "The strategy's budgets: every limit must have room for a datapoint to be selected by it.",
    "probability": "The chance that a datapoint whose content matched is sampled (`--seed` makes draws reproducible).",
    "selected_class_names": "Only predictions of these classes are eligible (every class when absent).",
    "RandomStrategy.traffic_percentage": "The share of datapoints sampled.",
    "CloseToThresholdStrategy.threshold": "The confidence the predictions are compared with.",
    "CloseToThresholdStrategy.epsilon": "How close to `threshold` a confidence must be.",
    "CloseToThresholdStrategy.minimum_objects_close_to_threshold": "How many eligible predictions must be close.",
    "CloseToThresholdStrategy.only_top_classes": "Classification: look at the top class only (multi-label: the "
                                                 "predicted classes); `false`: at every class.",
    "ClassesBasedStrategy.selected_class_names": "The classes that match.",
    "DetectionsNumberBasedStrategy.more_than": "Matches when there are more eligible detections than this...",
    "DetectionsNumberBasedStrategy.less_than": "...and fewer than this.",
    "UncertaintyStrategy.score_band": "Detection: `[low, high)`: a candidate whose best class score lies in it, "
                                      "below the model's threshold too.",
    "UncertaintyStrategy.minimum_candidates": "Detection: how many candidates in the band.",
    "UncertaintyStrategy.max_margin": "Classification: the top two classes within this of each other...",
    "UncertaintyStrategy.min_entropy": "Classification: ...or the class probabilities' entropy (0 to 1) at least "
                                       "this.",
    "NewObjectsStrategy.min_iou": "A detection continues the track whose last box it overlaps this much (IoU).",
    "NewObjectsStrategy.max_missed_frames": "The lost-track buffer: a track unseen for longer ends (the object, back, "
                                            "is new).",
    "NewObjectsStrategy.min_frames": "An object is new once seen this many frames in a row (a one-frame false "
                                     "detection is not).",
}


def schema() -> dict[str, Any]:
    """The JSON Schema of the configuration: pydantic's, with each object's and field's meaning, and the rules
    pydantic's output leaves out that a JSON Schema can say."""
    out = ActiveLearningConfig.model_json_schema()
    defs = out.setdefault("$defs", {})
    for name, model in [(out["title"], out), *defs.items()]:
        model["description"] = OBJECTS.get(name, model.get("description", ""))
        for field, prop in model["properties"].items():
            prop.pop("title", None)
            prop["description"] = prop.get("description") or meaning(name, field)
    out["if"] = {"properties": {"enabled": {"const": True}}, "required": ["enabled"]}
    out["then"] = {"required": list(REQUIRED_WHEN_ENABLED), "properties": {"sampling_strategies": {"minItems": 1}}}
    if "UncertaintyStrategy" in defs:
        defs["UncertaintyStrategy"]["anyOf"] = [{"required": [field]} for field in
                                                ("score_band", "max_margin", "min_entropy")]
    return {"$schema": "http://json-schema.org/draft-07/schema#", **out}


def meaning(model: str, field: str) -> str:
    """A field's meaning from MEANINGS; a field without one stops the script."""
    found = MEANINGS.get(f"{model}.{field}") or (MEANINGS.get(field) if model.endswith("Strategy") else None)
    if found is None:
        sys.exit(f"docs_reference.py: {model}.{field} has no meaning: give it a pydantic description, or add it to "
                 "MEANINGS")
    return found


def objects(full: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The root object, then every object it refers to, each once, in the order they are first referred to."""
    todo, seen = [(full["title"], full)], set()
    while todo:
        name, model = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        yield name, model
        todo += [(ref, full["$defs"][ref]) for ref in references(model["properties"])]


def references(node: Any) -> Iterator[str]:
    """The names of the `$defs` that `node` refers to, in order."""
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def kind(prop: dict[str, Any]) -> str:
    """A property's type in words: `integer ≥ 1`, `list of text`, `[BatchingStrategy](#batchingstrategy)`."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(kind(option) for option in prop["anyOf"] if option.get("type") != "null")
    if "oneOf" in prop:
        return "one of " + ", ".join(kind(option) for option in prop["oneOf"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in prop["enum"])
    kinds = {"boolean": "boolean", "integer": "integer", "number": "number", "string": "text", "null": "null",
             "object": "object"}
    if prop.get("type") == "array":
        count = prop.get("minItems"), prop.get("maxItems")
        items = kind(prop.get("items", {}))
        if count[0] is not None and count[0] == count[1]:
            return f"{count[0]} × {items}"
        least = f" (at least {count[0]})" if count[0] else ""
        return f"list of {items}{least}"
    return kinds.get(prop.get("type", ""), "any") + bounds(prop)


def bounds(prop: dict[str, Any]) -> str:
    """A number's or a text's constraints in words."""
    words = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in prop:
            words.append(f"{sign} {prop[key]}")
    if prop.get("minLength"):
        words.append("not empty")
    if "pattern" in prop:
        words.append(f"matching `{prop['pattern']}`")
    if prop.get("format") == "password":
        words.append("secret")
    return f" ({', '.join(words)})" if words else ""


def default(name: str, model: dict[str, Any]) -> str:
    """`required`, or the field's default."""
    if name in model.get("required", []):
        return "required"
    value = model["properties"][name].get("default")
    return "optional" if value is None else f"`{json.dumps(value)}`"


def reference(full: dict[str, Any]) -> str:
    """The Markdown page."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by scripts/docs_reference.py from the configuration's models: edit those, then run it -->",
        "",
        "Every field of [the active-learning configuration](configuration.md), generated from the pydantic models "
        "that validate it (`framesift validate FILE` checks a file as every command does). Unknown fields are "
        "refused everywhere.",
        "",
        "## In your editor",
        "",
        f"The same fields as a JSON Schema: [`docs/{SCHEMA_FROM_DOCS}`]({SCHEMA_FROM_DOCS}) (draft-07, generated "
        "with this page). An editor that knows it completes the fields, shows their meaning and underlines a "
        "misspelt or misplaced one as you type. In VS Code, with Red Hat's YAML extension, map your configurations "
        "to it in `.vscode/settings.json`:",
        "",
        "```json",
        "{",
        '  "yaml.schemas": {"./docs/schema/active-learning-config.schema.json": ["configs/*.yaml", "my.yaml"]},',
        '  "json.schemas": [{"fileMatch": ["configs/*.json"], '
        '"url": "./docs/schema/active-learning-config.schema.json"}]',
        "}",
        "```",
        "",
        "or name it in the first line of one YAML file (a path relative to the file, or an address), which any "
        "editor using the YAML language server follows:",
        "",
        "```yaml",
        "# yaml-language-server: $schema=../docs/schema/active-learning-config.schema.json",
        "enabled: false",
        "```",
        "",
        "A JSON file cannot name it inside: framesift refuses a `$schema` key as it refuses any unknown field. "
        "What a schema cannot say (strategy names unique, and the rules under each table below) "
        "`framesift validate` checks. The schema knows framesift's own strategies: one of "
        "[your own](plugins/strategy.md) is validated by framesift where your code registered it, and an editor "
        "using this schema flags its type.",
    ]
    for name, model in objects(full):
        lines += ["", f"## {name}", "", model["description"], "", "| field | type | default | meaning |",
                  "|---|---|---|---|"]
        lines += [f"| `{field}` | {kind(prop)} | {default(field, model)} | {prop['description']} |"
                  for field, prop in model["properties"].items()]
        if name in ALSO_CHECKED:
            lines += ["", f"Also checked: {ALSO_CHECKED[name]}"]
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    """What the script writes, by path."""
    full = schema()
    return {REFERENCE: reference(copy.deepcopy(full)), SCHEMA: json.dumps(full, indent=2, ensure_ascii=False) + "\n"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    args = parser.parse_args()
    written = outputs()
    stale = [path for path, text in written.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python scripts/docs_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(written[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
