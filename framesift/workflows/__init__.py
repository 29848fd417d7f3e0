"""Workflows: several models per frame, crops, filters, and `ActiveLearningDataCollector` steps (issue 12).

- `definition`: the definition file, in the shape of Roboflow's workflows, validated strictly;
- `build`: from a definition and a run's settings to a runnable `Workflow` (models loaded, collectors open);
- `engine`: what runs on each batch of frames;
- `filters`: `DetectionFilter` definitions as masks.
"""

from framesift.workflows.build import build_workflow, parse_parameters
from framesift.workflows.definition import (
    WorkflowDefinition,
    is_workflow,
    load_workflow_definition,
    parse_workflow,
)
from framesift.workflows.engine import FrameResult, Region, StepFailed, Workflow

__all__ = ["FrameResult", "Region", "StepFailed", "Workflow", "WorkflowDefinition", "build_workflow", "is_workflow",
           "load_workflow_definition", "parse_parameters", "parse_workflow"]
