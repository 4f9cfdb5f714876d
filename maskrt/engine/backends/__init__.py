"""Inference backends: each turns a list of RGB uint8 images into per-image RawDetections."""

from .torch_backend import TorchBackend

__all__ = ["TorchBackend"]
