"""The torch backend: maskrt's MaskRCNN in eager PyTorch (reference, CPU or Triton kernels)."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import torch

from ...kernels._triton import upload
from ...model import MaskRCNN, RawDetections
from ...model.transform import to_float


class TorchBackend:
    """Runs the eager model. Images are np.ndarray[H, W, 3] uint8 RGB, scaled to [0, 1] floats.
    Calls from several threads run one at a time (a lock), like the other backends."""

    name = "torch"

    def __init__(self, model: MaskRCNN, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.detector = model.detector
        if self.device.type == "cuda" and importlib.util.find_spec("triton") is not None:
            from ...kernels.warmup import warm_up

            warm_up(self.device)  # compile the Triton kernels now, not during the first frames
        self._lock = threading.Lock()

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        tensors = [to_float_chw(img, self.device) for img in images]
        with self._lock:
            return self.model.detect(tensors)


def to_float_chw(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """np.ndarray[H, W, 3] uint8 -> Tensor[3, H, W] float32 in [0, 1] (divided by 255: transform.to_float);
    the frame goes to `device` as it is laid out (one contiguous upload), then is converted there."""
    return to_float(upload(_hwc_tensor(image), device, "frame").permute(2, 0, 1))


def uint8_chw(image: np.ndarray) -> torch.Tensor:
    """np.ndarray[H, W, 3] uint8 -> its Tensor[3, H, W] uint8 view (channels-last strides). The
    model's preprocessing takes it as value / 255 (transform.preprocess)."""
    return _hwc_tensor(image).permute(2, 0, 1)


def _hwc_tensor(image: np.ndarray) -> torch.Tensor:
    """The frame as a Tensor[H, W, 3] uint8, sharing its memory (a copy only when not contiguous or
    not writable, e.g. PIL-backed arrays: torch.from_numpy needs writable memory)."""
    if not image.flags.writeable:
        image = image.copy()
    return torch.from_numpy(np.ascontiguousarray(image))
