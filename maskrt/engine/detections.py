"""Detections: one image's instances, with masks kept at 28x28 until full-size masks are asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import kernels


@dataclass
class Detections:
    """Instances found in one image.

    boxes: float32 [N, 4] xyxy in input-image pixels; scores: float32 [N] sorted descending;
    labels: int64 [N] class ids of the checkpoint (names in `Segmenter.classes`);
    mask_probs: float32 [N, M, M] per-box mask probabilities (M = 28), pasted on demand.
    `masks` is bool [N, H, W] at the input image's size, computed once on first access.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray
    image_size: tuple[int, int]
    mask_threshold: float = 0.5
    _masks: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_tensors(cls, boxes, scores, labels, mask_probs, image_size, mask_threshold=0.5) -> "Detections":
        return cls(
            boxes=_np(boxes, np.float32).reshape(-1, 4),
            scores=_np(scores, np.float32).reshape(-1),
            labels=_np(labels, np.int64).reshape(-1),
            mask_probs=_np(mask_probs, np.float32),
            image_size=(int(image_size[0]), int(image_size[1])),
            mask_threshold=mask_threshold,
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def masks(self) -> np.ndarray:
        """bool [N, H, W]: each instance's mask pasted into the full image."""
        if self._masks is None:
            h, w = self.image_size
            pasted = kernels.paste(torch.from_numpy(self.mask_probs), torch.from_numpy(self.boxes), h, w,
                                   self.mask_threshold)
            self._masks = pasted.numpy().astype(bool, copy=False).reshape(len(self), h, w)
        return self._masks

    def filter(self, keep: np.ndarray) -> "Detections":
        """A new Detections with only the instances selected by a bool mask or index array."""
        sub = Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.mask_probs[keep],
                         self.image_size, self.mask_threshold)
        if self._masks is not None:
            sub._masks = self._masks[keep]
        return sub

    def above(self, score_threshold: float) -> "Detections":
        """Only the instances scoring at least `score_threshold`."""
        return self.filter(self.scores >= score_threshold)


def _np(value, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value, dtype=dtype))
