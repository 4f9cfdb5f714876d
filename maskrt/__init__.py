"""maskrt: Mask R-CNN inference engine (OpenVINO on CPUs, TensorRT + Triton kernels on GPUs)."""

from ._version import __version__
from .api import load
from .engine import Detections, Segmenter
from .errors import MaskrtError

__all__ = ["Detections", "MaskrtError", "Segmenter", "__version__", "load"]
