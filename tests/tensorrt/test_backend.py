"""The TensorRT backend against a stand-in TensorRT runtime, without a GPU.

The stand-in records, for every tensor written and read, the stream that was current (a
stand-in for torch.cuda's stream API; a torch dispatch mode sees every op, the Triton launches
are logged too) and checks at execute_async_v3 that the inputs were written on the stream the
enqueue runs on. Errors: a plan TensorRT cannot load, a rejected input shape, a failed enqueue
each raise one EngineError; a frame with no detections (0-byte outputs) works. The per-frame
code also runs on fake CUDA tensors (maskrt.gpu_verify.fake_cuda): no CPU tensor mixed in, no
host read but the final copies and the fused paste's one size read, one upload (the frame). The
stand-in also reports output buffers allocated on another stream than the enqueue's, and
refuses a tensor address when told to (the backend must not ignore it).
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # the fused paste runs on CPU tensors (before triton is imported)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from maskrt.artifact import Manifest  # noqa: E402
from maskrt.tensorrt import backend as tb  # noqa: E402
from maskrt.engine.detections import Detections  # noqa: E402
from maskrt.errors import EngineError  # noqa: E402
from maskrt.kernels.paste.cpu import paste_id_map as cpu_paste_id_map  # noqa: E402
from maskrt.model.arch import ArchConfig  # noqa: E402
from maskrt.model.boxes import scale_boxes  # noqa: E402

POLICY = {"min_size": 64, "max_size": 96, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def storage(tensor) -> int:
    """Address of a tensor's storage (0 for fake tensors, which have none)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return 0


class Stream:
    def __init__(self, log, name, handle):
        self.log, self.name, self.cuda_stream = log, name, handle

    def synchronize(self):
        self.log.syncs.append(self.name)


class StreamLog(TorchDispatchMode):
    """Stand-in torch.cuda stream API + which stream wrote each storage and which read it."""

    def __init__(self):
        super().__init__()
        self.syncs, self.reads, self.writer = [], [], {}
        self.default = Stream(self, "default", 0)
        self.current = self.default
        self.created = []

    # the API the backend uses (tensorrt_backend._streams)
    def Stream(self, device):  # noqa: N802
        s = Stream(self, f"stream{len(self.created) + 1}", 1000 + len(self.created))
        self.created.append(s)
        return s

    @contextlib.contextmanager
    def stream(self, s):
        previous, self.current = self.current, s
        try:
            yield
        finally:
            self.current = previous

    def write(self, tensor, stream=None):
        self.writer[storage(tensor)] = (stream or self.current).name

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = torch.utils._pytree.tree_leaves((args, kwargs))
        for t in flat:
            if isinstance(t, torch.Tensor) and t.numel():
                self.reads.append((self.current.name, storage(t)))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and func.overloadpacket.__name__ not in ("view", "_unsafe_view", "slice",
                                                                                   "alias", "detach", "t"):
                self.write(t)
        return out


class Dtype:
    def __init__(self, name):
        self.name = name


def fake_tensorrt(log: StreamLog, detections: list, fail: set):
    """tensorrt stand-in: one engine whose execution 'writes' detections[k] on frame k."""

    class IOutputAllocator:
        def __init__(self):
            pass

    class Context:
        def __init__(self):
            self.addresses, self.allocators, self.frame, self.enqueued, self.problems = {}, {}, 0, [], []

        def set_output_allocator(self, name, allocator):
            self.allocators[name] = allocator
            return True

        def set_input_shape(self, name, shape):
            return "shape" not in fail

        def set_tensor_address(self, name, address):
            if "address" in fail:
                return False  # rejected: the enqueue would read the previous frame's buffer
            self.addresses[name] = address
            return True

        def execute_async_v3(self, handle):
            stream = next(s for s in log.created if s.cuda_stream == handle)
            self.enqueued.append({n: log.writer.get(a) for n, a in self.addresses.items()} | {"on": stream.name})
            if "enqueue" in fail and self.frame > 0:
                return False
            outputs = detections[min(self.frame, len(detections) - 1)]
            for name, value in outputs.items():
                alloc = self.allocators[name]
                ptr = alloc.reallocate_output_async(name, 0, value.numel() * value.element_size(), 256, handle)
                buf = alloc.buffers[name]
                assert buf.data_ptr() == ptr
                if log.writer.get(storage(buf)) not in (stream.name, None):  # None: a fake tensor (no storage)
                    self.problems.append(f"{name} allocated on {log.writer.get(storage(buf))}, written on "
                                         f"{stream.name}")
                buf[: value.numel() * value.element_size()].copy_(value.reshape(-1).view(torch.uint8))
                log.write(buf, stream)  # the GPU writes the outputs on the enqueue's stream
                alloc.notify_shape(name, tuple(value.shape))
            self.frame += 1
            return True

    class Engine:
        def get_tensor_dtype(self, name):
            return Dtype({"labels": "INT64"}.get(name, "FLOAT"))

        def create_execution_context(self):
            self.context = Context()
            return self.context

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return None if "load" in fail else Engine()

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    return type("trt", (), {"IOutputAllocator": IOutputAllocator, "Runtime": Runtime, "Logger": Logger})


def detections(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    return {"boxes": torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], 1),
            "scores": torch.rand(n, generator=g).sort(descending=True)[0], "labels": torch.randint(1, 5, (n,)),
            "mask_probs": torch.rand(n, 28, 28, generator=g)}


@pytest.fixture
def make_backend(tmp_path, monkeypatch):
    (tmp_path / "model.plan").write_bytes(b"plan")
    config = ArchConfig(18, 64, 5, "frozen", False, 1, "mlp", (), 128, False, (64, 64), False, 64)
    manifest = Manifest("tensorrt", "fp32", ["a", "b", "c", "d"], config, POLICY, {}, stages={"model": "model.plan"})

    def make(frames, fail=(), device="cpu"):
        log = StreamLog()
        monkeypatch.setattr(tb, "require_tensorrt", lambda: fake_tensorrt(log, frames, set(fail)))
        monkeypatch.setattr(tb, "_streams", log)
        return tb.TensorRTBackend(tmp_path, manifest, device=device, warmup=False), log

    return make


def image(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)


def test_inputs_outputs_and_paste_on_the_engine_stream(make_backend):
    """Defect 2: preprocessing, the image-size tensor and the output allocations were on torch's
    current stream while TensorRT ran on another one; defect 10: masks were pasted on the host."""
    frames = [detections(7)]
    backend, log = make_backend(frames)
    with log:
        [raw] = backend.infer([image()])
    [trt_stream] = log.created
    [enqueue] = backend.context.enqueued
    assert enqueue == {"images": trt_stream.name, "image_hw": trt_stream.name, "on": trt_stream.name}
    outputs = {storage(b) for b in backend.allocator.buffers.values()}
    assert {stream for stream, ptr in log.reads if ptr in outputs} == {trt_stream.name}
    assert backend.context.problems == []
    want = {k: v for k, v in frames[0].items()}
    resized = (64, 85)  # InputPolicy(64, 96): 60 x 80 -> 64 x 85
    torch.testing.assert_close(raw.boxes, scale_boxes(want["boxes"], resized, (60, 80)), rtol=0, atol=0)
    ref = cpu_paste_id_map(want["mask_probs"], raw.boxes, 60, 80, 0.5, want["scores"])
    assert raw.instances is not None and torch.equal(raw.instances.id_map, ref.id_map)
    assert torch.equal(raw.instances.packed, ref.packed) and torch.equal(raw.instances.regions, ref.regions)
    dets = Detections.from_raw(raw)
    assert dets._instances is raw.instances  # no second paste on the host
    assert dets.above(float(want["scores"][3]))._instances.regions.shape[0] == 4


def test_stand_in_catches_outputs_allocated_on_another_stream(make_backend, monkeypatch):
    """The check above is not vacuous: an allocator that allocates on another stream than the one
    TensorRT writes on (torch's default one, as before defect 2 was fixed) is reported."""
    backend, log = make_backend([detections(3)])

    def on_default_stream(name, memory, size, alignment, stream):
        with log.stream(log.default):
            backend.allocator.buffers[name] = torch.empty(max(int(size), 1) + 256, dtype=torch.uint8)
        return backend.allocator.buffers[name].data_ptr()

    monkeypatch.setattr(backend.allocator, "reallocate_output_async", on_default_stream)
    with log:
        backend.infer([image()])
    assert len(backend.context.problems) == 4 and "allocated on default" in backend.context.problems[0]


def test_failed_enqueue_raises_instead_of_returning_the_last_frame(make_backend):
    """Defect 3: execute_async_v3's result was ignored: the allocator still held frame 1's outputs."""
    backend, log = make_backend([detections(5, 0), detections(3, 1)], fail={"enqueue"})
    with log:
        backend.infer([image(0)])
        with pytest.raises(EngineError, match="could not run the engine"):
            backend.infer([image(1)])


@pytest.mark.parametrize("fail,message", [("load", "could not load"), ("shape", "accept an input of shape"),
                                          ("address", "take the image buffer")])
def test_tensorrt_failures_are_one_line_errors(make_backend, fail, message):
    with pytest.raises(EngineError, match=message):
        backend, log = make_backend([detections(2)], fail={fail})
        with log:
            backend.infer([image()])


def test_frame_without_detections(make_backend):
    """Defect 4: a 0-byte output got a 1-byte buffer, and viewing it as float32 raised."""
    backend, log = make_backend([detections(0)])
    with log:
        [raw] = backend.infer([image()])
    assert raw.boxes.shape == (0, 4) and raw.mask_probs.shape == (0, 28, 28)
    assert raw.instances.id_map.shape == (60, 80) and bool((raw.instances.id_map == -1).all())


@pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor:UserWarning")
def test_per_frame_code_on_fake_cuda_tensors(make_backend):
    """The frame's device work on fake CUDA tensors: no CPU tensor mixed in, no host read but the
    fused paste's size read; then the whole frame, whose only host copies are the results."""
    from maskrt.gpu_verify.fake_cuda import fake_cuda

    with fake_cuda() as run:
        with run.setup():  # the stand-in engine's outputs
            frames = [{k: v.to("cuda") for k, v in detections(4).items()}]
        backend, log = make_backend(frames, device="cuda")
        with log:
            out, size = backend.run_plan(image())
            boxes, instances = backend.paste(out, size, (60, 80))
    assert boxes.device.type == "cuda" and instances.id_map.device.type == "cuda"
    assert run.kernels() == ["paste_kernel"] and [w for w, _ in run.host_reads] == ["packed crop length"]
    assert run.uploads == [("frame", (60, 80, 3))]  # the image size and the normalisation: no upload
    with fake_cuda(allow_host_copies=True) as run:
        with run.setup():
            frames = [{k: v.to("cuda") for k, v in detections(4).items()}]
        backend, log = make_backend(frames, device="cuda")
        with log:
            raw = backend.infer([image()])[0]
    assert raw.boxes.device.type == "cpu" and raw.instances.id_map.device.type == "cpu"
