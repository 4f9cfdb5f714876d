"""The TensorRT backend. UNVERIFIED ON A GPU: needs TensorRT and a CUDA GPU, which no machine of
this project has. What a CPU can check is checked (tests/tensorrt/test_backend.py): the
per-frame code runs on fake CUDA tensors (no hidden host sync, no CPU tensor mixed in, one
declared upload: the frame) and against a stand-in TensorRT runtime that records on which stream
every tensor is written and read; the graph it runs is verified on CPU
(tests/tensorrt/test_onnx_graph.py), the plugins' AOT kernels under TRITON_INTERPRET=1. The plan
stands alone (every plugin ahead of time): nothing is registered before deserialising it.

One image per execution (the plan's batch is 1). Everything of a frame runs in order on one
CUDA stream, `self.stream`: preprocessing and the input copies, execute_async_v3, the output
allocations TensorRT asks for, the fused mask paste (the Triton paste_id_map kernel, on the
device) and the copies back to the host, which wait for that stream. Only the detections, the
id map and the cropped masks come back (no full-size masks, no paste on the CPU). Every
TensorRT call that can fail is checked and reported as a one-line EngineError (a failed
enqueue would otherwise leave the previous frame's outputs in place).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from ..artifact import Manifest
from ..engine.backends.torch_backend import to_float_chw
from ..errors import EngineError
from ..kernels._triton import device_values, upload
from ..model import InputPolicy, RawDetections
from ..model.boxes import detectron2_rescale, scale_boxes
from ..model.network import drop_empty
from ..model.transform import batch_images, detectron2_normalized, preprocess
from .build import require_tensorrt

_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT64": torch.int64, "INT32": torch.int32,
                 "BOOL": torch.bool, "UINT8": torch.uint8}
OUTPUTS = ("boxes", "scores", "labels", "mask_probs")
ALIGNMENT = 256  # bytes; output allocations are rounded up to this (so a 0-byte output is a valid buffer too)
MASK_THRESHOLD = 0.5  # Detections' default: probability > 0.5 is foreground


def _output_allocator(trt, device: torch.device, stream):
    class OutputAllocator(trt.IOutputAllocator):
        """Grows a torch byte buffer per output, allocated on the stream TensorRT writes on;
        remembers the shapes TensorRT reports (cleared before each execution)."""

        def __init__(self):
            super().__init__()
            self.buffers: dict[str, torch.Tensor] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output_async(self, name, memory, size, alignment, stream_handle):
            buf = self.buffers.get(name)
            size = -(-max(int(size), 1) // ALIGNMENT) * ALIGNMENT
            if buf is None or buf.numel() < size:
                with _streams.stream(stream):
                    buf = torch.empty(size, dtype=torch.uint8, device=device)
                self.buffers[name] = buf
            return buf.data_ptr()

        def reallocate_output(self, name, memory, size, alignment):
            return self.reallocate_output_async(name, memory, size, alignment, None)

        def notify_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

    return OutputAllocator()


class _CudaStreams:
    """torch.cuda's stream API (a stand-in replaces it in the CPU tests)."""

    Stream = staticmethod(lambda device: torch.cuda.Stream(device=device))
    stream = staticmethod(torch.cuda.stream)


_streams = _CudaStreams()


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest, device: str = "cuda", warmup: bool = True):
        trt = require_tensorrt()
        if "model" not in manifest.stages:
            raise EngineError(f"{engine_dir} holds only ONNX (built with --onnx-only); build it on a GPU machine")
        self.device = torch.device(device)
        plan = Path(engine_dir) / manifest.stages["model"]
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT could not load {plan} (built by another TensorRT version or for another "
                              "GPU?); rebuild it with maskrt build on this machine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError(f"TensorRT could not create an execution context for {plan} (out of GPU memory?)")
        self.stream = _streams.Stream(self.device)
        self.allocator = _output_allocator(trt, self.device, self.stream)
        for name in OUTPUTS:
            self._check(self.context.set_output_allocator(name, self.allocator), f"set the allocator of {name}")
        self.dtypes = {n: _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name] for n in OUTPUTS}
        self.input_dtype = _TORCH_DTYPES[self.engine.get_tensor_dtype("images").name]
        self.policy = InputPolicy.from_manifest(manifest.input_policy)
        self.numerics = manifest.config.numerics  # "detectron2": its rescale, paste and dropped empty boxes
        self.detector = None  # thresholds are baked into the plan at build time
        self._lock = threading.Lock()  # one execution context: calls from several threads run one at a time
        if warmup:
            self.warm_up()

    def warm_up(self) -> None:
        """Compile the Triton paste kernels this backend launches after the plan (once per process;
        integer sizes are not specialized, so no later frame compiles), then run one blank frame.
        The plugins' kernels are in the plan already (ahead of time)."""
        from ..kernels.registry import OPS

        with _streams.stream(self.stream):
            OPS["paste"].warm_up(self.device, True, torch.float32)
        self.infer([np.zeros((self.policy.min_size, self.policy.min_size, 3), dtype=np.uint8)])

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        with self._lock:
            return [self._one(img) for img in images]

    def _one(self, image: np.ndarray) -> RawDetections:
        original = (image.shape[0], image.shape[1])
        with _streams.stream(self.stream):
            out, size = self.run_plan(image)
            boxes, instances = self.paste(out, size, original)
            # .cpu() copies on self.stream and waits for it: everything above is finished
            raw = RawDetections(boxes.cpu(), out["scores"].float().cpu(), out["labels"].cpu(),
                                out["mask_probs"].float().cpu(), original, instances=instances.cpu(),
                                paste_mode=self.numerics)
            return drop_empty(raw) if self.numerics == "detectron2" else raw

    def run_plan(self, image: np.ndarray) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
        """Preprocess and enqueue one image on the current stream (self.stream) -> (device views of
        the outputs, resized (h, w)). No host read; one upload, the frame."""
        if self.policy.resize == "detectron2":  # Pillow's resize, on the host; the normalised image is uploaded
            resized = upload(torch.from_numpy(detectron2_normalized(image, self.policy)), self.device, "frame")
            batch, sizes = batch_images([resized]), [tuple(resized.shape[-2:])]
        else:
            batch, sizes = preprocess([to_float_chw(image, self.device)], self.policy)
        batch = batch.to(self.input_dtype).contiguous()
        hw = device_values(sizes[0], torch.int64, self.device)  # no upload (a sync on a GPU)
        self._check(self.context.set_input_shape("images", tuple(batch.shape)),
                    f"accept an input of shape {tuple(batch.shape)}")
        self._check(self.context.set_tensor_address("images", batch.data_ptr()), "take the image buffer")
        self._check(self.context.set_tensor_address("image_hw", hw.data_ptr()), "take the image size buffer")
        self.allocator.shapes.clear()
        self._check(self.context.execute_async_v3(self.stream.cuda_stream), "run the engine on this frame")
        missing = [n for n in OUTPUTS if n not in self.allocator.shapes]
        if missing:
            raise EngineError(f"TensorRT reported no shape for output(s) {', '.join(missing)}")
        # batch and hw may be freed on return: the caching allocator hands their memory only to later
        # work on this stream, which runs after TensorRT has read them
        return {n: self._view(n) for n in OUTPUTS}, sizes[0]

    def paste(self, out: dict[str, torch.Tensor], size: tuple[int, int], original: tuple[int, int]):
        """Boxes in original-image pixels and the fused paste (id map + crops), on the device."""
        from ..kernels.paste.triton import paste_id_map

        if self.numerics == "detectron2":
            boxes = detectron2_rescale(out["boxes"].float(), size, original)
        else:
            boxes = scale_boxes(out["boxes"].float(), size, original)
        return boxes, paste_id_map(out["mask_probs"], boxes, original[0], original[1], MASK_THRESHOLD, out["scores"],
                                   mode=self.numerics)

    def _view(self, name: str) -> torch.Tensor:
        """The output `name` as a typed tensor of the reported shape (a view of the byte buffer)."""
        shape = self.allocator.shapes[name]
        dtype = self.dtypes[name]
        count = int(np.prod(shape)) if shape else 1
        nbytes = count * torch.empty((), dtype=dtype).element_size()
        return self.allocator.buffers[name][:nbytes].view(dtype).view(shape)

    @staticmethod
    def _check(ok, what: str) -> None:
        if not ok:
            raise EngineError(f"TensorRT could not {what} (see the TensorRT log above)")
