"""`maskrt.load`: one entry point for checkpoints, torchvision model names and (later) engines."""

from __future__ import annotations

from pathlib import Path

from .engine import Segmenter
from .engine.backends import TorchBackend
from .errors import MaskrtError
from .model import DetectionParams, load_model

BACKENDS = ("auto", "torch")


def load(path_or_name: str | Path, device: str = "cpu", backend: str = "auto", *,
         score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
         min_size: int | None = None, max_size: int | None = None, batch_size: int = 1) -> Segmenter:
    """Load a model for inference.

    path_or_name: a checkpoint (.pth/.pt/.safetensors) or "torchvision:maskrcnn_resnet50_fpn[_v2]".
    score_threshold: detections scoring at or below it are dropped (torchvision's box_score_thresh).
    min_size / max_size: override the checkpoint's input-size policy (default 800 / 1333).
    """
    if backend not in BACKENDS:
        raise MaskrtError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    loaded = load_model(path_or_name, min_size=min_size, max_size=max_size)
    loaded.model.detector.detection_params = DetectionParams(
        score_thresh=score_threshold, nms_thresh=nms_threshold, detections_per_img=max_detections)
    return Segmenter(TorchBackend(loaded.model, device), loaded.classes, loaded.source, batch_size)
