"""COCO evaluation of maskrt models: box and mask AP with pycocotools.

* :func:`evaluate` -- the 12 standard AP/AR numbers per IoU type ("bbox", "segm"), with the
  standard summary tables printed; :data:`STAT_NAMES` names them.
* :func:`predict_dataset` -- run a Segmenter over the images of a COCO annotations file and
  collect COCO results dicts (the input of :func:`evaluate`, and the results JSON).
* :func:`load_coco` -- a checked, quiet ``pycocotools.coco.COCO`` from a path or dict.
"""

from maskrt.evaluation.coco_eval import (
    IOU_TYPES,
    STAT_NAMES,
    check_results,
    evaluate,
    load_coco,
    stats_array,
    summary_line,
)
from maskrt.evaluation.predict import category_mapping, image_files, predict_dataset

__all__ = [
    "IOU_TYPES",
    "STAT_NAMES",
    "category_mapping",
    "check_results",
    "evaluate",
    "image_files",
    "load_coco",
    "predict_dataset",
    "stats_array",
    "summary_line",
]
