"""Detections: lazy full-size masks equal torchvision's paste; filtering keeps fields aligned."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from maskrt.engine import Detections


def make(n=5, size=(60, 80), seed=0) -> Detections:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([70.0, 50.0])
    wh = torch.rand(n, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.sort(torch.rand(n, generator=g), descending=True).values
    probs = torch.rand(n, 28, 28, generator=g)
    return Detections.from_tensors(boxes, scores, torch.arange(n), probs, size)


def test_masks_equal_torchvision_paste():
    dets = make()
    expected = paste_masks_in_image(torch.from_numpy(dets.mask_probs)[:, None], torch.from_numpy(dets.boxes),
                                    dets.image_size)[:, 0].numpy() > 0.5
    assert dets.masks.dtype == bool and dets.masks.shape == (5, 60, 80)
    np.testing.assert_array_equal(dets.masks, expected)


def test_filter_keeps_fields_aligned():
    dets = make()
    full = dets.masks.copy()
    top = dets.above(float(dets.scores[2]))
    assert len(top) == 3
    np.testing.assert_array_equal(top.boxes, dets.boxes[:3])
    np.testing.assert_array_equal(top.masks, full[:3])


def test_empty():
    dets = Detections.from_tensors(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                                   torch.zeros(0, 28, 28), (10, 12))
    assert len(dets) == 0 and dets.masks.shape == (0, 10, 12)


def test_boxes_cut_by_the_border_and_outside_the_image():
    boxes = torch.tensor([[-10.0, -5.0, 30.0, 20.0], [60.0, 40.0, 95.0, 70.0], [100.0, 100.0, 120.0, 130.0]])
    probs = torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(3))
    dets = Detections.from_tensors(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.arange(3), probs, (60, 80))
    # torchvision's paste fails on a box wholly outside the image (negative slice); oracle for the others
    expected = paste_masks_in_image(probs[:2, None], boxes[:2], (60, 80))[:, 0].numpy() > 0.5
    np.testing.assert_array_equal(dets.masks[:2], expected)
    assert dets.masks[0].any() and not dets.masks[2].any()


def test_id_map_puts_the_highest_score_on_top():
    dets = make(n=8, seed=4)
    masks, ids = dets.masks, dets.instances.id_map.numpy()
    covered = masks.any(0)
    np.testing.assert_array_equal(ids >= 0, covered)
    top = np.argmax(masks, axis=0)  # scores are sorted descending: the first covering instance wins
    np.testing.assert_array_equal(ids[covered], top[covered])
