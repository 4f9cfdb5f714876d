"""Stand-ins for the `tensorrt` runtime and the CUDA runtime library that maskrt.tensorrt.plan_runner
uses, numpy only (so they also run in a python without torch). The engine checks what it is fed
against the tensors a Triton config declares (EXPECTED: plan sha256 -> {"inputs", "outputs"}:
name, datatype, dims) and answers with a few detections through TensorRT's output-allocator
protocol; device memory is host memory behind integer "pointers"."""

from __future__ import annotations

import hashlib
import types

import numpy as np

TYPES = {"FP32": ("FLOAT", np.float32), "FP16": ("HALF", np.float16), "INT64": ("INT64", np.int64),
         "UINT8": ("UINT8", np.uint8), "BOOL": ("BOOL", np.bool_)}
DETECTIONS = 3


class FakeCuda:
    def __init__(self):
        self.memory, self.next, self.uploads, self.downloads = {}, 4096, [], []

    def malloc(self, nbytes):
        ptr, self.next = self.next, self.next + max(nbytes, 1) + 4096
        self.memory[ptr] = bytearray(max(nbytes, 1))
        return ptr

    def free(self, ptr):
        del self.memory[ptr]

    def stream(self):
        return 77

    def upload(self, ptr, array, stream):
        assert stream == 77 and len(self.memory[ptr]) >= array.nbytes
        self.memory[ptr][:array.nbytes] = array.tobytes()
        self.uploads.append(array.shape)

    def download(self, array, ptr, stream):
        assert stream == 77
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(self.memory[ptr][:array.nbytes]), np.uint8)
        self.downloads.append(array.shape)

    def synchronize(self, stream):
        assert stream == 77


def module(expected: dict, cuda: FakeCuda):
    trt = types.ModuleType("tensorrt")
    trt.nptype = lambda dtype: {name: np_type for name, np_type in TYPES.values()}[dtype.name]
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.IOutputAllocator = type("IOutputAllocator", (), {})

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine(expected[hashlib.sha256(data).hexdigest()], cuda)

    trt.Runtime = Runtime
    return trt


class Engine:
    def __init__(self, io, cuda):
        self.io, self.cuda = io, cuda

    def get_tensor_dtype(self, name):
        datatype = {n: t for n, t, _ in self.io["inputs"] + self.io["outputs"]}[name]
        return types.SimpleNamespace(name=TYPES[datatype][0])

    def create_execution_context(self):
        return Context(self)


class Context:
    def __init__(self, engine):
        self.engine, self.allocators, self.shapes, self.addresses = engine, {}, {}, {}

    def set_output_allocator(self, name, allocator):
        assert name in [n for n, _, _ in self.engine.io["outputs"]]
        self.allocators[name] = allocator
        return True

    def set_input_shape(self, name, shape):
        dims = {n: d for n, _, d in self.engine.io["inputs"]}[name]
        ok = len(shape) == len(dims) and all(d in (-1, s) for d, s in zip(dims, shape))
        self.shapes[name] = tuple(shape)
        return ok

    def set_tensor_address(self, name, address):
        datatype = {n: t for n, t, _ in self.engine.io["inputs"]}[name]
        need = int(np.prod(self.shapes[name])) * np.dtype(TYPES[datatype][1]).itemsize
        assert len(self.engine.cuda.memory[address]) >= need
        self.addresses[name] = address
        return True

    def _input(self, name):
        datatype = {n: t for n, t, _ in self.engine.io["inputs"]}[name]
        raw = bytes(self.engine.cuda.memory[self.addresses[name]])
        count = int(np.prod(self.shapes[name]))
        return np.frombuffer(raw, TYPES[datatype][1], count).reshape(self.shapes[name])

    def execute_async_v3(self, stream):
        assert stream == 77 and set(self.addresses) == {n for n, _, _ in self.engine.io["inputs"]}
        names = [n for n, _, _ in self.engine.io["outputs"]]
        if "masks" in names:  # paste.plan: the masks at the original image's size
            h, w = self._input("image").shape[:2]
            n = self._input("boxes").shape[0]
            values = {"boxes_px": self._input("boxes") * 2, "masks": np.ones((n, h, w), np.bool_)}
        else:
            hw = self._input("image_hw")
            boxes = np.array([[1, 2, 10, 12]] * DETECTIONS, np.float32) + np.float32(hw.min() % 7)
            values = {"boxes": boxes, "scores": np.linspace(0.9, 0.5, DETECTIONS, dtype=np.float32),
                      "labels": np.arange(1, DETECTIONS + 1, dtype=np.int64),
                      "mask_probs": np.full((DETECTIONS, 28, 28), 0.75, np.float32)}
        for name in names:
            value = np.ascontiguousarray(values[name])
            ptr = self.allocators[name].reallocate_output_async(name, 0, value.nbytes, 256, stream)
            self.engine.cuda.memory[ptr][:value.nbytes] = value.tobytes()
            self.allocators[name].notify_shape(name, value.shape)
        return True
