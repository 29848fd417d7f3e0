"""The step kinds framesift ships, one file each, registered in this order (the order messages list them in):
models, YOLO-World, consensus, crops, static crops, filters, the collector. A kind of one's own: docs/plugins/step.md.
"""

# isort: off
from framesift.workflows.steps import model, yolo_world, detections_consensus, crop  # noqa: F401 (registered)
from framesift.workflows.steps import static_crops, detection_filter, active_learning_data_collector  # noqa: F401
# isort: on
