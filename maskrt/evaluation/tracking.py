"""Tracking metrics of streamed JSON lines against a video's ground truth with track ids.

The ground truth is a COCO instances document with one image per frame (image id = frame index)
whose annotations carry "track_id", as maskrt.data.generate_video writes it. The predictions are
`maskrt run --track --json`'s frame records: each instance's "track_id" is its identity;
instances with track_id -1 (detections not matched to a confirmed track) are left out, as a
tracker's unconfirmed detections are in MOT evaluation. Both sides become maskrt.tracking.metrics
frames, scored by box IoU and by mask IoU (masks decoded from their RLE): HOTA (DetA, AssA),
CLEAR MOT (MOTA, ID switches) and identity (IDF1), as TrackEval computes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import MaskrtError
from ..tracking import MaskCrop
from ..tracking.metrics import Frame, evaluate
from .video import read_jsonl

REPORTED = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "Frag", "CLR_TP",
            "CLR_FN", "CLR_FP", "MT", "PT", "ML")


def _crop(segmentation: dict) -> MaskCrop:
    """A COCO RLE (compressed, counts str or bytes) as a MaskCrop of its foreground."""
    counts = segmentation["counts"]
    rle = {"size": segmentation["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return MaskCrop.from_full(mask_utils.decode(rle).astype(bool))


def _frame(instances: list[dict], id_key: str) -> Frame:
    """A metrics Frame from COCO-style instances: ids, boxes xyxy (from bbox x, y, w, h), masks."""
    ids = np.array([inst[id_key] for inst in instances], dtype=np.int64)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (inst["bbox"] for inst in instances)],
                     dtype=np.float64).reshape(-1, 4)
    return Frame(ids, boxes, [_crop(inst["segmentation"]) for inst in instances])


def require_track_ids(document: dict) -> list[int]:
    """The frame indices (image ids, sorted) of a ground truth that can score tracking: one line
    (MaskrtError) for one without frames or with an annotation lacking its track_id."""
    frames = sorted(image["id"] for image in document.get("images", []))
    if not frames:
        raise MaskrtError("the annotations hold no frames (no images)")
    if any("track_id" not in ann for ann in document.get("annotations", [])):
        raise MaskrtError("the annotations have no track_id: tracking needs a video's ground truth with "
                          "track ids (as maskrt.data.generate_video writes it)")
    return frames


def ground_truth_frames(document: dict) -> tuple[list[int], list[Frame]]:
    """(frame indices in order, a Frame per frame) of a ground-truth document with track ids."""
    frames = require_track_ids(document)
    by_frame: dict[int, list[dict]] = {index: [] for index in frames}
    for ann in document.get("annotations", []):
        by_frame.setdefault(ann["image_id"], []).append(ann)
    return frames, [_frame(by_frame[index], "track_id") for index in frames]


def predicted_frames(records: Iterable[dict], frames: list[int]) -> list[Frame]:
    """A Frame per ground-truth frame from frame records; a frame without a record, or an
    instance without a track_id or with -1, contributes nothing."""
    by_frame = {record["frame"]: record["instances"] for record in records}
    out = []
    for index in frames:
        tracked = [inst for inst in by_frame.get(index, []) if inst.get("track_id", -1) >= 0]
        out.append(_frame(tracked, "track_id"))
    return out


def video_tracking(records: Iterable[dict] | str | Path, ground_truth: dict | str | Path) -> dict:
    """{"frames": n, "box": {...}, "mask": {...}}: REPORTED metrics by box IoU and by mask IoU.

    records: frame records (maskrt run --track --json's lines) or a JSON-lines path;
    ground_truth: a COCO document with track ids, or its path. Rates are in [0, 1]; IDSW, Frag,
    CLR_* and MT/PT/ML are counts.
    """
    if isinstance(records, (str, Path)):
        records = read_jsonl(records)
    document = ground_truth if isinstance(ground_truth, dict) else json.loads(Path(ground_truth).read_text())
    frames, truth = ground_truth_frames(document)
    predicted = predicted_frames(records, frames)
    scores: dict = {"frames": len(frames)}
    for by in ("box", "mask"):
        summary = evaluate(truth, predicted, by=by).summary()
        scores[by] = {name: summary[name] for name in REPORTED}
    return scores


def format_tracking(scores: dict) -> str:
    """Two lines, box and mask: HOTA, DetA, AssA, MOTA, IDF1 (percent) and ID switches."""
    lines = []
    for by in ("box", "mask"):
        s = scores[by]
        lines.append(f"{by:<5} HOTA {100 * s['HOTA']:5.1f}  DetA {100 * s['DetA']:5.1f}  AssA {100 * s['AssA']:5.1f}  "
                     f"MOTA {100 * s['MOTA']:5.1f}  IDF1 {100 * s['IDF1']:5.1f}  ID switches {s['IDSW']}")
    return "\n".join(lines)
