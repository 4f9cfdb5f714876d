"""The OpenVINO backend: the `cpu` engine's three compiled stages plus maskrt's CPU kernels between them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ...builders.manifest import Manifest
from ...model import DetectionParams, InputPolicy, RawDetections, RPNParams
from ...model.arch import ANCHOR_SIZES, ASPECT_RATIOS
from ...model.network import Detector
from .torch_backend import to_float_chw


def cell_anchors() -> list[torch.Tensor]:
    """torchvision's default anchors per level: Tensor[3, 4] centred at 0, rounded."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    return [a.float() for a in AnchorGenerator(ANCHOR_SIZES, (ASPECT_RATIOS,) * len(ANCHOR_SIZES)).cell_anchors]


class _Stage:
    """One compiled model; called with torch tensors, returns torch tensors (copied out of OpenVINO)."""

    def __init__(self, compiled, empty_outputs=None):
        self.request = compiled.create_infer_request()
        self.num_outputs = len(compiled.outputs)
        self.empty_outputs = empty_outputs

    def __call__(self, x: torch.Tensor):
        if x.shape[0] == 0 and self.empty_outputs is not None:
            return self.empty_outputs()
        self.request.infer([np.ascontiguousarray(x.numpy())])
        outs = tuple(torch.from_numpy(self.request.get_output_tensor(i).data.copy()) for i in range(self.num_outputs))
        return outs if self.num_outputs > 1 else outs[0]


class OpenVINOBackend:
    """Runs a `cpu`-target engine directory. Threads: OpenVINO and torch share `num_threads` cores."""

    name = "openvino"

    def __init__(self, engine_dir: str | Path, manifest: Manifest, num_threads: int | None = None):
        import openvino as ov

        self.engine_dir = Path(engine_dir)
        self.manifest = manifest
        threads = num_threads or os.cpu_count() or 1
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": self._precision_hint(ov.Core())}
        core = ov.Core()
        compiled = {s: core.compile_model(str(self.engine_dir / f), "CPU", config) for s, f in manifest.stages.items()}
        k = manifest.config.num_classes
        dense = _Stage(compiled["dense"])
        box = _Stage(compiled["box"], lambda: (torch.zeros(0, k), torch.zeros(0, 4 * k)))
        mask = _Stage(compiled["mask"])
        pol = manifest.input_policy
        policy = InputPolicy(pol["min_size"], pol["max_size"], tuple(pol["mean"]), tuple(pol["std"]))
        self.detector = Detector(dense, box, mask, cell_anchors(), manifest.config, policy,
                                 RPNParams(**manifest.thresholds["rpn"]),
                                 DetectionParams(**manifest.thresholds["detection"]))

    def _precision_hint(self, core) -> str:
        """fp32 engines run in f32 (exact parity); fp16 engines in bf16 where the CPU has it."""
        if self.manifest.precision == "fp16" and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return "bf16"
        return "f32"

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        return self.detector.detect([to_float_chw(img) for img in images])
