"""The pipeline: sources decoded in their threads, one inference thread running the model or workflow, the
collectors and sinks fed (`pipeline`); sinks (`sinks`)."""
