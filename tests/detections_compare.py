"""Comparing two sets of detections of the same image on what float rounding cannot change.

Two correct implementations (torchvision vs maskrt, the CPU engine vs the torch backend) sum in
different orders, so their boxes, scores and 28x28 mask probabilities differ by rounding. Two
things then look like large differences although they are not:

- a box that moved by 1e-3 px moves every RoIAlign sample of its mask, and a seeded random
  network's features change by up to their own size within one feature pixel, so the mask
  probabilities of that box move far more than rounding alone would move them;
- paste truncates the expanded box to integers (torchvision's `.to(int64)`): a box coordinate
  within rounding of an integer may land one pixel over and shift the whole pasted mask (a
  28x6 px box: IoU 0.82 from a one-pixel shift), and thresholded pixels whose probability is
  within rounding of the threshold flip (seeded weights put many probabilities near 0.5).

So each quantity is compared at the same inputs. Boxes and scores are compared directly. The
masks are compared at OUR boxes: the oracle computes its own 28x28 probabilities for our boxes
and labels (`Expected.mask_probs_at`, its network's mask branch on its own features), those must
match ours within `prob_atol`, and our pasted masks must equal the oracle's probabilities
pasted by torchvision into the same boxes, thresholded, on every pixel farther than `prob_atol`
from the threshold. Paste is bilinear interpolation (non-negative weights summing to at most 1)
on the same integer grid, so it moves no probability by more than the largest 28x28
difference: those pixels cannot differ by rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

# Rounding of the bilinear resize itself (a few float32 ulps of values <= 1).
PASTE_ROUNDING = 1e-6

MaskProbsAt = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (boxes [N, 4], labels [N]) -> [N, M, M]


@dataclass
class Expected:
    """The oracle's detections of one image: boxes float32 [N, 4] xyxy in image pixels, scores
    [N], labels [N], image_size (H, W), and mask_probs_at(boxes, labels): the oracle's float32
    [N, M, M] mask probabilities (each box's own label) for any boxes of this image."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    image_size: tuple[int, int]
    mask_probs_at: MaskProbsAt
    mask_threshold: float = 0.5


@dataclass
class Found:
    """Detections from somewhere other than a maskrt Detections (e.g. an ONNX graph's outputs):
    boxes [N, 4] in image pixels, scores [N], labels [N], mask_probs [N, M, M], masks bool [N, H, W]."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Agreement:
    instances: int
    compared_pixels: int  # pasted pixels compared exactly (farther than prob_atol from the threshold)
    max_prob_difference: float


def assert_detections_agree(ours, expected: Expected, box_atol: float, score_atol: float,
                            prob_atol: float) -> Agreement:
    """Same count and labels, boxes within box_atol px, scores within score_atol; at our boxes,
    28x28 probabilities within prob_atol of the oracle's and pasted masks equal wherever rounding
    cannot decide them (module docstring). `ours` is a maskrt Detections."""
    n = len(expected.scores)
    assert len(ours) == n > 0, f"{len(ours)} detections, expected {n}"
    np.testing.assert_array_equal(ours.labels, expected.labels)
    np.testing.assert_allclose(ours.boxes, expected.boxes, atol=box_atol, rtol=0)
    np.testing.assert_allclose(ours.scores, expected.scores, atol=score_atol, rtol=0)
    want_probs = expected.mask_probs_at(ours.boxes, ours.labels)
    np.testing.assert_allclose(ours.mask_probs, want_probs, atol=prob_atol, rtol=0)
    pasted = paste_masks_in_image(torch.from_numpy(want_probs[:, None].astype(np.float32)),
                                  torch.from_numpy(ours.boxes.astype(np.float32)), expected.image_size, padding=1)
    compared, masks = 0, ours.masks
    for i in range(n):
        probs = pasted[i, 0].numpy()
        confident = np.abs(probs - expected.mask_threshold) > prob_atol + PASTE_ROUNDING
        want = probs > expected.mask_threshold
        wrong = int((masks[i][confident] != want[confident]).sum())
        assert wrong == 0, f"instance {i}: {wrong} mask pixels away from the threshold differ"
        compared += int(confident.sum())
    return Agreement(n, compared, float(np.abs(ours.mask_probs - want_probs).max()))


def _float_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def torchvision_expected(model, image: np.ndarray, device: torch.device | str = "cpu") -> Expected:
    """A torchvision MaskRCNN (eval mode, already on `device`) on one uint8 RGB image;
    mask_probs_at runs its mask branch (mask_roi_pool, mask_head, mask_predictor, sigmoid of each
    label) on its own features. Results come back as CPU arrays."""
    tensor = _float_chw(image).to(device)
    with torch.inference_mode():
        out = {k: v.cpu() for k, v in model([tensor])[0].items()}
        images, _ = model.transform([tensor])
        features = model.backbone(images.tensors)
    resized = images.image_sizes[0]

    def mask_probs_at(boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        from maskrt.model.boxes import scale_boxes

        # our boxes came from resized-image boxes scaled by float32 ratios; scaling back
        # reproduces them to ~1 ulp (~6e-5 px at 1000 px)
        rois = scale_boxes(torch.from_numpy(boxes), image.shape[:2], resized).to(device)
        with torch.inference_mode():
            pooled = model.roi_heads.mask_roi_pool(features, [rois], images.image_sizes)
            logits = model.roi_heads.mask_predictor(model.roi_heads.mask_head(pooled)).cpu()
        return logits[torch.arange(len(labels)), torch.from_numpy(labels)].sigmoid().numpy()

    return Expected(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy(), image.shape[:2],
                    mask_probs_at)


def maskrt_expected(segmenter, image: np.ndarray) -> Expected:
    """A maskrt Segmenter (e.g. the torch backend's) as the oracle: its detections of the image;
    mask_probs_at runs its own dense stage, RoIAlign and mask stage on given boxes."""
    from maskrt import kernels
    from maskrt.model.boxes import scale_boxes
    from maskrt.model.heads import infer_spatial_scales
    from maskrt.model.transform import preprocess

    impl = kernels.current()  # the oracle's mask branch runs with the kernels it detected with
    dets = segmenter(image)
    detector = segmenter.backend.detector
    with torch.inference_mode():
        batch, sizes = preprocess([_float_chw(image)], detector.policy)
        outputs = detector.dense(batch)
    features = [f.clone() for f in outputs[:-2 * detector.num_rpn_levels]]
    scales = infer_spatial_scales(features, sizes)

    def mask_probs_at(boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        rois = scale_boxes(torch.from_numpy(boxes), image.shape[:2], sizes[0])
        with torch.inference_mode(), kernels.use(impl):
            probs = detector.heads._masks(features, [rois], [torch.from_numpy(labels)], scales)[0]
        return probs.numpy()

    return Expected(dets.boxes, dets.scores, dets.labels, dets.image_size, mask_probs_at, dets.mask_threshold)
