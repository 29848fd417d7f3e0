"""Workflows: several models per frame, crops, filters, and `ActiveLearningDataCollector` steps (issue 12).

- `definition`: the definition file, in the shape of Roboflow's workflows, validated strictly;
- `step`: what a step kind is, and the registry of them (`register_step`: a kind of one's own, docs/plugins/step.md);
- `steps`: the kinds framesift ships, one file each (schema, outputs, how it runs on a batch);
- `checks`: the checks that need the whole definition; `fields`: what steps' fields hold;
- `build`: from a definition and a run's settings to a runnable `Workflow` (models loaded, collectors open);
- `engine`: what runs on each batch of frames; `regions`: the frames and crops steps work on;
- `consensus`: the `DetectionsConsensus` merge.
"""

from framesift.workflows.build import build_workflow, parse_parameters
from framesift.workflows.definition import (
    WorkflowDefinition,
    is_workflow,
    load_workflow_definition,
    parse_workflow,
)
from framesift.workflows.engine import FrameResult, Region, StepFailed, Workflow
from framesift.workflows.step import Batch, Filtering, Step, register_step

__all__ = ["Batch", "Filtering", "FrameResult", "Region", "Step", "StepFailed", "Workflow", "WorkflowDefinition",
           "build_workflow", "is_workflow", "load_workflow_definition", "parse_parameters", "parse_workflow",
           "register_step"]
