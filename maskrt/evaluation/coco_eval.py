"""COCO box and mask AP with pycocotools: ground-truth loading, result checks, the 12 standard numbers.

`load_coco(path)` reads and checks a COCO instances file (one-line `MaskrtError` on problems) and
returns a quiet `pycocotools.coco.COCO`. `evaluate(coco_gt, results)` runs `COCOeval` for each IoU
type, prints the standard 12-line summary tables and returns them by name (`STAT_NAMES`).

Conventions (the same as detectron2's COCO evaluator):
* For "segm" the results' `bbox` field is dropped before `loadRes`, so a detection's area (which
  decides small / medium / large) is its mask area, not its box area.
* Values are in [0, 1]; pycocotools reports -1 for a number with no ground truth in its range
  (e.g. APs when no object is small); that -1 is kept as is.
* Ground-truth annotation ids are renumbered 1..N when any is missing, duplicated or <= 0:
  COCOeval stores matched ground-truth ids in an array where 0 means "unmatched", so an
  annotation with id 0 would silently count as a miss.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import TextIO

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..errors import MaskrtError, first_line

IOU_TYPES = ("bbox", "segm")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
TABLE_TITLES = {"bbox": "box", "segm": "mask"}


def load_coco(source: str | Path | dict | COCO) -> COCO:
    """A checked, quiet COCO ground-truth object from a path, a parsed COCO dict, or a COCO object.

    Requires top-level `images`, `annotations` and `categories` lists; every image needs `id`,
    `file_name`, `height`, `width`; every annotation `image_id` (of a listed image),
    `category_id` and `bbox`. Missing `iscrowd` becomes 0 and a missing `area` is computed
    from the segmentation (or the box). Raises MaskrtError with a one-line reason otherwise.
    A COCO object is returned as is (assumed valid).
    """
    if isinstance(source, COCO):
        return source
    if isinstance(source, (str, Path)):
        name = str(source)
        doc = _read_json(Path(source))
    else:
        name = "annotations"
        doc = json.loads(json.dumps(source))  # deep copy: the caller's dict is not modified
    _check_document(doc, name)
    _complete_annotations(doc)
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _read_json(path: Path) -> dict:
    """Parse a JSON file, turning every failure into a one-line MaskrtError."""
    if not path.exists():
        raise MaskrtError(f"annotations file not found: {path}")
    if path.is_dir():
        raise MaskrtError(f"annotations path is a directory, not a COCO JSON file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaskrtError(f"{path} is not valid JSON: {first_line(exc)}") from None
    except OSError as exc:
        raise MaskrtError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_document(doc: object, name: str) -> None:
    """Refuse anything that is not a COCO instances document, naming the first problem."""
    if not isinstance(doc, dict):
        raise MaskrtError(f"{name} is not a COCO annotations file (expected a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise MaskrtError(f"{name} is not a COCO instances file: no {key!r} list")
    if not doc["images"]:
        raise MaskrtError(f"{name} lists no images")
    for img in doc["images"]:
        if not isinstance(img, dict) or not {"id", "file_name", "height", "width"} <= img.keys():
            raise MaskrtError(f"{name}: every image needs id, file_name, height and width; got {_short(img)}")
    for cat in doc["categories"]:
        if not isinstance(cat, dict) or "id" not in cat:
            raise MaskrtError(f"{name}: every category needs an id; got {_short(cat)}")
    image_ids = {img["id"] for img in doc["images"]}
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or not {"image_id", "category_id", "bbox"} <= ann.keys():
            raise MaskrtError(f"{name}: every annotation needs image_id, category_id and bbox; got {_short(ann)}")
        if ann["image_id"] not in image_ids:
            raise MaskrtError(f"{name}: annotation for image id {ann['image_id']!r}, which is not in 'images'")


def _complete_annotations(doc: dict) -> None:
    """Fill `iscrowd` and `area` where missing; renumber ids 1..N unless they are unique and > 0."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in doc["images"]}
    anns = doc["annotations"]
    ids = [ann.get("id") for ann in anns]
    renumber = any(not isinstance(i, int) or i <= 0 for i in ids) or len(set(ids)) != len(ids)
    for k, ann in enumerate(anns):
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = _annotation_area(ann, *sizes[ann["image_id"]])
        if renumber:
            ann["id"] = k + 1


def _annotation_area(ann: dict, height: int, width: int) -> float:
    """Pixel area of an annotation's segmentation (polygons or RLE), else its box area."""
    segm = ann.get("segmentation")
    if not segm:
        return float(ann["bbox"][2] * ann["bbox"][3])
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    return float(mask_utils.area(rle))


def _short(obj: object, limit: int = 80) -> str:
    text = json.dumps(obj, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def evaluate(coco_gt: COCO | str | Path | dict, results: list[dict], iou_types=IOU_TYPES, *,
             img_ids: list[int] | None = None, out: TextIO | None = None,
             verbose: bool = True) -> dict[str, dict[str, float]]:
    """COCO AP/AR of `results` against `coco_gt` for each IoU type ("bbox", "segm").

    results: COCO results dicts {"image_id", "category_id", "score", "bbox" [x, y, w, h],
    "segmentation" (RLE, needed for "segm")}; they are not modified.
    img_ids: evaluate only these images (default: all of coco_gt's images).
    Prints, per IoU type, a title line and COCOeval.summarize()'s 12-line table to `out`
    (default sys.stdout) unless verbose is False; pycocotools' progress chatter is suppressed.
    With no results at all, every number is 0 (or -1 where pycocotools has no ground truth)
    and a note says so. Returns {iou_type: {name: value}} with the names of STAT_NAMES.
    """
    coco_gt = load_coco(coco_gt)
    stream = (out or sys.stdout) if verbose else io.StringIO()
    img_ids = sorted(coco_gt.getImgIds()) if img_ids is None else list(img_ids)
    metrics = {}
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise MaskrtError(f"unknown IoU type {iou_type!r}; choose from {', '.join(IOU_TYPES)}")
        check_results(coco_gt, results, iou_type, img_ids)
        metrics[iou_type] = _evaluate_one(coco_gt, results, iou_type, img_ids, stream)
    return metrics


def _evaluate_one(coco_gt: COCO, results: list[dict], iou_type: str, img_ids: list[int],
                  stream: TextIO) -> dict[str, float]:
    """Run COCOeval for one IoU type; print its table to `stream`; return the named stats."""
    coco_dt = _load_results(coco_gt, results, iou_type)
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = img_ids
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    print(f"{TABLE_TITLES[iou_type]} ({iou_type}) AP, {len(img_ids)} images, {len(results)} detections:",
          file=stream)
    if not results:
        print("  no detections: every AP and AR is 0 (-1 where there is no ground truth)", file=stream)
    with contextlib.redirect_stdout(stream):
        evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}


def _load_results(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    """COCO object of the detections (copies); empty results get an empty one (loadRes would crash)."""
    if not results:
        coco_dt = COCO()
        coco_dt.dataset = {"images": list(coco_gt.dataset["images"]),
                           "categories": list(coco_gt.dataset["categories"]), "annotations": []}
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt.createIndex()
        return coco_dt
    drop = {"bbox"} if iou_type == "segm" else set()
    copies = [{k: v for k, v in r.items() if k not in drop} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(copies)


def check_results(coco_gt: COCO, results: list[dict], iou_type: str, img_ids: list[int] | None = None) -> None:
    """Raise MaskrtError unless every result fits `coco_gt` for `iou_type`.

    Each result needs image_id (one of img_ids, default all images), category_id and score;
    "bbox" needs a 4-number bbox, "segm" an RLE segmentation whose size is its image's [H, W].
    """
    allowed = set(coco_gt.getImgIds() if img_ids is None else img_ids)
    for r in results:
        if not isinstance(r, dict) or not {"image_id", "category_id", "score"} <= r.keys():
            raise MaskrtError(f"every result needs image_id, category_id and score; got {_short(r)}")
        if r["image_id"] not in allowed:
            raise MaskrtError(f"result for image id {r['image_id']!r}, which is not among the evaluated images")
        if iou_type == "bbox" and len(r.get("bbox") or ()) != 4:
            raise MaskrtError(f"box evaluation needs a bbox [x, y, w, h] in every result; got {_short(r)}")
        if iou_type == "segm":
            _check_segmentation(coco_gt, r)


def _check_segmentation(coco_gt: COCO, result: dict) -> None:
    """A result's RLE must have its image's size, or pycocotools' IoU fails deep inside."""
    segm = result.get("segmentation")
    if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
        raise MaskrtError(f"mask evaluation needs an RLE segmentation in every result; got {_short(result)}")
    img = coco_gt.imgs[result["image_id"]]
    if list(segm["size"]) != [img["height"], img["width"]]:
        raise MaskrtError(f"mask of size {list(segm['size'])} for image {result['image_id']!r} "
                          f"of size {[img['height'], img['width']]}")


def summary_line(metrics: dict[str, dict[str, float]]) -> str:
    """One line such as "box AP 0.512 | mask AP 0.470 | mask AP50 0.801" for what was evaluated."""
    parts = []
    if "bbox" in metrics:
        parts.append(f"box AP {metrics['bbox']['AP']:.3f}")
    if "segm" in metrics:
        parts += [f"mask AP {metrics['segm']['AP']:.3f}", f"mask AP50 {metrics['segm']['AP50']:.3f}"]
    return " | ".join(parts)


def stats_array(named: dict[str, float]) -> np.ndarray:
    """The 12 numbers of one IoU type back in COCOeval.stats order (float64 [12])."""
    return np.array([named[name] for name in STAT_NAMES], dtype=np.float64)
