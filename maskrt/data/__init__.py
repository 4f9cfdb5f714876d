"""Synthetic data for maskrt: seeded "shapes" images and videos with exact instance masks.

* :mod:`maskrt.data.shapes` -- scene rendering (:func:`render_scene`, :func:`make_scene`,
  :func:`iter_scenes`), classes ``CLASS_NAMES`` (category id = index + 1).
* :mod:`maskrt.data.coco` -- COCO instances export (:func:`generate_coco_dataset`).
* :mod:`maskrt.data.video` -- H.264 clips with per-frame ground truth
  (:func:`generate_video`, :func:`iter_video_frames`).
"""

from maskrt.data.coco import (
    coco_categories,
    encode_masks,
    generate_coco_dataset,
    scene_annotations,
)
from maskrt.data.shapes import (
    CLASS_NAMES,
    Scene,
    Shape,
    decode_flat_ids,
    iter_scenes,
    make_scene,
    masks_to_boxes,
    render_scene,
    shape_mask,
)
from maskrt.data.video import generate_video, iter_video_frames

__all__ = [
    "CLASS_NAMES",
    "Scene",
    "Shape",
    "coco_categories",
    "decode_flat_ids",
    "encode_masks",
    "generate_coco_dataset",
    "generate_video",
    "iter_scenes",
    "iter_video_frames",
    "make_scene",
    "masks_to_boxes",
    "render_scene",
    "scene_annotations",
    "shape_mask",
]
