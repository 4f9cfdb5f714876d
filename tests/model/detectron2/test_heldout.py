"""The held-out detectron2 model: made last with tools/detectron2_goldens.py (model
"heldout_r34_fpn96_c12": a ResNet-34, 96-channel FPN, 512-wide box head, 2-conv 192-wide mask head,
12 classes, seed 34, three images of its own - a square, a tall image clamped by the max size, a
panorama), never used while maskrt's detectron2 support was written. Saved as a model-zoo .pkl,
it goes through `maskrt.load(pkl)` with no arguments - the CPU engine with the model zoo's
settings, as detectron2's DefaultPredictor runs a model-zoo config - and must give detectron2's
boxes, scores, classes and masks. Tolerances and the tie rule: test_parity.py, compare.py."""

from __future__ import annotations

import maskrt
from tests.model.detectron2 import weights as W
from tests.model.detectron2.compare import assert_masks_agree, match_ranked
from tests.model.detectron2.test_parity import BOX_TOL, MASK_BAND, SCORE_TOL

NAME = "heldout_r34_fpn96_c12"


def test_heldout_model_matches_detectron2_through_load(tmp_path):
    pkl = tmp_path / "model_final.pkl"
    W.save_model_zoo_pkl(W.weights_from_spec(W.load_spec(NAME)), pkl)
    seg = maskrt.load(pkl)
    assert seg.backend.name == "openvino" and seg.classes == ["__background__", *(f"class_{i}" for i in range(1, 13))]
    gold = W.load_goldens(NAME)
    assert len(gold["images"]) == 3
    for im in gold["images"]:
        meta = im["meta"]
        dets = seg(W.synthetic_image(meta["seed"], meta["height"], meta["width"]))
        pairs = match_ranked((dets.boxes, dets.scores, dets.labels - 1), (im["boxes"], im["scores"], im["classes"]),
                             BOX_TOL, SCORE_TOL, cap=100, threshold=0.05, nms_iou=0.5)
        assert len(pairs) >= 0.9 * len(im["scores"]) > 0, meta["name"]
        assert_masks_agree(pairs, dets.masks, dets.mask_probs, dets.boxes, im["masks_rle"], MASK_BAND)
