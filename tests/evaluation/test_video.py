"""The per-frame AP helper against the generator's ground truth (no model involved)."""

from __future__ import annotations

import json
import threading

import numpy as np
from PIL import Image
import pytest
from pycocotools import mask as mask_utils

from maskrt.data import generate_video
from maskrt.evaluation.video import video_ap

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = generate_video(tmp_path_factory.mktemp("eval") / "clip.mp4", num_frames=6, fps=5, size=(48, 64), seed=2)
    return path, json.loads(path.with_suffix(".json").read_text())


def records_from_gt(gt, transform=lambda ann: ann):
    """Frame records holding the ground truth itself (optionally altered), maskrt run --json format (README)."""
    frames = {img["id"]: [] for img in gt["images"]}
    for ann in gt["annotations"]:
        ann = transform(ann)
        if ann is not None:
            frames[ann["image_id"]].append({"bbox": ann["bbox"], "score": 1.0, "category_id": ann["category_id"],
                                            "segmentation": ann["segmentation"]})
    return [{"frame": i, "time": i / 5, "instances": inst} for i, inst in frames.items()]


def test_perfect_and_empty_predictions(clip):
    path, gt = clip
    scores = video_ap(records_from_gt(gt), path.with_suffix(".json"))
    assert {k: v for k, v in scores.items() if k != "coco"} == {
        "frames": 6, "mask_ap": 1.0, "mask_ap50": 1.0, "box_ap": 1.0, "box_ap50": 1.0}
    empty = [{"frame": i, "time": 0.0, "instances": []} for i in range(6)]
    assert video_ap(empty, gt)["mask_ap"] == 0.0


def test_half_the_instances_missing_lowers_recall(clip):
    _, gt = clip
    kept = records_from_gt(gt, lambda ann: ann if ann["id"] % 2 else None)
    ap = video_ap(kept, gt)["mask_ap"]
    assert 0.2 < ap < 0.8


def test_model_class_names_are_mapped_to_gt_ids(clip):
    _, gt = clip
    names = {c["id"]: c["name"] for c in gt["categories"]}
    classes = ["__background__", *reversed([names[i] for i in sorted(names)])]  # a model with another order

    def relabel(ann):
        return {**ann, "category_id": classes.index(names[ann["category_id"]])}

    records = records_from_gt(gt, relabel)
    assert video_ap(records, gt, classes)["mask_ap"] == 1.0
    assert video_ap(records, gt)["mask_ap"] < 1.0


def test_masks_are_what_is_scored(clip):
    _, gt = clip

    def shrink(ann):  # right box, mask cut to its top row only
        h, w = gt["images"][0]["height"], gt["images"][0]["width"]
        seg = ann["segmentation"]
        m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        ys = np.nonzero(m.any(1))[0]
        m[ys[0] + 1:] = 0
        rle = mask_utils.encode(np.asfortranarray(m))
        return {**ann, "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}}

    scores = video_ap(records_from_gt(gt, shrink), gt)
    assert scores["box_ap"] == 1.0 and scores["mask_ap"] < 0.2


def test_stream_ap_is_maskrt_eval_ap_on_the_same_frames(tmp_path):
    """The demo's measurement (stream -> JSON lines -> video_ap) and `maskrt eval`'s
    (predict_dataset -> evaluate) give the same AP on the same decoded frames, same model."""
    import maskrt
    from maskrt.engine.outputs import frame_record
    from maskrt.engine.sources import open_source
    from maskrt.evaluation import evaluate, predict_dataset
    from tests.model.test_bundled import BUNDLED

    video = generate_video(tmp_path / "clip.mp4", num_frames=6, fps=5, size=(96, 128), seed=11)
    gt = json.loads(video.with_suffix(".json").read_text())
    seg = maskrt.load(BUNDLED, backend="torch", min_size=96, max_size=128, score_threshold=0.05)
    records = [frame_record(index, None, dets) for index, (_, dets) in enumerate(seg.stream(video))]
    for img in gt["images"]:  # the decoded frames as lossless files, named in the annotations
        img["file_name"] = f"{img['file_name']}.png"
    for frame in open_source(video).frames(threading.Event()):
        Image.fromarray(frame.image).save(tmp_path / f"frame_{frame.index:06d}.png")

    streamed = video_ap(records, gt, seg.classes)
    results = predict_dataset(seg, gt, tmp_path, progress=False, label_map=None)
    evaluated = evaluate(gt, results, verbose=False)
    assert len(records) == 6 and sum(len(r["instances"]) for r in records) > 0
    assert streamed["coco"] == evaluated  # all 12 numbers of both IoU types, area ranges included
    assert streamed["mask_ap"] == max(0.0, evaluated["segm"]["AP"]) and streamed["box_ap"] == max(0.0, evaluated["bbox"]["AP"])
