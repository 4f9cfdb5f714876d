"""The host code of the Triton wrappers on fake CUDA tensors (maskrt.gpu_verify.fake_cuda): no GPU here,
but FakeTensorMode makes CUDA-device tensors, raises on CPU/CUDA mixes and on data-dependent host
reads, and the harness raises on device-to-host copies; only the kernel launches are replaced
(recorded). What a GPU would add - the kernels' results - is checked under TRITON_INTERPRET=1 in
test_nms.py / test_paste.py / test_roi_align.py.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensorDeviceMismatchError

from maskrt.gpu_verify import launches, ptx
from maskrt.kernels.model_sizes import random_boxes
from maskrt.kernels.roi_align.warmup import warm_up_calls as roi_align_warm_up
from maskrt.gpu_verify.fake_cuda import HostCopy, HostToDeviceCopy, fake_cuda
from maskrt.kernels import _triton

paste_triton = importlib.import_module("maskrt.kernels.paste.triton")
paste_common = importlib.import_module("maskrt.kernels.paste.common")
nms_triton = importlib.import_module("maskrt.kernels.nms.triton")


def cuda_instances(n=6, h=90, w=120, m=28):
    return (torch.rand(n, m, m, device="cuda"), random_boxes(n, h, w, "cuda"),
            torch.rand(n, device="cuda"))


# --- the harness catches what it is for ---------------------------------------------------------

def test_planted_item_is_caught(monkeypatch):
    """A hidden sync (.item() of a value) in the paste geometry raises under fake_cuda."""
    real = paste_common.crop_offsets
    monkeypatch.setattr(paste_triton, "crop_offsets", lambda region: real(region) + int(region.sum().item() * 0))
    with fake_cuda(), pytest.raises(DataDependentOutputException):
        paste_triton.paste_id_map(*cuda_instances()[:2], 90, 120, 0.5)


def test_planted_cpu_tensor_is_caught(monkeypatch):
    """A CPU tensor mixed into the device computation (defect 1's kind) raises under fake_cuda."""
    monkeypatch.setattr(paste_triton, "crop_offsets",
                        lambda region: torch.cat([torch.zeros(1, dtype=torch.int64), region[:, 0]]))
    with fake_cuda(), pytest.raises(FakeTensorDeviceMismatchError):
        paste_triton.paste_id_map(*cuda_instances()[:2], 90, 120, 0.5)


def test_planted_host_copy_is_caught():
    with fake_cuda(), pytest.raises(HostCopy):
        torch.ones(3, device="cuda").cpu()


@pytest.mark.parametrize("copy", [
    lambda boxes: torch.tensor(1).to(boxes),  # NMS's constant as torchvision writes it (a sync per call)
    lambda boxes: torch.tensor([1.0, 2.0], device="cuda"),
    lambda boxes: torch.as_tensor((0.485, 0.456), device=boxes.device),
    lambda boxes: boxes[0].copy_(torch.zeros(4)),
])
def test_planted_host_to_device_copy_is_caught(copy):
    with fake_cuda() as run:
        with run.setup():  # the test's own inputs: not checked
            boxes = torch.zeros(5, 4).to("cuda")
        with pytest.raises(HostToDeviceCopy):
            copy(boxes)


def test_declared_uploads_are_counted_and_device_values_copy_nothing():
    with fake_cuda() as run:
        frame = _triton.upload(torch.zeros(6, 8, 3, dtype=torch.uint8), "cuda", "frame")
        values = _triton.device_values([0.485, 0.456], torch.float32, "cuda")
    assert frame.device.type == "cuda" and values.device.type == "cuda" and values.shape == (2,)
    assert run.uploads == [("frame", (6, 8, 3))]
    assert torch.equal(_triton.device_values([0.485, 0.456], torch.float32, "cpu"),
                       torch.tensor([0.485, 0.456], dtype=torch.float32))


# --- the wrappers ------------------------------------------------------------------------------------

def test_paste_runs_on_device_without_host_reads():
    with fake_cuda() as run:
        masks, boxes, _ = cuda_instances()
        out = paste_triton.paste(masks, boxes, 90, 120, 0.5)
    assert out.device.type == "cuda" and out.shape == (6, 90, 120) and out.dtype == torch.bool
    assert run.kernels() == ["paste_kernel"] and run.host_reads == [] and run.uploads == []


def test_paste_id_map_runs_on_device_with_one_size_read():
    """Defect 1: crop_offsets joined a CPU zeros(1) with the CUDA cumsum (device mismatch); the
    priority ranking copied the scores to the host. Now one read: the packed length."""
    with fake_cuda() as run:
        masks, boxes, scores = cuda_instances()
        r = paste_triton.paste_id_map(masks, boxes, 90, 120, 0.5, scores)
    assert {t.device.type for t in (r.id_map, r.regions, r.packed, r.offsets)} == {"cuda"}
    assert run.kernels() == ["paste_kernel"] and run.uploads == []
    assert [what for what, _ in run.host_reads] == ["packed crop length"]


@pytest.mark.parametrize("n", [300, 30_000])  # dense path; per-class segment path (n * 4 > 100000)
def test_nms_runs_on_device_with_one_size_read(n):
    """Defect 8/9: the NaN-row filter, the trick test and the per-class segments were read on the
    host (syncs; the per-class path also built an n x n mask). Now one read: the kept count."""
    with fake_cuda() as run:
        boxes = random_boxes(n, 800, 1088, "cuda")
        keep = nms_triton.nms(boxes, torch.rand(n, device="cuda"), torch.randint(0, 80, (n,), device="cuda"), 0.5)
    assert keep.device.type == "cuda" and keep.dtype == torch.int64
    assert [what for what, _ in run.host_reads] == ["nms kept count"] and run.uploads == []
    expected = ["iou_mask_kernel", "greedy_scan_kernel"] if n == 300 else ["segment_nms_kernel"]
    assert run.kernels() == expected


def test_nms_per_class_memory_is_linear():
    """Defect 9: no n x n bitmask on the per-class path: every tensor the launch gets is O(n)."""
    n = 80_000
    with fake_cuda() as run:
        boxes = random_boxes(n, 800, 1088, "cuda")
        nms_triton.nms(boxes, torch.rand(n, device="cuda"), torch.randint(0, 80, (n,), device="cuda"), 0.5)
    [launch] = run.launches
    assert max(a.numel() for a in launch.args if isinstance(a, torch.Tensor)) == n * 4


def test_roi_align_runs_on_device_without_host_reads_or_copies():
    """Defect 8: the input checks were three host reads, and the level pointer table and map sizes
    three host-to-device copies per call; then one combined check read. Now none: invalid RoIs pool
    to zero, the levels are assigned in the kernel; pointers, sizes, scales and level thresholds are
    kernel arguments."""
    with fake_cuda() as run:
        roi_align_warm_up("cuda", small=True)
    assert run.kernels() == ["roi_align_kernel"] * 2
    assert run.host_reads == [] and run.uploads == []
    tensors = [a for a in run.launches[0].args if isinstance(a, torch.Tensor)]
    assert {t.device.type for t in tensors} == {"cuda"} and len(tensors) == 6  # 4 maps, rois, out


# --- recompiles (defect 7) ------------------------------------------------------------------------------

@pytest.mark.parametrize("group", sorted(launches.NAMES))
def test_per_frame_sizes_do_not_change_the_compiled_kernel(group, monkeypatch):
    """triton compiles anew for every new specialization key: integers equal to 1 or divisible by
    16 are specialized unless do_not_specialize. The small warm-up calls and the model-sized
    calls (different counts and image sizes) must give the same keys: warm-up compiles all."""
    # the launches a GPU gets (roi_align takes larger tiles under the interpreter; nothing runs here)
    monkeypatch.setattr(importlib.import_module("maskrt.kernels.roi_align.triton"), "interpreted", lambda: False)
    small = [ptx.specialize(launch)[4] for launch in launches.recorded(group, small=True)]
    model = [ptx.specialize(launch)[4] for launch in launches.recorded(group, small=False)]
    assert small == model


def test_specialization_key_sees_a_specialized_integer():
    """The key comparison above is not vacuous: the same kernel with `height` specialized gives
    different keys for heights 16 and 17 (16 is divisible by 16)."""
    from triton.runtime.jit import JITFunction

    kernel = ptx.jit_function(launches.recorded("paste", small=True)[0].kernel)
    specialized = JITFunction(kernel.fn, do_not_specialize=["m", "width", "threshold_bits"])
    keys = set()
    for height in (16, 17):
        with fake_cuda() as run:
            paste_triton.paste(*cuda_instances(h=height)[:2], height, 120, 0.5)
        launch = run.launches[0]
        keys.add(ptx.specialize(ptx.Launch(specialized, launch.grid, launch.args, launch.kwargs))[4])
    assert len(keys) == 2
