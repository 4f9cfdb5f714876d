"""One frame on its way through the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detections import Detections


@dataclass
class Work:
    """One frame on its way through the stages. image: [H, W, 3] uint8 RGB after preprocess;
    started: perf_counter() when the frame became available (end-to-end latency starts there);
    raw: the backend's RawDetections (None when the engine skipped the frame: see steps.py);
    dets: the frame's Detections once post-processed; record: its JSON-lines object;
    rendered: the annotated frame."""

    index: int
    time: float | None
    image: np.ndarray
    name: str | None
    started: float
    raw: object = None
    dets: Detections | None = None
    record: dict | None = None
    rendered: np.ndarray | None = None
