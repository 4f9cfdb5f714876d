"""The TensorRT backend with a detectron2 engine, against the stand-in TensorRT runtime of
test_backend.py: detectron2's input (Pillow resize on the host, then uploaded), its rescale and
clip, its paste on the device (the detectron2 paste kernel), and the detections whose box is
empty in the original image dropped as detectron2 drops them; on fake CUDA tensors no host read
but the fused paste's size read."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import dataclasses  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from maskrt.artifact import Manifest  # noqa: E402
from maskrt.kernels.paste.cpu import paste_id_map as cpu_paste_id_map  # noqa: E402
from maskrt.model.arch import ArchConfig  # noqa: E402
from maskrt.model.boxes import detectron2_rescale  # noqa: E402
from maskrt.tensorrt import backend as tb  # noqa: E402
from tests.tensorrt.test_backend import StreamLog, detections, fake_tensorrt, image  # noqa: E402

POLICY = {"min_size": 64, "max_size": 96, "mean": [103.53, 116.28, 123.675], "std": [1.0, 1.0, 1.0],
          "channels": "BGR", "resize": "detectron2"}
RESIZED = (64, 85)  # detectron2's ResizeShortestEdge(64, 96): 60 x 80 -> 64 x 85.33 -> int(x + 0.5)


@pytest.fixture
def make_backend(tmp_path, monkeypatch):
    monkeypatch.setattr("maskrt.tensorrt.plugins.register_plugins", lambda: None)
    (tmp_path / "model.plan").write_bytes(b"plan")
    config = dataclasses.replace(ArchConfig(18, 64, 5, "frozen", False, 1, "mlp", (), 128, False, (64, 64), False, 64),
                                 numerics="detectron2")
    manifest = Manifest("tensorrt", "fp32", ["a", "b", "c", "d"], config, POLICY, {}, stages={"model": "model.plan"})

    def make(frames, device="cpu"):
        log = StreamLog()
        monkeypatch.setattr(tb, "require_tensorrt", lambda: fake_tensorrt(log, frames, set()))
        monkeypatch.setattr(tb, "_streams", log)
        return tb.TensorRTBackend(tmp_path, manifest, device=device, warmup=False), log

    return make


def test_detectron2_rescale_paste_and_dropped_empty_boxes(make_backend):
    frame = detections(6)
    frame["boxes"][2] = torch.tensor([85.0, 10.0, 85.0, 30.0])  # clipped to zero width at the right border
    backend, log = make_backend([frame])
    with log:
        [raw] = backend.infer([image()])
    boxes = detectron2_rescale(frame["boxes"], RESIZED, (60, 80))
    keep = [0, 1, 3, 4, 5]
    assert raw.paste_mode == "detectron2" and torch.equal(raw.boxes, boxes[keep])
    assert torch.equal(raw.scores, frame["scores"][keep]) and raw.instances is None  # dropped: paste again on use
    backend, log = make_backend([detections(6)])
    with log:
        [raw] = backend.infer([image()])
    ref = cpu_paste_id_map(detections(6)["mask_probs"], raw.boxes, 60, 80, 0.5, detections(6)["scores"],
                           mode="detectron2")
    assert torch.equal(raw.instances.id_map, ref.id_map) and torch.equal(raw.instances.packed, ref.packed)


def test_preprocessing_is_detectron2s(make_backend):
    backend, log = make_backend([detections(1)])
    with log:
        batch_shape = backend.run_plan(image())[1]
    assert batch_shape == RESIZED


@pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor:UserWarning")
def test_per_frame_device_code_on_fake_cuda_tensors(make_backend):
    from maskrt.gpu_verify.fake_cuda import fake_cuda

    with fake_cuda() as run:
        with run.setup():  # the stand-in engine's outputs
            frames = [{k: v.to("cuda") for k, v in detections(4).items()}]
        backend, log = make_backend(frames, device="cuda")
        with log:
            out, size = backend.run_plan(image())
            boxes, instances = backend.paste(out, size, (60, 80))
    assert size == RESIZED and boxes.device.type == "cuda" and instances.id_map.device.type == "cuda"
    assert run.kernels() == ["d2_paste_kernel"] and [w for w, _ in run.host_reads] == ["packed crop length"]
    assert [what for what, _ in run.uploads] == ["frame"]  # normalised on the host (Pillow), declared
