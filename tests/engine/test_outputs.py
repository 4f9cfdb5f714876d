"""RLE from the fused paste's crops == pycocotools' encoding of the full masks (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskrt.engine.outputs import crop_rle, instances_json
from tests.engine.test_detections import make


def full_mask_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


@pytest.mark.parametrize("region", [(0, 0, 80, 60), (0, 0, 5, 7), (75, 55, 80, 60), (10, 20, 11, 21),
                                    (30, 0, 50, 60), (0, 30, 80, 40), (12, 7, 45, 33)])
@pytest.mark.parametrize("fill", ["random", "ones", "zeros", "corners"])
def test_crop_rle_equals_pycocotools_on_the_full_mask(region, fill):
    x0, y0, x1, y1 = region
    rng = np.random.default_rng(x0 * 100 + y1)
    shape = (y1 - y0, x1 - x0)
    crop = {"random": rng.random(shape) > 0.5, "ones": np.ones(shape, bool), "zeros": np.zeros(shape, bool),
            "corners": np.zeros(shape, bool)}[fill]
    if fill == "corners":
        crop[0, 0] = crop[-1, -1] = True
    full = np.zeros((60, 80), bool)
    full[y0:y1, x0:x1] = crop
    assert crop_rle(crop, region, 60, 80) == full_mask_rle(full)


def test_crop_rle_of_an_empty_region():
    assert crop_rle(np.zeros((0, 4), bool), (3, 5, 7, 5), 60, 80) == full_mask_rle(np.zeros((60, 80), bool))


def test_instances_json_masks_decode_to_the_full_masks():
    dets = make(n=6, seed=2)
    records = instances_json(dets)
    decoded = mask_utils.decode([r["segmentation"] for r in records]).transpose(2, 0, 1)
    np.testing.assert_array_equal(decoded.astype(bool), dets.masks)


def test_given_full_masks_are_encoded_as_given():
    dets = make(n=3, seed=1)
    dets._masks = np.zeros((3, 60, 80), bool)
    dets._masks[1, 10:20, 5:9] = True
    decoded = mask_utils.decode([r["segmentation"] for r in instances_json(dets)]).transpose(2, 0, 1)
    np.testing.assert_array_equal(decoded.astype(bool), dets._masks)
