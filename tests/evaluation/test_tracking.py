"""Tracking metrics of frame records against a ground truth with track ids (evaluation/tracking.py),
checked on hand-built sequences whose HOTA, MOTA and IDF1 are counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskrt.errors import MaskrtError
from maskrt.evaluation.tracking import format_tracking, video_tracking

SIZE = 40
OBJECTS = {7: (2, 2, 10, 10), 9: (20, 20, 10, 12)}  # track id -> bbox x, y, w, h


def rle(x, y, w, h, rows=None) -> dict:
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[y:y + (rows or h), x:x + w] = 1
    out = mask_utils.encode(np.asfortranarray(m))
    return {"size": [SIZE, SIZE], "counts": out["counts"].decode()}


def ground_truth(frames=4) -> dict:
    images = [{"id": i, "file_name": f"frame_{i:06d}", "height": SIZE, "width": SIZE} for i in range(frames)]
    anns = [{"id": 10 * i + t, "image_id": i, "category_id": 1, "bbox": list(box), "area": box[2] * box[3],
             "iscrowd": 0, "segmentation": rle(*box), "track_id": t} for i in range(frames) for t, box in OBJECTS.items()]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "square"}]}


def records(ids_at, frames=4, rows=None) -> list[dict]:
    """Frame records predicting every object exactly, with id ids_at(frame, gt id) (None: left out)."""
    out = []
    for i in range(frames):
        insts = [{"bbox": list(box), "score": 0.9, "category_id": 1, "segmentation": rle(*box, rows=rows),
                  "track_id": tid} for t, box in OBJECTS.items() if (tid := ids_at(i, t)) is not None]
        out.append({"frame": i, "time": i / 30, "instances": insts})
    return out


def test_a_perfect_tracker_scores_one_whatever_its_ids():
    scores = video_tracking(records(lambda i, t: t + 100), ground_truth())
    assert scores["frames"] == 4
    for by in ("box", "mask"):
        s = scores[by]
        assert (s["HOTA"], s["DetA"], s["AssA"], s["MOTA"], s["IDF1"], s["IDSW"]) == (1.0, 1.0, 1.0, 1.0, 1.0, 0)


def test_ids_swapped_halfway():
    # frames 0-1: object 7 is id 1 and object 9 id 2; frames 2-3 swapped. Counted by hand:
    # CLEAR: 8 matches, each object switches once: MOTA = (8 - 0 - 2) / 8; IDF1: the best id pairing
    # covers two frames of each object: IDTP 4 of 8 + 8 -> 0.5; HOTA: detection perfect (DetA 1), and
    # every matched pair shares 2 of its 4 + 4 - 2 frames: AssA 1/3, HOTA sqrt(1/3).
    scores = video_tracking(records(lambda i, t: (1 if t == 7 else 2) if i < 2 else (2 if t == 7 else 1)),
                            ground_truth())
    for by in ("box", "mask"):
        s = scores[by]
        assert s["IDSW"] == 2 and s["MOTA"] == pytest.approx(0.75) and s["IDF1"] == pytest.approx(0.5)
        assert s["DetA"] == pytest.approx(1.0) and s["AssA"] == pytest.approx(1 / 3)
        assert s["HOTA"] == pytest.approx(math.sqrt(1 / 3))


def test_unconfirmed_detections_and_missing_frames_count_as_misses():
    # object 9 is never confirmed (-1), and the record of frame 3 is missing
    scores = video_tracking(records(lambda i, t: 1 if t == 7 else -1)[:3], ground_truth())
    s = scores["box"]
    assert (s["CLR_TP"], s["CLR_FN"], s["CLR_FP"]) == (3, 5, 0)
    assert s["MOTA"] == pytest.approx(3 / 8) and s["IDF1"] == pytest.approx(2 * 3 / (3 + 8))


def test_masks_are_what_mask_similarity_scores():
    # right boxes, masks cut to their top 3 rows: IoU 0.3 (object 7) and 0.25 (object 9) < 0.5
    scores = video_tracking(records(lambda i, t: t, rows=3), ground_truth())
    assert scores["box"]["IDF1"] == 1.0 and scores["mask"]["IDF1"] == 0.0
    assert scores["mask"]["DetA"] < 0.3 < scores["box"]["DetA"]
    text = format_tracking(scores)
    assert text.splitlines()[0].startswith("box   HOTA 100.0") and "IDF1   0.0" in text.splitlines()[1]


def test_ground_truth_without_track_ids_is_refused():
    gt = ground_truth()
    del gt["annotations"][0]["track_id"]
    with pytest.raises(MaskrtError, match="no track_id"):
        video_tracking(records(lambda i, t: t), gt)
    with pytest.raises(MaskrtError, match="no frames"):
        video_tracking([], {"images": [], "annotations": []})
