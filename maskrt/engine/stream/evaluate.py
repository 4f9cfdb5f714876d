"""Per-frame mask/box AP of streamed JSON-lines results against COCO-style ground truth.

The ground truth is the `.json` that maskrt.data.generate_video writes beside its MP4: one COCO
image per frame with image id = frame index, RLE masks. Scores come from pycocotools' COCOeval
(AP averaged over IoU 0.50:0.95, and AP at IoU 0.50), over all frames of the video at once.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    """Frame records of a JSON-lines file (blank lines ignored)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def coco_results(records: Iterable[dict], classes: list[str] | None, categories: list[dict]) -> list[dict]:
    """Frame records -> COCO results ({"image_id": frame, "category_id", "bbox", "score",
    "segmentation"}). With `classes` (the model's names by label id), labels are mapped to the
    ground-truth category with the same name (instances of other classes are left out);
    without, the label is used as the category id."""
    by_name = {c["name"]: c["id"] for c in categories}
    results = []
    for record in records:
        for inst in record["instances"]:
            category = inst["category_id"]
            if classes is not None:
                name = classes[category] if 0 <= category < len(classes) else None
                if name not in by_name:
                    continue
                category = by_name[name]
            results.append({"image_id": record["frame"], "category_id": category, "bbox": inst["bbox"],
                            "score": inst["score"], "segmentation": inst["segmentation"]})
    return results


def video_ap(records: Iterable[dict] | str | Path, ground_truth: str | Path | dict,
             classes: list[str] | None = None) -> dict:
    """{"mask_ap", "mask_ap50", "box_ap", "box_ap50", "frames"}: AP over every frame of the
    ground truth (a frame without a record counts as a frame with no detections).

    records: a JSON-lines path or frame records (DESIGN.md streaming format); ground_truth: a COCO
    instances document or its path; classes: see coco_results.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(records, (str, Path)):
        records = read_jsonl(records)
    gt_doc = ground_truth if isinstance(ground_truth, dict) else json.loads(Path(ground_truth).read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        results = coco_results(records, classes, gt_doc["categories"])
        scores = {"frames": len(gt_doc["images"])}
        for iou_type, key in (("segm", "mask"), ("bbox", "box")):
            if not results:
                scores[f"{key}_ap"] = scores[f"{key}_ap50"] = 0.0
                continue
            evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            scores[f"{key}_ap"] = max(0.0, float(evaluator.stats[0]))
            scores[f"{key}_ap50"] = max(0.0, float(evaluator.stats[1]))
    return scores
