"""The stream: sources, the threaded pipeline, metrics, sinks."""

from framesift.errors import SourceError
from framesift.stream.frames import Frame
from framesift.stream.pipeline import Pipeline
from framesift.stream.sinks import AnnotatedVideo, BackgroundSink, PredictionsFile
from framesift.stream.sources import SourceOptions, SourceSpec

__all__ = ["AnnotatedVideo", "BackgroundSink", "Frame", "Pipeline", "PredictionsFile", "SourceError",
           "SourceOptions", "SourceSpec"]
