"""The whole model with all three ops on the Triton implementations (interpreter) matches the
reference-kernel model, and the cpu kernels do too, on a seeded small Mask R-CNN."""

from __future__ import annotations

import numpy as np
import pytest

import maskrt
import maskrt.kernels as K
from maskrt.model import save_checkpoint
from tests.conftest import SMALL_CLASSES, random_image, small_torchvision_maskrcnn

SIZE = (128, 160)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    path = tmp_path_factory.mktemp("kernels_model") / "small.safetensors"
    save_checkpoint(path, small_torchvision_maskrcnn(seed=3).state_dict(), classes=SMALL_CLASSES)
    return maskrt.load(str(path), score_threshold=0.01, max_detections=20, min_size=SIZE[0], max_size=SIZE[1])


def detect(segmenter, image, impl):
    with K.use(impl):
        dets = segmenter(image)
        masks = dets.masks  # pasted with the same implementation
    return dets, masks


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


@pytest.mark.parametrize("impl", ["triton", "cpu"])
def test_model_matches_reference_kernels(segmenter, impl):
    image = random_image(np.random.default_rng(42), *SIZE)
    ref, ref_masks = detect(segmenter, image, "reference")
    ours, our_masks = detect(segmenter, image, impl)
    assert len(ref) > 0
    assert len(ours) == len(ref)
    np.testing.assert_array_equal(ours.labels, ref.labels)
    np.testing.assert_allclose(ours.boxes, ref.boxes, atol=1e-3, rtol=0)
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5, rtol=0)
    assert mask_ious(our_masks, ref_masks).min() >= 0.99


def test_switch_selects_all_three_ops():
    from maskrt.kernels import dispatch

    seen = []
    for op in ("roi_align", "nms", "paste"):
        K.register("probe", op, lambda *a, _op=op, **k: seen.append(_op))
    try:
        with K.use("probe"):
            K.roi_align(None), K.nms(None), K.paste(None)
    finally:
        dispatch._REGISTRY.pop("probe")
    assert seen == ["roi_align", "nms", "paste"]
    assert K.current() != "probe" and {"reference", "cpu", "triton"} <= set(K.available())
