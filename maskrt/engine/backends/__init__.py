"""Inference backends: each turns a list of RGB uint8 images into per-image RawDetections.

base.py: the Backend protocol every backend implements; torch_backend.py: the eager model;
openvino_backend.py: a `cpu` engine folder. The TensorRT backend lives with the rest of the
TensorRT target (maskrt.tensorrt.backend).
"""

from .base import Backend
from .torch_backend import TorchBackend

__all__ = ["Backend", "TorchBackend"]
