"""The TensorRT backend. UNVERIFIED HERE: needs TensorRT and a CUDA GPU, which no machine of
this project has. Thin on purpose: the graph it runs is verified on CPU (the plugin-node ONNX
under onnx.reference with our reference kernels, tests/builders/test_trt_onnx.py), the plugins
launch the Triton kernels tested under TRITON_INTERPRET=1, and pre/post-processing is shared
with the other backends; only the plan execution below is GPU-only.

One image per execution (the plan's batch is 1): execute_async_v3 on a torch CUDA stream,
torch tensors as I/O buffers (no pycuda); outputs whose length depends on the data (the
detections) are allocated through an IOutputAllocator.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from ...builders.manifest import Manifest
from ...builders.tensorrt_build import require_tensorrt
from ...errors import EngineError
from ...model import InputPolicy, RawDetections
from ...model.boxes import scale_boxes
from ...model.transform import preprocess
from .torch_backend import to_float_chw

_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT64": torch.int64, "INT32": torch.int32,
                 "BOOL": torch.bool, "UINT8": torch.uint8}


def _output_allocator(trt):
    class OutputAllocator(trt.IOutputAllocator):
        """Grows a torch CUDA byte buffer per output; remembers the shapes TensorRT reports."""

        def __init__(self):
            super().__init__()
            self.buffers: dict[str, torch.Tensor] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output_async(self, name, memory, size, alignment, stream):
            buf = self.buffers.get(name)
            if buf is None or buf.numel() < size:
                buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device="cuda")
                self.buffers[name] = buf
            return buf.data_ptr()

        def reallocate_output(self, name, memory, size, alignment):
            return self.reallocate_output_async(name, memory, size, alignment, None)

        def notify_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

    return OutputAllocator()


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest):
        trt = require_tensorrt()
        if "model" not in manifest.stages:
            raise EngineError(f"{engine_dir} holds only ONNX (built with --onnx-only); build it on a GPU machine")
        from ...kernels.trt_plugins import register_plugins

        register_plugins()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine((Path(engine_dir) / manifest.stages["model"]).read_bytes())
        self.context = self.engine.create_execution_context()
        self.allocator = _output_allocator(trt)
        self.outputs = ("boxes", "scores", "labels", "mask_probs")
        for name in self.outputs:
            self.context.set_output_allocator(name, self.allocator)
        self.dtypes = {n: _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name] for n in self.outputs}
        self.input_dtype = _TORCH_DTYPES[self.engine.get_tensor_dtype("images").name]
        pol = manifest.input_policy
        self.policy = InputPolicy(pol["min_size"], pol["max_size"], tuple(pol["mean"]), tuple(pol["std"]))
        self.stream = torch.cuda.Stream()
        self.detector = None  # thresholds are baked into the plan at build time
        self._lock = threading.Lock()  # one execution context: calls from several threads run one at a time

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        with self._lock:
            return [self._one(img) for img in images]

    def _one(self, image: np.ndarray) -> RawDetections:
        batch, sizes = preprocess([to_float_chw(image, "cuda")], self.policy)
        batch = batch.to(self.input_dtype).contiguous()
        hw = torch.tensor(sizes[0], dtype=torch.int64, device="cuda")
        self.context.set_input_shape("images", tuple(batch.shape))
        self.context.set_tensor_address("images", batch.data_ptr())
        self.context.set_tensor_address("image_hw", hw.data_ptr())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        out = {n: self._view(n) for n in self.outputs}
        original = (image.shape[0], image.shape[1])
        boxes = scale_boxes(out["boxes"].float().cpu(), sizes[0], original)
        return RawDetections(boxes, out["scores"].float().cpu(), out["labels"].cpu(),
                             out["mask_probs"].float().cpu(), original)

    def _view(self, name: str) -> torch.Tensor:
        shape = self.allocator.shapes[name]
        count = int(np.prod(shape)) if shape else 1
        dtype = self.dtypes[name]
        return self.allocator.buffers[name].view(dtype)[:count].view(shape)
