"""The TensorRT backend. UNVERIFIED HERE: needs TensorRT and a CUDA GPU, which no machine of
this project has. Thin on purpose: the glue it runs (maskrt.model.network.Detector with the
Triton kernels) is tested on CPU; only the plan execution below is GPU-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...builders.manifest import Manifest
from ...builders.tensorrt_build import require_tensorrt
from ...errors import EngineError
from ...model import DetectionParams, InputPolicy, RawDetections, RPNParams
from ...model.network import Detector
from .openvino_backend import cell_anchors
from .torch_backend import to_float_chw


class _PlanStage:
    """One deserialized plan run with execute_async_v3 on a torch CUDA stream (torch tensors as buffers)."""

    def __init__(self, trt, runtime, plan: bytes):
        self.engine = runtime.deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]
        self.stream = torch.cuda.Stream()

    def __call__(self, x: torch.Tensor):
        x = x.contiguous()
        self.context.set_input_shape(self.inputs[0], tuple(x.shape))
        self.context.set_tensor_address(self.inputs[0], x.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=x.dtype, device=x.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return tuple(outs) if len(outs) > 1 else outs[0]


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest):
        trt = require_tensorrt()
        if not manifest.stages:
            raise EngineError(f"{engine_dir} holds only ONNX (built with --onnx-only); build it on a GPU machine")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        stages = {s: _PlanStage(trt, runtime, (Path(engine_dir) / f).read_bytes()) for s, f in manifest.stages.items()}
        pol = manifest.input_policy
        policy = InputPolicy(pol["min_size"], pol["max_size"], tuple(pol["mean"]), tuple(pol["std"]))
        self.detector = Detector(stages["dense"], stages["box"], stages["mask"], cell_anchors(), manifest.config,
                                 policy, RPNParams(**manifest.thresholds["rpn"]),
                                 DetectionParams(**manifest.thresholds["detection"]))
        self.device = torch.device("cuda")

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        return self.detector.detect([to_float_chw(img, self.device) for img in images])
