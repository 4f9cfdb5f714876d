"""Every Triton kernel compiled for the GPUs it is meant for, on this CPU (marker `ptx`).

triton.compile with GPUTarget("cuda", 90, 32) (sm_90a, H100/H200) and ("cuda", 80, 32) (sm_80,
A100) needs no GPU, and the triton wheel ships ptxas, whose `-v` report gives registers, spills
and the stack frame per thread. The configurations are the launches the wrappers make at the
model's sizes (maskrt.gpu_verify.launches) plus the AOT plugin kernels (maskrt.tensorrt.aot),
compiled in one child process without TRITON_INTERPRET (interpreted kernels cannot be
compiled); triton's cache and a stats cache beside it make repeated runs take seconds.
Compile times are measured in benchmarks/gpu/test_compile.py, not asserted here.
The same file runs under triton 3.6, the oldest triton maskrt supports (make test-triton36, part of
make test): e.g. triton 3.6 ignores fdiv's ieee_rounding flag, which these checks then see as
div.full.f32, and spills the RoIAlign tile at 4 warps.
"""

from __future__ import annotations

import pytest

from maskrt.gpu_verify import ptx

pytestmark = pytest.mark.ptx

STACK_LIMIT = 256  # bytes per thread: a few spilled scalars at most (the old RoIAlign tile spilled 6.5-25.7 KB)
EXACT = ("iou_mask_kernel", "segment_nms_kernel", "paste_kernel", "d2_paste_kernel", "roi_align_kernel",
         "batched_nms_kernel")  # bit-exact claims
NO_FMA = ("iou_mask_kernel", "segment_nms_kernel", "roi_align_kernel", "batched_nms_kernel")  # no fma at all
AOT_PARAMS = {  # TensorRT's order (inputs, int32 scalars, outputs), then triton's two scratch pointers (size 0)
    "RoIAlign": "ppppp" + "i" * 12 + "p" + "pp",  # p2..p5, rois; R, C, (H, W) x 4, sampling, B; pooled
    "NMS": "ppp" + "iii" + "ppp" + "pp",  # boxes, scores, classes; N, max out, threshold bits; keep, count, scratch
    "PasteMasks": "ppp" + "iiiii" + "p" + "pp",  # masks, boxes, canvas; N, M, H, W, threshold bits; pasted
}
AOT = ("RoIAlign S=7", "RoIAlign S=14", "NMS", "PasteMasks", "PasteMasks detectron2")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return ptx.compile_in_subprocess()


def test_every_configuration_compiles_for_hopper_and_ampere(rows):
    from maskrt.gpu_verify.launches import NAMES

    aot = {f"{k} AOT {t}" for k in AOT for t in ("fp32", "fp16")}
    configs = {name for names in NAMES.values() for name in names} | aot
    assert {(r["config"], r["arch"]) for r in rows} == {(c, a) for c in configs for a in ("sm_90a", "sm_80")}


def test_no_spills_and_a_bounded_stack(rows):
    """Defect 6: a spilled tile is slow and reserves local memory for every resident thread."""
    bad = [(r["config"], r["arch"], r["spill_stores"], r["spill_loads"], r["stack"]) for r in rows
           if r["spill_stores"] or r["spill_loads"] or r["stack"] > STACK_LIMIT]
    assert bad == []


def test_exact_kernels_divide_ieee_and_do_not_contract(rows):
    """Defect 5: div.full.f32 is approximate (up to 2 ulp), div.rn.ftz flushes subnormals, an
    approximate square root is not IEEE, and contracting a * b + c into one fma rounds once instead
    of twice; kernels claiming bit-exactness have none of them. The paste's fused multiply-adds
    are explicit (tl.fma, as torch's CPU interpolation computes them)."""
    for r in rows:
        assert r["div_full"] == r["div_approx"] == r["div_ftz"] == r["sqrt_approx"] == 0, r
        if r["kernel"] in EXACT:
            assert r["fp_fusion"] is False, r
        if r["kernel"] in NO_FMA:
            assert r["fma"] == 0, r


def test_aot_kernels_take_tensorrts_argument_order(rows):
    """TensorRT calls an AOT kernel with (inputs, int32 scalars, outputs): see AOT_PARAMS."""
    aot = [r for r in rows if " AOT " in r["config"]]
    assert len(aot) == len(AOT) * 2 * 2
    for r in aot:
        assert r["params"] == AOT_PARAMS[r["config"].split(" ")[0]], r


def test_aot_kernels_fit_one_plain_launch(rows):
    """What TensorRT's launch of an AOT kernel can give (maskrt.tensorrt.aot.check_metadata): no more
    than 48 KB of shared memory (no opt-in attribute is set)."""
    from maskrt.tensorrt.aot import SHARED_LIMIT

    assert [r for r in rows if " AOT " in r["config"] and r["shared"] > SHARED_LIMIT] == []
