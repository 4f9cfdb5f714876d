"""Multi-object tracking for video instance segmentation (numpy + scipy only).

- `ByteTracker`: ByteTrack as Ultralytics implements it, over timestamped frames, matching by
  box IoU or mask IoU (byte_tracker.py); `TrackerConfig`: its settings, from YAML (config.py).
- `MaskCrop`, `carry_mask`: instance masks as crops over integer regions, moved with a box (masks.py).
- `metrics`: HOTA, CLEAR MOT and identity (IDF1) metrics of a tracked sequence, as TrackEval.
"""

from .byte_tracker import ByteTracker, TrackedObjects
from .config import TrackerConfig
from .masks import MaskCrop, carry_mask, mask_iou

__all__ = ["ByteTracker", "MaskCrop", "TrackedObjects", "TrackerConfig", "carry_mask", "mask_iou"]
