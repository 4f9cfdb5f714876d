"""Ahead-of-time TensorRT plugin kernels: @trtp.aot_impl bodies and the Triton sources they compile.

An AOT plugin (tensorrt.plugin >= 10.9, IPluginV3QuickAOTBuild) hands TensorRT, at build time, a
kernel name, its PTX, launch dimensions as shape expressions and the kernel's scalar arguments
as symbolic int32 expressions; TensorRT bakes them into the plan, so the engine runs without
Python (trtexec, Triton Inference Server's TensorRT backend, DeepStream). TensorRT launches the
kernel with the arguments (input pointers..., the int32 scalars..., output pointers...): no
float scalars (a float attribute goes in as its int32 bit pattern), no workspace, one launch.

Which ops qualify:
- PasteMasks: yes. paste/_kernels.paste_kernel (plain) computes the box geometry itself and
  writes every output pixel in one launch; its arguments are in TensorRT's order already.
- BatchedNMS: no. It sorts (torch), runs two kernels (or the per-class one) and has a
  data-dependent output size; it stays a JIT plugin (Python at run time).
- MultiLevelRoIAlign: no, for now: the kernel is one launch and computes each RoI's geometry,
  but the FPN levels are assigned before it with torch ops (roi_align/triton.py): the level is
  floor(4 + log2(sqrt(area) / 224) + eps), and an in-kernel log2 must round as torch's does on
  both sides of each level boundary. It stays a JIT plugin.

UNVERIFIED ON A GPU: CPU tests compile these sources for sm_90a/sm_80 (ptxas statistics,
tests/gpu_verify/test_ptx.py) and drive the aot_impl body with a stand-in tensorrt.plugin.
"""

from __future__ import annotations

from . import schemas

TARGET = None  # triton GPUTarget to compile for; None: the current GPU (set by the CPU tests)


def paste_source(masks_type: str, mode: str = "torchvision"):
    """(triton ASTSource, compile options) of the PasteMasks AOT kernel for masks of `masks_type`
    ("fp32" or "fp16"): paste_kernel (mode "detectron2": _d2_kernels.d2_paste_kernel, the same
    arguments) with FUSED=False, the fused-only pointers removed."""
    from triton.compiler import ASTSource

    from ..kernels.paste import triton as paste_triton
    if mode == "detectron2":
        from ..kernels.paste._d2_kernels import d2_paste_kernel as paste_kernel
    else:
        from ..kernels.paste._kernels import paste_kernel

    signature = {"masks_ptr": f"*{masks_type}", "boxes_ptr": "*fp32", "canvas_ptr": "*u8", "m": "i32",
                 "height": "i32", "width": "i32", "threshold_bits": "i32", "out_ptr": "*u8"}
    constexprs = {"offsets_ptr": None, "priority_ptr": None, "packed_ptr": None, "keymap_ptr": None,
                  "FUSED": False, "EMULATE": False, "BLOCK_H": paste_triton.BLOCK_H, "BLOCK_W": paste_triton.BLOCK_W}
    for name in ("offsets_ptr", "priority_ptr", "packed_ptr", "keymap_ptr"):
        signature[name] = "constexpr"
    for name in ("FUSED", "EMULATE", "BLOCK_H", "BLOCK_W"):
        signature[name] = "constexpr"
    signature = {name: signature[name] for name in paste_kernel.arg_names}
    return ASTSource(paste_kernel, signature, constexprs), {"enable_fp_fusion": False}


def compile_source(src, options: dict):
    import triton

    return triton.compile(src, target=TARGET, options=options)


def paste_aot(trt, trtp):
    """@trtp.aot_impl body of PasteMasks: (masks, boxes, canvas, threshold, outputs, tactic) ->
    (kernel name, PTX, KernelLaunchParams, SymIntExprs)."""
    from ..kernels.paste import triton as paste_triton

    def aot(masks, boxes, canvas, threshold, mode, outputs, tactic):
        types = {trt.float32: "fp32", trt.float16: "fp16"}
        if masks.dtype not in types:
            raise ValueError(f"PasteMasks: masks of type {masks.dtype} (FP32 or FP16 supported)")
        compiled = compile_source(*paste_source(types[masks.dtype], str(mode)))
        if getattr(compiled.metadata, "global_scratch_size", 0) or getattr(compiled.metadata, "profile_scratch_size",
                                                                           0):
            raise RuntimeError("PasteMasks: the compiled kernel needs scratch memory, which AOT plugins cannot get")
        launch = trtp.KernelLaunchParams()
        launch.grid_x = masks.shape_expr[0]
        launch.grid_y = trtp.cdiv(canvas.shape_expr[0], paste_triton.BLOCK_H)
        launch.block_x = compiled.metadata.num_warps * 32
        launch.shared_mem = compiled.metadata.shared
        scalars = (masks.shape_expr[1], canvas.shape_expr[0], canvas.shape_expr[1],
                   paste_triton.threshold_bits(float(threshold)))
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in scalars])
        return compiled.metadata.name, compiled.asm["ptx"], launch, extra

    return aot


AOT_BODIES = {schemas.PASTE.op_type: paste_aot}


def sources() -> list:
    """[(name, ASTSource, options)] of every AOT kernel variant (for the compile tests)."""
    return [(f"PasteMasks AOT {'detectron2 ' if m == 'detectron2' else ''}{t}", *paste_source(t, m))
            for m in ("torchvision", "detectron2") for t in ("fp32", "fp16")]

