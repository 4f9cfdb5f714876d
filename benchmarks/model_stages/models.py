"""Seeded models for the stage benchmarks, built only from torchvision's constructors.

- "small": the bundled model's size class, ResNet-18-FPN with 64 FPN channels and narrow heads
  (maskrt.testing.small_torchvision_maskrcnn), 5 classes, on a 320x320 image.
- "r50": torchvision's maskrcnn_resnet50_fpn (v1, 91 classes, random weights), 800x1088 image
  (kept at that size by the 800/1333 policy: both sides are multiples of 32, so no padding).

Detections use score threshold 0, so every image yields the full 100 detections: the worst case
for the mask head, paste and render, and the same count on every run whatever the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskrt.model import DetectionParams, InputPolicy, MaskRCNN, infer_config
from maskrt.testing import r50_torchvision_maskrcnn, small_torchvision_maskrcnn

DETECTIONS = DetectionParams(score_thresh=0.0, nms_thresh=0.5, detections_per_img=100)


@dataclass(frozen=True)
class Variant:
    name: str
    arch: str
    height: int
    width: int
    min_size: int
    max_size: int

    @property
    def group(self) -> str:
        return f"stages {self.arch} {self.height}x{self.width}"


SMALL = Variant("small", "r18-fpn64", 320, 320, 320, 512)
R50 = Variant("r50", "r50-fpn", 800, 1088, 800, 1333)


def build(variant: Variant) -> MaskRCNN:
    """maskrt's eager MaskRCNN for the variant, with the variant's input policy."""
    tv = small_torchvision_maskrcnn() if variant is SMALL else r50_torchvision_maskrcnn()
    config = infer_config(tv.state_dict())
    policy = InputPolicy(min_size=variant.min_size, max_size=variant.max_size)
    return MaskRCNN(tv, config, policy, detection=DETECTIONS)
