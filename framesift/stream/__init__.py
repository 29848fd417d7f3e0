"""The stream: video sources decoded in their own threads (`sources`), archives of recordings (`archives`,
`fleet`), what to decode (`sampled_decoding`, `keyframes`), reconnects, and the slots frames wait in."""

from framesift.errors import SourceError
from framesift.frames import Frame, SourceSpec
from framesift.stream.sources import SourceOptions

__all__ = ["Frame", "SourceError", "SourceOptions", "SourceSpec"]
