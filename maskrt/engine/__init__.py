"""Runtime: backends, pre/post-processing, Detections, sources and sinks, rendering."""

from .detections import Detections
from .segmenter import Segmenter

__all__ = ["Detections", "Segmenter"]
