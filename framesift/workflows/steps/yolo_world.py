"""`YoloWorld`: an open-vocabulary detector exported to ONNX for `class_names`, run as any model step."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, Field

from framesift.models.model import Model
from framesift.workflows.fields import Classes, Fraction, Text, or_parameter
from framesift.workflows.step import register_step
from framesift.workflows.steps.model import Inferring

YOLO_WORLD_VERSIONS = ("s", "m", "l", "x", "v2-s", "v2-m", "v2-l", "v2-x")


@register_step
class YoloWorldStep(Inferring):
    """An open-vocabulary detector exported to ONNX for `class_names`. Its model is `yolo_world/<version>` (resolved
    as any model id is), or framesift's own `model_id` (an ONNX file, or any id) when given; the model's class names
    must be `class_names`."""

    type: Literal["YoloWorld", "YoloWorldModel"]
    image: str = Field(validation_alias=AliasChoices("image", "images"))
    class_names: Classes
    version: Annotated[Any, or_parameter(f"one of {', '.join(YOLO_WORLD_VERSIONS)}",
                                         YOLO_WORLD_VERSIONS.__contains__)] = "l"
    confidence: Fraction = None
    model_id: Text = None  # framesift's own

    OUTPUTS: ClassVar[tuple[str, ...]] = ("predictions", "image", "parent_id", "prediction_type")
    DETECTIONS: ClassVar[bool] = True
    ONCE: ClassVar[tuple[str, ...]] = ("model_id", "version", "class_names", "confidence")

    @property
    def task_type(self) -> str:
        return "object-detection"

    def model_id_from(self, value: Any) -> Any:
        return value(self.model_id) or f"yolo_world/{value(self.version)}"

    def refusal(self, model: Model, model_id: str, value: Any) -> str | None:
        if set(model.class_names) == set(value(self.class_names)):
            return None
        return (f"step {self.name!r} detects {sorted(value(self.class_names))}, but {model_id} was exported "
                f"for {sorted(model.class_names)}: export YOLO-World with these class names "
                "(model.set_classes([...]) before the export)")
