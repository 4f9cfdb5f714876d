"""Comparing two sets of detections of the same image on what float rounding cannot change.

Two correct implementations (torchvision vs maskrt, the CPU engine vs the torch backend) sum in
different orders, so their boxes, scores and 28x28 mask probabilities differ by rounding. Two
things then look like large differences although they are not:

- a thresholded mask pixel whose probability is within that rounding of the threshold flips
  (seeded random weights put most mask probabilities near 0.5);
- paste truncates the expanded box to integers (torchvision's `.to(int64)`): a box coordinate
  within `box_atol` of an integer may land one pixel over, which shifts the whole pasted mask.

So masks are compared where rounding cannot reach: the 28x28 probabilities within `prob_atol`;
the pasted masks pixel by pixel wherever the oracle's pasted probability is more than
`prob_atol` away from the threshold, for every instance whose integer paste box is the same on
both sides. Pasting is bilinear interpolation (non-negative weights summing to at most 1) on the
same integer grid, so it moves no probability by more than the largest 28x28 difference; those
pixels must then agree exactly. An instance whose integer box differs is accepted only if every
differing coordinate of the oracle's expanded box lies within the box tolerance of an integer
(the only way rounding can move a truncation), and it is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection.roi_heads import expand_boxes, paste_masks_in_image

# Rounding of the bilinear resize itself (a few float32 ulps of values <= 1).
PASTE_ROUNDING = 1e-6


@dataclass
class Expected:
    """The oracle's detections of one image: boxes float32 [N, 4] xyxy, scores [N], labels [N],
    mask_probs float32 [N, M, M] (each detection's own class), image_size (H, W)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray
    image_size: tuple[int, int]
    mask_threshold: float = 0.5

    @classmethod
    def of(cls, dets) -> "Expected":
        """From a maskrt Detections (e.g. the torch backend's)."""
        return cls(dets.boxes, dets.scores, dets.labels, dets.mask_probs, dets.image_size, dets.mask_threshold)


@dataclass
class Agreement:
    instances: int
    compared_pixels: int  # confident pixels compared exactly
    shifted: int  # instances whose integer paste box moved by rounding (not compared pixel by pixel)


def paste_boxes(boxes: np.ndarray, mask_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(float expanded boxes, their int64 truncation): torchvision's paste geometry, float32 [N, 4]."""
    expanded = expand_boxes(torch.from_numpy(np.ascontiguousarray(boxes, np.float32)), (mask_size + 2) / mask_size)
    return expanded.numpy(), expanded.to(torch.int64).numpy()


def oracle_probabilities(expected: Expected, i: int) -> np.ndarray:
    """float32 [H, W]: the oracle's mask i pasted by torchvision, before the threshold."""
    probs = torch.from_numpy(expected.mask_probs[i : i + 1, None].astype(np.float32))
    box = torch.from_numpy(expected.boxes[i : i + 1].astype(np.float32))
    return paste_masks_in_image(probs, box, expected.image_size, padding=1)[0, 0].numpy()


def assert_detections_agree(ours, expected: Expected, box_atol: float, score_atol: float,
                            prob_atol: float) -> Agreement:
    """Same count and labels, boxes within box_atol px, scores within score_atol, 28x28 mask
    probabilities within prob_atol, and pasted masks equal wherever rounding cannot decide them
    (module docstring). `ours` is a maskrt Detections. Returns what was compared."""
    n = len(expected.scores)
    assert len(ours) == n > 0, f"{len(ours)} detections, expected {n}"
    np.testing.assert_array_equal(ours.labels, expected.labels)
    np.testing.assert_allclose(ours.boxes, expected.boxes, atol=box_atol, rtol=0)
    np.testing.assert_allclose(ours.scores, expected.scores, atol=score_atol, rtol=0)
    np.testing.assert_allclose(ours.mask_probs, expected.mask_probs, atol=prob_atol, rtol=0)
    size = expected.mask_probs.shape[-1]
    ref_float, ref_int = paste_boxes(expected.boxes, size)
    _, our_int = paste_boxes(ours.boxes, size)
    # A box coordinate moved by <= box_atol moves an expanded one by <= box_atol * (M + 2) / M
    # (x_c -+ w_half * s: weights (1 + s) / 2 and (s - 1) / 2), plus float32 rounding of the
    # expansion (a few ulps of the coordinate).
    reach = box_atol * (size + 2) / size + 4 * np.spacing(np.abs(ref_float).astype(np.float32))
    compared, shifted, masks = 0, 0, ours.masks
    for i in range(n):
        if not np.array_equal(ref_int[i], our_int[i]):
            moved = ref_int[i] != our_int[i]
            distance = np.abs(ref_float[i] - np.round(ref_float[i]))[moved]
            assert (distance <= reach[i][moved]).all(), f"instance {i}: paste box {our_int[i]} vs {ref_int[i]}"
            shifted += 1
            continue
        probs = oracle_probabilities(expected, i)
        confident = np.abs(probs - expected.mask_threshold) > prob_atol + PASTE_ROUNDING
        want = probs > expected.mask_threshold
        wrong = int((masks[i][confident] != want[confident]).sum())
        assert wrong == 0, f"instance {i}: {wrong} confident mask pixels differ"
        compared += int(confident.sum())
    return Agreement(n, compared, shifted)


def torchvision_expected(model, image: np.ndarray) -> Expected:
    """Run a torchvision MaskRCNN (eval mode) on one uint8 RGB image; the 28x28 probabilities are
    taken from its RoI heads (before torchvision pastes them), in its detection order."""
    captured = {}  # copied in the hook: torchvision's postprocess then pastes the masks into the same dict
    hook = model.roi_heads.register_forward_hook(
        lambda _m, _i, out: captured.update(probs=out[0][0]["masks"][:, 0].numpy().copy()))
    try:
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        with torch.inference_mode():
            out = model([tensor])[0]
    finally:
        hook.remove()
    probs = captured["probs"]
    return Expected(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy(), probs, image.shape[:2])
