"""What a backend provides: the contract between maskrt's runtime and one way of running a model.

A backend turns RGB images into raw detections. Everything around it (the Segmenter, streams,
run / batch / serve, evaluation) only uses what `Backend` lists, so a new backend plugs in by
implementing it and being registered in `maskrt.api.ENGINE_BACKENDS` (for an engine-folder
target) or chosen in `maskrt.api.load_with` (for checkpoints).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ...model import RawDetections
from ...model.network import Detector


@runtime_checkable
class Backend(Protocol):
    """name: the backend's name as in maskrt.options.BACKENDS (shown by `repr(Segmenter)` and
    `maskrt eval`). detector: the maskrt.model.Detector whose glue and thresholds the backend
    runs (load() sets its DetectionParams), or None when the thresholds are fixed inside the
    compiled model (a TensorRT plan). infer(images) -> one RawDetections per image, in order:
    images are np.ndarray [H, W, 3] uint8 RGB, possibly of different sizes; boxes come back in
    each image's own pixels. infer may be called from several threads; a backend serialises
    calls that share state (a lock), so a Segmenter can be shared."""

    name: str
    detector: Detector | None

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]: ...
