"""Detections: one image's instances, with masks kept at 28x28 until full-size masks are asked for."""

from __future__ import annotations

import dataclasses
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
    `instances` is the fused paste (kernels.paste_id_map): an instance-id map [H, W] (highest
    score on top) and each instance's mask cropped to its box, computed once on first access;
    rendering and RLE encoding use it and never hold N full-size masks. `masks` is bool
    [N, H, W] at the input image's size, built from those crops on first access.
    paste_mode: "torchvision" (probability > mask_threshold) or "detectron2" (its own paste,
    probability >= mask_threshold): the model's numerics (maskrt.kernels.paste).

    With tracking (maskrt.engine.stream.tracking), track_ids: int64 [N], each instance's track
    id (ids start at 1; -1 for a detection not matched to a confirmed track), and propagated:
    bool [N], True for an instance the tracker carried onto a frame the engine skipped (its box
    predicted, its last mask moved and scaled with it). Both None without tracking.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray
    image_size: tuple[int, int]
    mask_threshold: float = 0.5  # probability > threshold is foreground; must be >= 0
    paste_mode: str = "torchvision"
    track_ids: np.ndarray | None = None
    propagated: np.ndarray | None = None
    _masks: np.ndarray | None = field(default=None, repr=False)
    _instances: kernels.PastedInstances | None = field(default=None, repr=False)

    @classmethod
    def from_tensors(cls, boxes, scores, labels, mask_probs, image_size, mask_threshold=0.5,
                     instances: kernels.PastedInstances | None = None, paste_mode: str = "torchvision") -> "Detections":
        """instances: the fused paste of these masks at image_size and mask_threshold, if a backend
        already made it (on the host)."""
        return cls(
            boxes=_np(boxes, np.float32).reshape(-1, 4),
            scores=_np(scores, np.float32).reshape(-1),
            labels=_np(labels, np.int64).reshape(-1),
            mask_probs=_np(mask_probs, np.float32),
            image_size=(int(image_size[0]), int(image_size[1])),
            mask_threshold=mask_threshold,
            paste_mode=paste_mode,
            _instances=instances,
        )

    @classmethod
    def from_raw(cls, raw) -> "Detections":
        """From a backend's RawDetections (its paste too, when it made one: threshold 0.5)."""
        return cls.from_tensors(raw.boxes, raw.scores, raw.labels, raw.mask_probs, raw.image_size,
                                instances=getattr(raw, "instances", None),
                                paste_mode=getattr(raw, "paste_mode", "torchvision"))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def instances(self) -> kernels.PastedInstances:
        """The fused paste: id_map Tensor[H, W] int32 (-1 background, else the index of the
        highest-scoring instance covering the pixel) and crop(i), instance i's own mask inside
        its clipped integer box regions[i] (x0, y0, x1, y1)."""
        if self._instances is None:
            h, w = self.image_size
            self._instances = kernels.paste_id_map(torch.from_numpy(self.mask_probs), torch.from_numpy(self.boxes),
                                                   h, w, self.mask_threshold, torch.from_numpy(self.scores),
                                                   mode=self.paste_mode)
        return self._instances

    @property
    def has_full_masks(self) -> bool:
        """True once `masks` exists (computed, or given when the Detections was made)."""
        return self._masks is not None

    @property
    def masks(self) -> np.ndarray:
        """bool [N, H, W]: each instance's mask pasted into the full image (the crops of
        `instances` placed in a zeroed array: paste is zero outside an instance's region)."""
        if self._masks is None:
            self._masks = self.instances.full_masks().numpy()
        return self._masks

    def filter(self, keep: np.ndarray) -> "Detections":
        """A new Detections with only the instances selected by a bool mask or index array."""
        sub = Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.mask_probs[keep],
                         self.image_size, self.mask_threshold, self.paste_mode,
                         None if self.track_ids is None else self.track_ids[keep],
                         None if self.propagated is None else self.propagated[keep])
        if self._masks is not None:
            sub._masks = self._masks[keep]
        if self._instances is not None:
            selected = np.zeros(len(self), dtype=np.bool_)
            selected[keep] = True
            k = int(selected.sum())
            if selected[:k].all():  # a prefix (above(): scores are sorted): the paste carries over
                sub._instances = self._instances.prefix(k)
        return sub

    def with_tracks(self, track_ids: np.ndarray, propagated: np.ndarray | None = None) -> "Detections":
        """The same instances (sharing their arrays and paste) with track ids int64 [N] and the
        propagated flags bool [N] (None: all False)."""
        n = len(self)
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        flags = np.zeros(n, np.bool_) if propagated is None else np.asarray(propagated, dtype=np.bool_).reshape(-1)
        if ids.shape != (n,) or flags.shape != (n,):
            raise ValueError(f"{n} detections but {ids.shape[0]} track ids and {flags.shape[0]} propagated flags")
        return dataclasses.replace(self, track_ids=ids, propagated=flags)

    def above(self, min_score: float) -> "Detections":
        """Only the instances scoring at least `min_score`."""
        return self.filter(self.scores >= min_score)


def _np(value, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value, dtype=dtype))
