"""Box and mask AP of streamed JSON-lines results against a video's COCO-style ground truth.

The ground truth is the `.json` that maskrt.data.generate_video writes beside its MP4: one COCO
image per frame with image id = frame index, RLE masks. The frame records become COCO results
(image_id = frame) and go through `coco_eval.evaluate`, the one COCOeval of maskrt, so a video's
AP is the same measurement as `maskrt eval`'s on the same frames (AP averaged over IoU
0.50:0.95, and AP at IoU 0.50, over all frames of the video at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .coco_eval import evaluate, load_coco
from .predict import category_mapping


def read_jsonl(path: str | Path) -> list[dict]:
    """Frame records of a JSON-lines file (blank lines ignored)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def coco_results(records: Iterable[dict], label_map: dict[int, int] | None, image_ids: set[int]) -> list[dict]:
    """Frame records -> COCO results ({"image_id": frame, "category_id", "bbox", "score",
    "segmentation"}) for the frames in image_ids. label_map: model label -> category id (labels
    missing from it are left out), as predict.category_mapping makes it; None: label = id."""
    results = []
    for record in records:
        if record["frame"] not in image_ids:
            continue
        for inst in record["instances"]:
            category = inst["category_id"]
            if label_map is not None:
                if category not in label_map:
                    continue
                category = label_map[category]
            results.append({"image_id": record["frame"], "category_id": category, "bbox": inst["bbox"],
                            "score": inst["score"], "segmentation": inst["segmentation"]})
    return results


def video_ap(records: Iterable[dict] | str | Path, ground_truth: str | Path | dict,
             classes: list[str] | None = None) -> dict:
    """{"mask_ap", "mask_ap50", "box_ap", "box_ap50", "frames", "coco"}: AP over every frame of
    the ground truth (a frame without a record counts as a frame with no detections; -1,
    pycocotools' "no ground truth", is reported as 0); "coco" holds evaluate()'s 12 numbers per
    IoU type as they are.

    records: a JSON-lines path or frame records (maskrt run --json's format); ground_truth: a
    COCO instances document or its path; classes: the model's class names by label id, matched to
    the ground truth's categories as `maskrt eval` matches them (predict.category_mapping);
    without them the label is the category id.
    """
    if isinstance(records, (str, Path)):
        records = read_jsonl(records)
    gt_doc = ground_truth if isinstance(ground_truth, dict) else json.loads(Path(ground_truth).read_text())
    coco_gt = load_coco(gt_doc)
    label_map = category_mapping(classes, coco_gt)[0] if classes is not None else None
    results = coco_results(records, label_map, set(coco_gt.getImgIds()))
    metrics = evaluate(coco_gt, results, verbose=False)
    scores = {"frames": len(gt_doc["images"]), "coco": metrics}
    for iou_type, key in (("segm", "mask"), ("bbox", "box")):
        scores[f"{key}_ap"] = max(0.0, metrics[iou_type]["AP"])
        scores[f"{key}_ap50"] = max(0.0, metrics[iou_type]["AP50"])
    return scores
