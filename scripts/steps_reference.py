"""Writes the workflow steps' reference from the step registry (framesift/workflows/step.py: `step_kinds()`):
docs/workflow-steps-reference.md, a section per step type framesift ships (types of one kind that take the same
fields and offer the same outputs share one) — its other names, what it does, a table of its fields (type, default,
meaning), what it offers and what a collector samples with. Run it after changing a step kind; `--check` writes
nothing and exits 1 when the page is stale (tests/test_docs.py runs it).

    python scripts/steps_reference.py [--check] [--page docs/workflow-steps-reference.md]

Each field's meaning is its pydantic `description` when it has one, else the entry of MEANINGS below, by
`<type>.<field>`, `<class>.<field>` (the kind's class or one it inherits from) or `<field>`; a field with none of
them stops the script, as does a step type without ABOUT and an output without OUTPUTS, so nothing reaches the
page without a meaning. Kinds registered from outside framesift (plug-ins) are left out.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from docs_reference import kind as described  # a JSON Schema property's type in words, as the configuration's
from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

import framesift.workflows.steps  # noqa: F401 (framesift's kinds, registered)
from framesift import defaults
from framesift.models import load_model
from framesift.workflows.step import Step, step_kinds
from framesift.workflows.steps.model import _TYPE_FIELDS, ModelStep

PAGE = Path(__file__).resolve().parents[1] / "docs" / "workflow-steps-reference.md"
NOT_A_VALUE = object()  # what no field accepts: a field's refusal of it says what the field takes
# the fields a kind accepts only on some of its types (type -> those fields); its other fields are on every type
ONLY_ON: dict[type[Step], dict[str, set[str]]] = {ModelStep: _TYPE_FIELDS}
MODEL_DEFAULTS = inspect.signature(load_model).parameters  # what a model step's unset thresholds become

# What each step type does, by its first name: the sentence under its heading.
ABOUT = {
    "ObjectDetectionModel": "Runs an object detector on each image it names: the frame, or every crop of it.",
    "InstanceSegmentationModel": "Runs an instance segmentation model on each image it names; its detections carry "
                                 "their masks (decoded at full resolution).",
    "KeypointsDetectionModel": "Runs a keypoints detector on each image it names; its detections carry their "
                               "keypoints.",
    "ClassificationModel": "Runs a classifier on each image it names: its top class and that class's confidence.",
    "MultiLabelClassificationModel": "Runs a multi-label classifier on each image it names: the classes at or above "
                                     "`confidence` are the predicted ones.",
    "YoloWorld": "An open-vocabulary detector exported to ONNX for `class_names`, run as any model step.",
    "DetectionsConsensus": "Merges the detections of several detection-like steps, made on one image, where "
                           "`required_votes` of them overlap, as Roboflow documented it ([how it "
                           "merges](workflows.md)); `object_present` and `presence_confidence` "
                           "say whether `required_objects` were found.",
    "Crop": "Cuts each detection out of the image it was made on: each crop is an image other steps may take.",
    "AbsoluteStaticCrop": "Cuts one fixed box, in pixels, out of every image it names.",
    "RelativeStaticCrop": "Cuts one fixed box, in fractions of each image's size, out of every image it names.",
    "DetectionFilter": "Keeps the detections of one detection-like step for which `filter_definition` holds (by "
                       "class, confidence or box), ids and all.",
    "DetectionFilterDefinition": "Compares one value of each detection with `reference_value`.",
    "CompoundDetectionFilterDefinition": "Joins two filter definitions.",
    "ActiveLearningDataCollector": "The block Roboflow shipped: samples the image (or crops) it names, with the "
                                   "predictions it names, into `target_dataset`, under its configuration's "
                                   "strategies and budgets.",
}

# What each output holds, `$steps.<name>.<output>`.
OUTPUTS = {
    "predictions": "The predictions, one per image: the detections (a consensus's: boxes, each with a new "
                   "`detection_id`), or a classifier's prediction; as an output, their JSON as in `--predictions`.",
    "image": "Roboflow's name for the image the step saw, accepted in a selector so that a definition naming it "
             "runs; framesift puts no image in it (it gives what `parent_id` gives), and `$steps.<s>.*` leaves it "
             "out.",
    "parent_id": "A crop step's: the `detection_id` each crop was cut from; a model's: its detections' "
                 "`detection_id`s (null unless a crop step cuts them).",
    "prediction_type": "The predictions' task type: `object-detection`, `instance-segmentation`, "
                       "`keypoint-detection` or `classification`.",
    "top": "A classifier's top class.",
    "confidence": "The confidence of a classifier's top class.",
    "predicted_classes": "A multi-label classifier's predicted classes (those at or above its `confidence`).",
    "crops": "The crops, each an image other steps may take (`image: $steps.<s>.crops`); as an output, each crop's "
             "box in the frame, the detection it was cut from and that detection's class and confidence.",
    "object_present": "Whether at least `required_objects` merged detections were found.",
    "presence_confidence": "Their confidence aggregated by `presence_confidence_aggregation`, per class "
                           "(`{\"any_object\": ...}` when not `class_aware`); `{}` when nothing is present.",
}

_NO_EFFECT_MODEL = "No effect: framesift's model steps never collect by themselves (a collector step does)."
_NO_EFFECT_MASKS = "No effect: masks are always decoded at full resolution."
_NO_EFFECT_CLASSIFIER = "No effect on a classifier."

# Each field's meaning, by `<type>.<field>`, `<class>.<field>` or `<field>` (the first found).
MEANINGS = {
    "name": "The step's name, unique in the definition: other steps and the outputs name what it offers as "
            "`$steps.<name>.<output>`.",
    "type": "The step's type.",
    "Inferring.image": "What the model runs on: an image input (`$inputs.<name>`) or a crop step's crops "
                       "(`$steps.<s>.crops`).",
    "ModelStep.model_id": "An ONNX file, a model id found in the [models folder](models.md#the-models-folder), "
                          "`demo`, `stub`, or `<dataset>/0` (the documented way to ask for a dataset's null model: "
                          "the stub).",
    "MultiLabelClassificationModel.model_id": "As any model step's; a classifier export `[B, nc]` whose scores are "
                                              "independent per class: read as given when all lie in 0..1, else as "
                                              "logits, a sigmoid applied.",
    "ModelStep.confidence": f"The model's confidence threshold (unset: {defaults.CONFIDENCE}).",
    "MultiLabelClassificationModel.confidence": f"The classes at or above it are the predicted ones (unset: "
                                                f"{defaults.CONFIDENCE}).",
    "ModelStep.iou_threshold": f"Non-maximum suppression's IoU threshold (unset: {defaults.IOU}).",
    "ModelStep.class_filter": "Only detections of these classes are kept (every class when unset).",
    "ModelStep.max_detections": "The most detections kept per image (unset: "
                                f"{MODEL_DEFAULTS['max_detections'].default}).",
    "ModelStep.class_agnostic_nms": "`true`: non-maximum suppression across classes.",
    "ModelStep.max_candidates": "The most confident boxes that enter non-maximum suppression (unset: "
                                f"{MODEL_DEFAULTS['max_candidates'].default}).",
    "ModelStep.keypoint_confidence": "Keypoints below it are left out of each detection (unset: 0, every keypoint "
                                     "kept).",
    "ModelStep.mask_decode_mode": _NO_EFFECT_MASKS,
    "ModelStep.tradeoff_factor": _NO_EFFECT_MASKS,
    "ModelStep.disable_active_learning": _NO_EFFECT_MODEL,
    "ModelStep.active_learning_target_dataset": _NO_EFFECT_MODEL,
    **{f"ClassificationModel.{field}": _NO_EFFECT_CLASSIFIER for field in ("iou_threshold", "class_filter",
                                                                           "max_detections")},
    "YoloWorldStep.class_names": "The classes it detects: the class names the model was exported for "
                                 "(`model.set_classes([...])` before Ultralytics' export), checked when the run "
                                 "starts.",
    "YoloWorldStep.version": "The model is `yolo_world/<version>`, resolved as any `model_id` is.",
    "YoloWorldStep.confidence": f"The detector's confidence threshold (unset: {defaults.CONFIDENCE}).",
    "YoloWorldStep.model_id": "framesift's own: the model instead of `yolo_world/<version>` (an ONNX file, or any "
                              "model id).",
    "ConsensusStep.predictions_batches": "One or more `$steps.<s>.predictions` of detection-like steps that ran on "
                                         "one image.",
    "ConsensusStep.required_votes": "How many sources must overlap for their detections to merge into one.",
    "ConsensusStep.class_aware": "`true`: only detections of one class overlap, and `required_objects` and "
                                 "`presence_confidence` are per class.",
    "ConsensusStep.iou_threshold": "Two detections overlap when their IoU is above it.",
    "ConsensusStep.confidence": "A merged detection less confident than this is left out.",
    "ConsensusStep.classes_to_consider": "Only detections of these classes are kept (every class when unset).",
    "ConsensusStep.required_objects": "How many merged detections make `object_present` true (per class for a "
                                      "mapping; its sum when not `class_aware`); unset: at least one.",
    "ConsensusStep.presence_confidence_aggregation": "How `presence_confidence` aggregates the merged detections' "
                                                     "confidences.",
    "ConsensusStep.detections_merge_confidence_aggregation": "A merged detection's class and confidence: "
                                                             "`average`: the majority class and the mean "
                                                             "confidence; `max`/`min`: those of the most/least "
                                                             "confident.",
    "ConsensusStep.detections_merge_coordinates_aggregation": "A merged detection's box: `average`: the mean box; "
                                                              "`max`/`min`: the largest/smallest.",
    "CropStep.image": "The image the detections were made on: an image input or a crop step's crops.",
    "CropStep.predictions": "`$steps.<s>.predictions` of a detection-like step that ran on `image`; `detections` "
                            "is its old name.",
    "CropStep.padding": "framesift's own: pixels added on every side of each detection's box.",
    "StaticCrop.image": "What the box is cut from: an image input or a crop step's crops.",
    "AbsoluteStaticCrop.x_center": "The box's centre, in pixels from the image's left edge...",
    "AbsoluteStaticCrop.y_center": "...and from its top edge.",
    "AbsoluteStaticCrop.width": "The box's width in pixels...",
    "AbsoluteStaticCrop.height": "...and its height.",
    "RelativeStaticCrop.x_center": "The box's centre, a fraction of the image's width (of each crop's when `image` "
                                   "is a crop step's crops)...",
    "RelativeStaticCrop.y_center": "...and of its height.",
    "RelativeStaticCrop.width": "The box's width, a fraction of the image's width...",
    "RelativeStaticCrop.height": "...and its height, a fraction of the image's height.",
    "Filtering.predictions": "`$steps.<s>.predictions` of a detection-like step: the detections it filters.",
    "DetectionFilterStep.filter_definition": "What a kept detection satisfies.",
    "DetectionFilterDefinition.type": "Which of the two filter definitions this is.",
    "DetectionFilterDefinition.field_name": "The detection's value compared: its class, its confidence, or its "
                                            "box's edges and size in pixels.",
    "DetectionFilterDefinition.operator": "How the value is compared with `reference_value` (`in`: it is one of a "
                                          "list; `str_...`: as text).",
    "DetectionFilterDefinition.reference_value": "What the value is compared with, or a parameter "
                                                 "(`$inputs.<name>`).",
    "CompoundDetectionFilterDefinition.type": "Which of the two filter definitions this is.",
    "CompoundDetectionFilterDefinition.left": "One filter definition...",
    "CompoundDetectionFilterDefinition.operator": "...`and`: both hold; `or`: either holds...",
    "CompoundDetectionFilterDefinition.right": "...with the other.",
    "CollectorStep.image": "What it samples: an image input or the crops of a crop step.",
    "CollectorStep.predictions": "What it samples with, made on that same image: `$steps.<s>.predictions` of a "
                                 "detection-like step (a model, `YoloWorld`, `DetectionsConsensus`, "
                                 "`DetectionFilter`), `$steps.<s>.top` of a classifier, or `$steps.<s>.predictions` "
                                 "/ `predicted_classes` of a multi-label classifier.",
    "CollectorStep.prediction_type": "Roboflow's `$steps.<s>.prediction_type` of the step its predictions come "
                                     "from (checked to be that one).",
    "CollectorStep.target_dataset": "The dataset it collects into, resolved against `--target` (a folder's dataset "
                                    "folder, a Roboflow dataset, a Label Studio project): one folder's name, the "
                                    "same rule for a parameter's value ([dataset names](workflows.md)).",
    "CollectorStep.target_dataset_api_key": "Overrides the run's key (cross-workspace uploads); a parameter "
                                            "(`$inputs.<name>`) takes the run's value of it (`--param key=...`). "
                                            "Never shown: no output may name it.",
    "CollectorStep.disable_active_learning": "`true` collects nothing (a parameter may be set per source: "
                                             "`--param SOURCE:NAME=true`); it overrides every configuration.",
    "CollectorStep.active_learning_configuration": "Exactly the format of `--al-config` ([the "
                                                   "reference](configuration-reference.md)); without it, the "
                                                   "dataset's configuration comes from the store named by "
                                                   "`--al-config`, followed live ([one configuration for the "
                                                   "fleet](fleet.md)).",
}


def meaning(model: type[BaseModel], field: str, type_name: str) -> str:
    """A field's meaning: its description, or MEANINGS'; a field with neither stops the script."""
    keys = [f"{type_name}.{field}", *(f"{cls.__name__}.{field}" for cls in model.__mro__), field]
    found = model.model_fields[field].description or next((MEANINGS[key] for key in keys if key in MEANINGS), None)
    if found is None:
        sys.exit(f"steps_reference.py: {model.__name__}.{field} has no meaning: give it a pydantic description, or "
                 "add it to MEANINGS")
    return found


def about(name: str) -> str:
    """What a step type (or an object of a step's) is; one without a sentence stops the script."""
    if name not in ABOUT:
        sys.exit(f"steps_reference.py: {name} says nothing of itself: add it to ABOUT")
    return ABOUT[name]


def holds(output: str) -> str:
    """What an output holds; one without a sentence stops the script."""
    if output not in OUTPUTS:
        sys.exit(f"steps_reference.py: the output {output!r} has no meaning: add it to OUTPUTS")
    return OUTPUTS[output]


def taken(model: type[BaseModel], field: str, prop: dict[str, Any]) -> str:
    """What a field takes, in words: a field that may hold a parameter says it as its refusal does; a field that
    names what the step reads holds a selector."""
    refusal = _refusal(model, field)
    if refusal is not None and refusal.endswith(" or a parameter ($inputs.<name>)"):
        return refusal.removeprefix("must be ").replace(" or a parameter ($inputs.<name>)", ", or a parameter")
    words = described(prop) if prop else "any"
    return words.replace("text", "selector") if field in getattr(model, "READS", ()) else words


def _refusal(model: type[BaseModel], field: str) -> str | None:
    """What the field's validation says of a value nothing accepts (None when it says nothing of its own)."""
    info = model.model_fields[field]
    for check in info.metadata:
        func = getattr(check, "func", None)
        if func is None:
            continue
        try:
            func(NOT_A_VALUE)
        except ValueError as refused:
            return str(refused)
    return None


def spelled(field: str, info: FieldInfo) -> str:
    """The field's name, and the other names it is accepted by."""
    others = [name for name in info.validation_alias.choices if name != field] \
        if isinstance(info.validation_alias, AliasChoices) else []
    return f"`{field}`" + "".join(f" (or `{other}`)" for other in others)


def default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    return "optional" if info.default is None else f"`{json.dumps(info.default)}`"


def table(model: type[BaseModel], fields: list[str], names: list[str], schema: dict[str, Any]) -> list[str]:
    """A model's fields as a table, for the types `names` (its `type` field takes each of them)."""
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for field in fields:
        info = model.model_fields[field]
        kind = " \\| ".join(f"`{json.dumps(name)}`" for name in names) if field == "type" \
            else taken(model, field, schema["properties"][field])
        lines.append(f"| {spelled(field, info)} | {kind} | {default(info)} | {meaning(model, field, names[0])} |")
    return lines


def groups(kind: type[Step]) -> Iterator[tuple[list[str], list[str]]]:
    """The kind's types, grouped by the fields they take and what they offer: (its names, its fields) each."""
    only = ONLY_ON.get(kind, {})
    somewhere = set().union(*only.values()) if only else set()
    found: dict[tuple[Any, ...], list[str]] = {}
    for type_name in get_args(kind.model_fields["type"].annotation):
        fields = tuple(field for field in kind.model_fields if field not in somewhere or field in only[type_name])
        key = (fields, kind.outputs_of(type_name), kind.detections_of(type_name), kind.collected_of(type_name))
        found.setdefault(key, []).append(type_name)
    for (fields, *_), names in found.items():
        yield names, list(fields)


def section(kind: type[Step], names: list[str], fields: list[str]) -> list[str]:
    """A step type's section: its other names, what it does, its fields, what it offers, and the parts of its
    fields that are objects of their own."""
    first = names[0]
    schema = kind.model_json_schema()
    lines = ["", f"## {first}", ""]
    if names[1:]:
        lines += ["Also named " + ", ".join(f"`{name}`" for name in names[1:]) + ".", ""]
    lines += [about(first), "", *table(kind, fields, names, schema), "", offers(kind, first)]
    for name, part in schema.get("$defs", {}).items():
        model = _part(kind, name)
        own_types = list(get_args(model.model_fields["type"].annotation))
        lines += ["", f"### {name}", "", about(name), "", *table(model, list(model.model_fields), own_types, part)]
    return lines


def _part(kind: type[Step], name: str) -> type[BaseModel]:
    """The model of one of a kind's `$defs`, found in the kind's module."""
    model = getattr(sys.modules[kind.__module__], name, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        sys.exit(f"steps_reference.py: {kind.__name__} refers to {name}, which its module does not hold")
    return model


def offers(kind: type[Step], type_name: str) -> str:
    """What a step of this type offers, and what of it a collector samples with."""
    outputs = kind.outputs_of(type_name)
    if not outputs:
        return "It offers no outputs."
    words = "It offers " + ", ".join(f"`{output}`" for output in outputs) + " (`$steps.<name>.<output>`)."
    if kind.detections_of(type_name):
        words += " Its `predictions` are detections: a crop, a filter, a consensus and a collector take them."
    collected = kind.collected_of(type_name)
    if collected:
        words += " A collector samples with " + " or ".join(f"`{output}`" for output in collected) + "."
    return words


def render() -> str:
    """The Markdown page."""
    kinds = [kind for kind in step_kinds() if kind.__module__.startswith("framesift.")]
    lines = [
        "# Workflow steps reference",
        "",
        "<!-- generated by scripts/steps_reference.py from the step registry: edit the steps, then run it -->",
        "",
        "Every step type framesift ships, generated from the step registry (`framesift/workflows/steps/`, one file "
        "per kind; [a step of your own](plugins/step.md) is made the same way). What a workflow is, how its steps "
        "are ordered and validated, and how collectors meet targets and budgets: [workflows](workflows.md).",
        "",
        "The fields are Roboflow's, with Roboflow's meaning; framesift's own additions say so; those of \"no "
        "effect\" are accepted so that a definition runs unchanged, and do nothing here. Unknown fields are "
        "refused, and values are not coerced (`\"0.5\"` is no number). A field that takes a parameter may hold "
        "`$inputs.<name>` instead of its value; a field that names what a step reads holds a selector "
        "(`$inputs.<name>`, `$steps.<name>.<output>`). Each model field is accepted only on the step types "
        "Roboflow gave it: each section lists those of its type.",
        "",
        "## Outputs",
        "",
        "What a step offers, each read as `$steps.<name>.<output>` (`$steps.<name>.*`: all of them):",
        "",
        "| output | holds |",
        "|---|---|",
    ]
    every = dict.fromkeys(output for kind in kinds for names, _ in groups(kind) for output in kind.outputs_of(names[0]))
    lines += [f"| `{output}` | {holds(output)} |" for output in every]
    for kind in kinds:
        for names, fields in groups(kind):
            lines += section(kind, names, fields)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page is stale")
    parser.add_argument("--page", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    page = render()
    if args.page.is_file() and args.page.read_text(encoding="utf-8") == page:
        return 0
    if args.check:
        print(f"{args.page} is stale: run python scripts/steps_reference.py", file=sys.stderr)
        return 1
    args.page.write_text(page, encoding="utf-8")
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
