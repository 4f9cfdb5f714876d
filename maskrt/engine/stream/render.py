"""The one rendering call of the pipeline's render stage (swap it for a faster paste/blend).

render_frame(image, dets, classes, fps=None) -> uint8 [H, W, 3]: `image` is the frame as decoded
(uint8 [H, W, 3] RGB, not modified), `dets` its Detections at the same size, `classes` the names
indexed by label id; `fps` (when given) is drawn in the top-left corner; `colors` (uint8 [N, 3],
optional: e.g. a colour per track id) colours each detection, else a colour per instance index.
"""

from __future__ import annotations

import numpy as np

from ..detections import Detections
from ..render import draw_detections


def render_frame(image: np.ndarray, dets: Detections, classes: list[str], fps: float | None = None,
                 colors=None) -> np.ndarray:
    """Masks blended per instance, boxes, "name score" labels and optionally an fps overlay."""
    return draw_detections(image, dets, classes, fps=fps, colors=colors)
