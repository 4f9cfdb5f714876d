"""The torch backend: maskrt's MaskRCNN in eager PyTorch (reference, CPU or Triton kernels)."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import torch

from ...kernels._triton import upload
from ...model import MaskRCNN, RawDetections


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
    """np.ndarray[H, W, 3] uint8 -> Tensor[3, H, W] float32 in [0, 1] (divided by 255)."""
    if not image.flags.writeable:  # e.g. PIL-backed arrays; torch.from_numpy needs writable memory
        image = image.copy()
    tensor = upload(torch.from_numpy(np.ascontiguousarray(image)), device, "frame")
    return tensor.permute(2, 0, 1).float().div_(255.0)
