"""maskrt: Mask R-CNN inference engine (OpenVINO on CPUs, TensorRT + Triton kernels on GPUs)."""

from .api import load
from .engine import Detections, Segmenter
from .errors import MaskrtError

__version__ = "0.1.0"
__all__ = ["Detections", "MaskrtError", "Segmenter", "__version__", "load"]
