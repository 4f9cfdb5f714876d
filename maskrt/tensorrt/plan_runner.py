"""Run maskrt's TensorRT plans without torch: tensorrt, numpy and the CUDA runtime library (ctypes).

The plan-only run path: what Triton Inference Server runs, from the same files - a model
repository written by `maskrt export --triton-repo` (maskrt_input.json, maskrt/1/model.plan,
maskrt_paste/1/model.plan) - with the same input contract and preprocessing as its client
(triton_client.py). The plans stand alone (every plugin ahead of time), so nothing of maskrt's
kernels, torch or triton is loaded: a process running plans this way never imports torch
(tests/tensorrt/test_plan_runner.py runs it in a python without torch, with stand-ins for
tensorrt and the CUDA runtime). GPU ONLY, UNVERIFIED HERE: the real libraries' behaviour.

    python -m maskrt.tensorrt.plan_runner REPO IMAGE.npy [--masks]   # JSON lines, like client.py
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from pathlib import Path

import numpy as np

from . import triton_client

H2D, D2H = 1, 2  # cudaMemcpyKind


class CudaRuntime:
    """The few libcudart calls a plan needs (what polygraphy's cuda wrapper does, smaller)."""

    def __init__(self, library: str | None = None):
        name = library or ctypes.util.find_library("cudart") or "libcudart.so"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise RuntimeError(f"the CUDA runtime library ({name}) could not be loaded: {exc}") from None

    def _call(self, what: str, *args) -> None:
        status = getattr(self.lib, what)(*args)
        if status != 0:
            raise RuntimeError(f"{what} failed with CUDA error {status}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._call("cudaMalloc", ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1)))
        return ptr.value

    def free(self, ptr: int) -> None:
        self._call("cudaFree", ctypes.c_void_p(ptr))

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self._call("cudaStreamCreate", ctypes.byref(handle))
        return handle.value or 0

    def upload(self, ptr: int, array: np.ndarray, stream: int) -> None:
        self._call("cudaMemcpyAsync", ctypes.c_void_p(ptr), array.ctypes.data_as(ctypes.c_void_p),
                   ctypes.c_size_t(array.nbytes), H2D, ctypes.c_void_p(stream))

    def download(self, array: np.ndarray, ptr: int, stream: int) -> None:
        self._call("cudaMemcpyAsync", array.ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(ptr),
                   ctypes.c_size_t(array.nbytes), D2H, ctypes.c_void_p(stream))

    def synchronize(self, stream: int) -> None:
        self._call("cudaStreamSynchronize", ctypes.c_void_p(stream))


class Plan:
    """One deserialised plan with device buffers for its inputs and (grown as TensorRT asks) outputs."""

    def __init__(self, trt, cuda, path: Path, io: tuple[list, list]):
        self.trt, self.cuda, self.io = trt, cuda, io
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {path} (built by another TensorRT version or for "
                               "another GPU?)")
        self.context = self.engine.create_execution_context()
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.shapes: dict[str, tuple] = {}
        self.allocator = self._allocator()
        for name, _, _ in io[1]:
            self._check(self.context.set_output_allocator(name, self.allocator), f"set the allocator of {name}")

    def _allocator(self):
        plan = self

        class Allocator(self.trt.IOutputAllocator):
            def reallocate_output_async(self, name, memory, size, alignment, stream):
                return plan._buffer(name, int(size))

            def reallocate_output(self, name, memory, size, alignment):
                return plan._buffer(name, int(size))

            def notify_shape(self, name, shape):
                plan.shapes[name] = tuple(shape)

        return Allocator()

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, -1))
        if size < nbytes:
            if ptr:
                self.cuda.free(ptr)
            ptr, size = self.cuda.malloc(nbytes), max(nbytes, 1)
            self.buffers[name] = (ptr, size)
        return ptr

    def run(self, arrays: dict[str, np.ndarray], stream: int) -> dict[str, np.ndarray]:
        for name, _, _ in self.io[0]:
            array = np.ascontiguousarray(arrays[name])
            ptr = self._buffer(name, array.nbytes)
            self.cuda.upload(ptr, array, stream)
            self._check(self.context.set_input_shape(name, array.shape), f"accept {name} of shape {array.shape}")
            self._check(self.context.set_tensor_address(name, ptr), f"take the buffer of {name}")
        self.shapes.clear()
        self._check(self.context.execute_async_v3(stream), "run the plan")
        self.cuda.synchronize(stream)  # the output shapes are known once it ran
        out = {}
        for name, _, _ in self.io[1]:
            out[name] = np.empty(self.shapes[name], dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))
            if out[name].nbytes:
                self.cuda.download(out[name], self.buffers[name][0], stream)
        self.cuda.synchronize(stream)
        return out

    @staticmethod
    def _check(ok, what: str) -> None:
        if not ok:
            raise RuntimeError(f"TensorRT could not {what}")


class PlanRunner:
    """The plans of a model repository (`maskrt export --triton-repo`), run on one CUDA stream."""

    def __init__(self, repo: str | Path, trt=None, cuda=None):
        if trt is None:
            import tensorrt as trt
        self.repo = Path(repo)
        self.settings = json.loads((self.repo / triton_client.SETTINGS).read_text())
        self.cuda = cuda or CudaRuntime()
        self.stream = self.cuda.stream()
        self.model = Plan(trt, self.cuda, self.repo / triton_client.MODEL / "1" / "model.plan",
                          triton_client.model_io(self.settings["precision"]))
        paste = self.repo / triton_client.PASTE_MODEL / "1" / "model.plan"
        self.paste = Plan(trt, self.cuda, paste, triton_client.paste_io()) if paste.is_file() else None

    def __call__(self, image: np.ndarray, masks: bool = False) -> dict[str, np.ndarray]:
        """uint8 [H, W, 3] RGB -> the model's outputs (and paste's with masks=True), numpy arrays."""
        arrays = triton_client.requests(image, self.settings)
        found = self.model.run(arrays, self.stream)
        if masks and self.paste is not None:
            found.update(self.paste.run(triton_client.paste_requests(found, arrays["image_hw"], image), self.stream))
        found["image_hw"] = arrays["image_hw"]
        return found


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m maskrt.tensorrt.plan_runner", description=__doc__.splitlines()[0])
    parser.add_argument("repo", help="a model repository written by maskrt export --triton-repo")
    parser.add_argument("image", help="a .npy array [H, W, 3] uint8")
    parser.add_argument("--masks", action="store_true", help="also run the paste plan")
    args = parser.parse_args(argv)
    runner = PlanRunner(args.repo)
    image = np.load(args.image)
    found = runner(image, masks=args.masks)
    hw = found["image_hw"]
    for line in triton_client.detections_jsonl(found, runner.settings["classes"],
                                               (image.shape[0] / hw[0], image.shape[1] / hw[1])):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
