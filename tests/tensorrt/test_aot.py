"""The three plugins' ahead-of-time launches (maskrt/tensorrt/aot.py), without TensorRT or a GPU.

- registration: every plugin has an aot_impl and nothing else to run it (no JIT implementation);
  its body (the compile stubbed: the real compile of the same sources is tests/gpu_verify/test_ptx.py)
  returns the kernel, a grid that is never empty, the block, the shared memory and the int32
  scalars in the kernel's argument order;
- the launches themselves, as TensorRT makes them (grid, scalars, outputs at their declared
  sizes), run under TRITON_INTERPRET=1 against the reference kernels (torchvision): RoIAlign
  bit-identical in float32, NMS the reference's kept set (order: score, then row), paste identical;
  zero RoIs / boxes / detections included (the grid of max(N, 1) programs writes nothing).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from maskrt.kernels.nms.common import float32_threshold  # noqa: E402
from maskrt.kernels.nms.reference import nms as nms_ref  # noqa: E402
from maskrt.kernels.paste import triton as paste_triton  # noqa: E402
from maskrt.kernels.paste.reference import paste as paste_ref  # noqa: E402
from maskrt.kernels.roi_align import triton as roi_triton  # noqa: E402
from maskrt.kernels.roi_align.reference import roi_align as roi_ref  # noqa: E402
from maskrt.tensorrt import aot, schemas  # noqa: E402
from tests.tensorrt.standin import Desc, check_aot_signature, registered  # noqa: E402

SCALES = list(schemas.FPN_SCALES)
ROI_ATTRS = dict(spatial_scales=np.float32(SCALES), output_size=7, sampling_ratio=2, aligned=0, canonical_size=224,
                 canonical_level=4, level_mapper="torchvision")


@pytest.fixture
def registry(monkeypatch):
    found, _, trtp = registered(monkeypatch)
    return found, trtp


@pytest.fixture
def compiled(monkeypatch):
    """aot.compile_launch stubbed: records the launches, returns what triton's compile returns."""
    launches = []
    metadata = types.SimpleNamespace(name="kernel_name", num_warps=8, shared=4096)
    monkeypatch.setattr(aot, "compile_launch", lambda launch: launches.append(launch) or types.SimpleNamespace(
        metadata=metadata, asm={"ptx": "// ptx"}))
    return launches


def test_every_plugin_is_ahead_of_time_only(registry):
    found, trtp = registry
    assert {pid: set(kinds) for pid, kinds in found.items()} == {
        s.plugin_id: {"register", "autotune", "aot_impl"} for s in schemas.SCHEMAS.values()}
    for schema in schemas.SCHEMAS.values():
        assert schema.aot and schema.parser_attributes["aot"] == 1  # strict AOT in the ONNX node
        launch_type, extra_type = check_aot_signature(found[schema.plugin_id]["aot_impl"], schema)
        assert launch_type is trtp.KernelLaunchParams and issubclass(extra_type, trtp.SymExprs)


@pytest.mark.parametrize("rois", [300, 0])
def test_roi_align_aot_body(registry, compiled, rois):
    found, _ = registry
    maps = [Desc((2, 64, 200 // s, 304 // s), "HALF") for s in (1, 2, 4, 8)]
    name, ptx, launch, extra = found["maskrt::MultiLevelRoIAlign"]["aot_impl"](
        *maps, Desc((rois, 5), "FLOAT"), *ROI_ATTRS.values(), (Desc(),), 0)
    assert (name, ptx) == ("kernel_name", "// ptx")
    assert (launch.grid_x, launch.grid_y, launch.grid_z) == (max(rois, 1), 2, 1)  # 64 channels / 32; 49 bins
    assert (launch.block_x, launch.shared_mem) == (8 * 32, 4096)
    dims = [d for m in maps for d in m.shape_expr[2:]]
    assert list(extra) == [("int32", v) for v in (rois, 64, *dims, 2, 2)]  # R, C, H/W per level, sampling, B
    [source] = compiled
    assert [source.signature[k] for k in ("f0", "f3", "rois_ptr", "out_ptr", "n_rois", "f4", "h4")] == [
        "*fp16", "*fp16", "*fp32", "*fp16", "i32", "constexpr", "constexpr"]
    assert source.constexprs["NUM_LEVELS"] == 4 and source.constexprs["NUM_T"] == 3
    assert source.options == {"enable_fp_fusion": False, "num_warps": roi_triton.NUM_WARPS}


@pytest.mark.parametrize("max_output,bound", [(100, 100), (-1, 500), (1000, 500)])
def test_nms_aot_body(registry, compiled, max_output, bound):
    found, _ = registry
    _, _, launch, extra = found["maskrt::BatchedNMS"]["aot_impl"](
        Desc((500, 4), "FLOAT"), Desc((500,), "FLOAT"), Desc((500,), "INT64"), 0.7, max_output, (Desc(),) * 3, 0)
    assert (launch.grid_x, launch.grid_y, launch.grid_z, launch.block_x) == (1, 1, 1, 256)  # one program
    bits = paste_triton.threshold_bits(float32_threshold(0.7))
    assert list(extra) == [("int32", 500), ("int32", bound), ("int32", bits)]
    assert compiled[0].signature["boxes_ptr"] == "*fp32" and compiled[0].signature["count_ptr"] == "*i32"


@pytest.mark.parametrize("n", [9, 0])
def test_paste_aot_body(registry, compiled, n):
    found, _ = registry
    _, _, launch, extra = found["maskrt::PasteMasks"]["aot_impl"](
        Desc((n, 28, 28), "HALF"), Desc((n, 4), "FLOAT"), Desc((480, 640, 3), "UINT8"), 0.5, "torchvision",
        (Desc(),), 0)
    assert (launch.grid_x, launch.grid_y) == (max(n, 1), 480 // paste_triton.BLOCK_H)
    assert list(extra) == [("int32", v) for v in (n, 28, 480, 640, paste_triton.threshold_bits(0.5))]
    assert compiled[0].signature["masks_ptr"] == "*fp16" and compiled[0].signature["canvas_ptr"] == "*u8"


def test_compiled_kernels_that_tensorrt_cannot_launch_are_refused():
    ok = types.SimpleNamespace(shared=4096, num_ctas=1, global_scratch_size=0, profile_scratch_size=0)
    aot.check_metadata("k", ok)
    for change, message in ((dict(global_scratch_size=64), "scratch"), (dict(shared=64 * 1024), "shared"),
                            (dict(num_ctas=2), "CTAs"), (dict(launch_pdl=True), "PDL")):
        with pytest.raises(RuntimeError, match=message):
            aot.check_metadata("k", types.SimpleNamespace(**{**vars(ok), **change}))


# --- the launches on CPU tensors, under the interpreter ---------------------------------------------

def pyramid(channels=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, channels, 64 // 2**i, 80 // 2**i, generator=g) for i in range(4)]


def rois(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 280 - 20
    wh = torch.exp(torch.rand(n, 2, generator=g) * 5.5 + 0.7)
    return torch.cat([torch.randint(0, 2, (n, 1), generator=g).float(), xy, xy + wh], 1)


@pytest.mark.parametrize("size,aligned", [(7, 0), (14, 1)])
def test_roi_align_launch_is_bit_identical_to_the_reference(size, aligned):
    feats, r = pyramid(), rois(12)
    r[3, 2], r[5, 0] = float("nan"), 2.0  # pooled to zero in the kernel (the plan has no host check)
    attrs = dict(ROI_ATTRS, output_size=size, aligned=aligned)
    [out] = aot.run(schemas.ROI_ALIGN, [*feats, r], attrs)
    ok = [i for i in range(12) if i not in (3, 5)]
    assert torch.equal(out[ok], roi_ref(feats, r[ok], SCALES, size, 2, bool(aligned)))
    assert not out[[3, 5]].any()
    [empty] = aot.run(schemas.ROI_ALIGN, [*feats, rois(0)], attrs)
    assert empty.shape == (0, 8, size, size)


def nms_case(seed, n, classes, ties=0, negative=False, spread=200.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * spread - (20 if negative else 0)
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60 + 1], 1).to(dtype)
    scores = (torch.randint(0, ties, (n,), generator=g).float() / ties if ties else torch.rand(n, generator=g))
    return boxes, scores.to(dtype), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("case,max_output,chunk,trick_limit", [
    (dict(seed=0, n=40, classes=3), -1, 2048, 4000),  # the plan's chunk
    (dict(seed=1, n=200, classes=1, ties=5), -1, 64, 4000),  # many equal scores
    (dict(seed=2, n=300, classes=4), 25, 64, 4000),  # 5 chunks merged; max_output
    (dict(seed=3, n=250, classes=3, negative=True), -1, 64, 4000),  # negative coordinates: per-class path
    (dict(seed=4, n=300, classes=5, ties=7), -1, 128, 0),  # the per-class path (as for > 100000 coordinates)
    (dict(seed=5, n=150, classes=2, dtype=torch.float16), -1, 64, 4000),
    (dict(seed=6, n=1, classes=1), -1, 64, 4000),
    (dict(seed=7, n=0, classes=1), -1, 64, 4000),
    (dict(seed=8, n=600, classes=3, ties=4, spread=60.0), 50, 128, 4000),  # dense overlaps
])
def test_nms_launch_keeps_the_reference_set(case, max_output, chunk, trick_limit):
    """Against torchvision's batched_nms on the CPU (whose coordinate trick applies up to 4000
    coordinates there: TRICK_LIMIT=4000 here, 100000 in the plan as on CUDA), or its per-class
    _batched_nms_vanilla where the kernel takes that path. Order: score descending, ties by lower
    row (the per-class path sorts its result unstably: its tie order is not a contract)."""
    from torchvision.ops.boxes import _batched_nms_vanilla

    boxes, scores, classes = nms_case(**case)
    keep, count, scratch = aot.run(schemas.NMS, [boxes, scores, classes],
                                   dict(iou_threshold=0.5, max_output=max_output), TRICK_LIMIT=trick_limit,
                                   CHUNK=chunk, B=16, KC=16)
    oracle = nms_ref if trick_limit else _batched_nms_vanilla
    want = oracle(boxes.float(), scores.float(), classes, 0.5).tolist()
    want = sorted(want, key=lambda i: (-float(scores[i]), i))
    assert keep.tolist() == (want if max_output < 0 else want[:max_output]) and int(count) == len(keep)
    assert scratch.shape == (case["n"] + -(-case["n"] // 2048) * 2048,)  # the declared size (TensorRT's)


def test_nms_launch_never_keeps_invalid_rows():
    from maskrt.kernels.nms.cpu import nms as nms_cpu

    boxes, scores, classes = nms_case(11, 300, 3, spread=50.0)
    boxes[5, 2], boxes[17, 0], scores[33] = float("nan"), float("inf"), float("nan")
    scores[40], scores[41], scores[42] = float("inf"), -0.0, 0.0
    keep, _, _ = aot.run(schemas.NMS, [boxes, scores, classes], dict(iou_threshold=0.5, max_output=-1),
                         TRICK_LIMIT=4000, CHUNK=64, B=16, KC=16)
    assert keep.tolist() == nms_cpu(boxes, scores, classes, 0.5, -1).tolist()


@pytest.mark.parametrize("n,dtype", [(5, torch.float32), (3, torch.float16), (0, torch.float32)])
def test_paste_launch_equals_the_reference(n, dtype):
    g = torch.Generator().manual_seed(n)
    masks = torch.rand(n, 28, 28, generator=g).to(dtype)
    xy = torch.rand(n, 2, generator=g) * 100 - 10
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 60], 1)
    canvas = torch.zeros(90, 120, 3, dtype=torch.uint8)
    [pasted] = aot.run(schemas.PASTE, [masks, boxes, canvas], dict(threshold=0.5, mode="torchvision"))
    assert pasted.dtype == torch.bool and torch.equal(pasted, paste_ref(masks.float(), boxes, 90, 120, 0.5))
