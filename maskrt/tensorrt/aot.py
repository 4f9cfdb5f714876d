"""Ahead-of-time TensorRT plugin kernels: what each plugin's one launch is, for TensorRT and for the tests.

An AOT plugin (tensorrt.plugin >= 10.9, IPluginV3QuickAOTBuild) hands TensorRT, at build time, a
kernel name, its PTX, launch dimensions as shape expressions and the kernel's scalar arguments
as symbolic int32 expressions; TensorRT bakes them into the plan, so the engine runs without
Python (trtexec, Triton Inference Server's TensorRT backend, DeepStream). TensorRT launches the
kernel once per enqueue with (input pointers..., the int32 scalars..., output pointers...): no
float scalars (a float goes in as its int32 bit pattern), no workspace (scratch is an output).
All three ops are one launch each, of the same Triton kernel the torch path launches:
- MultiLevelRoIAlign: roi_align/_kernels.roi_align_kernel, the FPN level assigned inside it
  (thresholds found on the host at build time, baked in as constexprs); grid (max(R, 1),
  cdiv(C, 32), cdiv(S * S, 64)): R = 0 RoIs still launches one (idle) program.
- BatchedNMS: nms/_kernels.batched_nms_kernel, one program (sort, merge, greedy walk); the
  kept count is written to the `num_kept` output, TensorRT's size tensor of `keep`; scratch is
  the third output `scratch`.
- PasteMasks: paste/_kernels.paste_kernel (plain); grid (max(N, 1), cdiv(H, 16)), programs past
  n write nothing.

`launch(schema, ops, inputs, types, attrs)` describes a launch (kernel, signature, constexprs,
options, grid, scalars) with shape arithmetic `ops` (tensorrt.plugin's max / min / cdiv on shape
expressions at build time, `INT_OPS` on numbers); `aot_body` turns it into the @trtp.aot_impl
result (the PTX compiled by triton), `run` launches it on torch tensors - on CUDA, or on the CPU
under TRITON_INTERPRET=1 - exactly as TensorRT would, which is how the CPU tests and make
gpu-check verify the AOT kernels without TensorRT. UNVERIFIED ON A GPU WITH TENSORRT: TensorRT
accepting the PTX, launching it and honouring the size tensor of an AOT plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from . import schemas

TARGET = None  # triton GPUTarget to compile for; None: the current GPU (the CPU tests set one)
SHARED_LIMIT = 48 * 1024  # bytes: more needs an opt-in attribute TensorRT's launch may not set
INT_OPS = SimpleNamespace(max=max, min=min, cdiv=lambda a, b: -(-a // b))
TRT_TYPES = {"FLOAT": "fp32", "HALF": "fp16", "INT64": "i64", "INT32": "i32", "BOOL": "u8", "UINT8": "u8"}


@dataclass
class Launch:
    """One AOT launch. signature: argument -> triton type ("*fp32", "i32", "constexpr"), all of the
    kernel's arguments in order; grid: 3 sizes; scalars: the int32 arguments after the inputs."""

    kernel: object
    signature: dict
    constexprs: dict
    options: dict
    grid: tuple
    scalars: tuple
    outputs: list = field(default_factory=list)  # (shape, torch dtype name) per output, for `run`


def _signature(kernel, types: dict, constexprs: dict) -> dict:
    return {name: "constexpr" if name in constexprs else types[name] for name in kernel.arg_names}


def roi_align_launch(ops, inputs, types, attrs, tiles: str = "plan") -> Launch:
    """p2..p5 [B, C, H_l, W_l], rois [R, 5] float32 -> pooled [R, C, S, S]. tiles="interpreter"
    (integer shapes only): the Triton interpreter's large tiles, as roi_align/triton.py takes them
    there - the same code per element, far fewer programs; "plan": the plan's."""
    import torch

    from ..kernels.roi_align import _kernels, triton as roi_triton
    from ..kernels.roi_align.common import kernel_levels

    *maps, rois = inputs
    size, scales = int(attrs["output_size"]), [float(s) for s in attrs["spatial_scales"]]
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[types[0]]
    tl = _tl()
    constexprs = {**{f"S{i}": float(torch.tensor(s, dtype=dtype)) for i, s in enumerate(scales)}, "S4": 1.0,
                  "NUM_LEVELS": len(maps), **kernel_levels(scales, int(attrs["canonical_size"]),
                                                           int(attrs["canonical_level"]), torch.float32,
                                                           _text(attrs.get("level_mapper", "torchvision"))),
                  "SIZE": size, "ALIGNED": bool(attrs["aligned"]), "DTYPE": getattr(tl, _TL[types[0]]),
                  "ACC": tl.float32, "ROI_BLOCK": 1, "BLOCK_C": roi_triton.BLOCK_C,
                  "BIN_BLOCK": min(roi_triton.BIN_BLOCK, 1 << (size * size - 1).bit_length()),
                  "f4": None, "h4": None, "w4": None}
    r, c = rois.shape_expr[0], maps[0].shape_expr[1]
    if tiles == "interpreter":
        constexprs.update(BIN_BLOCK=1 << (size * size - 1).bit_length(), BLOCK_C=1 << (c - 1).bit_length())
        tile = constexprs["BIN_BLOCK"] * constexprs["BLOCK_C"]
        constexprs["ROI_BLOCK"] = max(1, roi_triton.INTERPRETER_TILE // tile)
    kernel = _kernels.roi_align_kernel
    pointers = {**{f"f{i}": f"*{types[0]}" for i in range(4)}, "rois_ptr": "*fp32", "out_ptr": f"*{types[0]}"}
    signature = _signature(kernel, {**dict.fromkeys(kernel.arg_names, "i32"), **pointers}, constexprs)  # ints: i32
    dims = [d for m in maps for d in (m.shape_expr[2], m.shape_expr[3])]
    grid = (ops.cdiv(ops.max(r, 1), constexprs["ROI_BLOCK"]) if constexprs["ROI_BLOCK"] > 1 else ops.max(r, 1),
            ops.cdiv(c, constexprs["BLOCK_C"]), -(-size * size // constexprs["BIN_BLOCK"]))
    scalars = (r, c, *dims, int(attrs["sampling_ratio"]), maps[0].shape_expr[0])
    return Launch(kernel, signature, constexprs, {"enable_fp_fusion": False, "num_warps": roi_triton.NUM_WARPS},
                  grid, scalars, [((r, c, size, size), {"fp32": "float32", "fp16": "float16"}[types[0]])])


NMS_CONSTEXPRS = {"CHUNK": 2048, "B": 32, "KC": 64}  # 8 warps: no spills (sm_90a, sm_80; 3.6 and 3.8), B = 64 spills


def nms_launch(ops, inputs, types, attrs, trick_limit: int = 100_000) -> Launch:
    """boxes [N, 4], scores [N], classes [N] int64 -> keep [K] int64, num_kept [] int32, scratch.
    trick_limit: torchvision's switch on CUDA (100000 coordinates; 4000 to compare with its CPU op)."""
    from ..kernels.nms import _kernels
    from ..kernels.nms.common import float32_threshold
    from ..kernels.paste.triton import threshold_bits

    n = inputs[0].shape_expr[0]
    max_output = int(attrs["max_output"])
    bound = n if max_output < 0 else ops.min(n, max_output)
    constexprs = {**NMS_CONSTEXPRS, "TRICK_LIMIT": trick_limit}
    kernel = _kernels.batched_nms_kernel
    signature = _signature(kernel, {"boxes_ptr": f"*{types[0]}", "scores_ptr": f"*{types[1]}",
                                    "classes_ptr": "*i64", "n": "i32", "max_out": "i32", "threshold_bits": "i32",
                                    "keep_ptr": "*i64", "count_ptr": "*i32", "work_ptr": "*i64"}, constexprs)
    scalars = (n, bound, threshold_bits(float32_threshold(float(attrs["iou_threshold"]))))
    return Launch(kernel, signature, constexprs, {"enable_fp_fusion": False, "num_warps": 8}, (1, 1, 1), scalars,
                  [((bound,), "int64"), ((), "int32"), ((scratch_size(ops, n),), "int64")])


def scratch_size(ops, n):
    """Elements of BatchedNMS's scratch output: the sorted keys, then their merge."""
    return n + ops.cdiv(n, NMS_CONSTEXPRS["CHUNK"]) * NMS_CONSTEXPRS["CHUNK"]


def paste_launch(ops, inputs, types, attrs) -> Launch:
    """masks [N, M, M], boxes [N, 4] float32, canvas [H, W, Ch] -> pasted [N, H, W] bool. Attribute
    mode "detectron2": _d2_kernels.d2_paste_kernel (the same arguments), else paste_kernel."""
    from ..kernels.paste import _d2_kernels, _kernels
    from ..kernels.paste import triton as paste_triton

    masks, _, canvas = inputs
    constexprs = {"regions_ptr": None, "offsets_ptr": None, "priority_ptr": None, "packed_ptr": None,
                  "keymap_ptr": None, "FUSED": False, "EMULATE": False, "BLOCK_H": paste_triton.BLOCK_H,
                  "BLOCK_W": paste_triton.BLOCK_W}
    mode = _text(attrs.get("mode", "torchvision"))
    kernel = _d2_kernels.d2_paste_kernel if mode == "detectron2" else _kernels.paste_kernel
    signature = _signature(kernel, {"masks_ptr": f"*{types[0]}", "boxes_ptr": "*fp32", "canvas_ptr": f"*{types[2]}",
                                    "n": "i32", "m": "i32", "height": "i32", "width": "i32", "threshold_bits": "i32",
                                    "out_ptr": "*u8"}, constexprs)
    n, h, w = masks.shape_expr[0], canvas.shape_expr[0], canvas.shape_expr[1]
    grid = (ops.max(n, 1), ops.cdiv(h, paste_triton.BLOCK_H), 1)
    scalars = (n, masks.shape_expr[1], h, w, paste_triton.threshold_bits(float(attrs["threshold"])))
    return Launch(kernel, signature, constexprs, {"enable_fp_fusion": False}, grid, scalars, [((n, h, w), "bool")])


LAUNCHES = {schemas.ROI_ALIGN.op_type: roi_align_launch, schemas.NMS.op_type: nms_launch,
            schemas.PASTE.op_type: paste_launch}
_TL = {"fp32": "float32", "fp16": "float16"}


def _text(value) -> str:
    """A string attribute as str (TensorRT's creator decodes them; onnx.reference passes bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _tl():
    from ..kernels._triton import triton_modules

    return triton_modules()[1]


def compile_launch(launch: Launch):
    """triton.compile of the launch's kernel for TARGET; refuses what TensorRT cannot launch."""
    import triton
    from triton.compiler import ASTSource

    compiled = triton.compile(ASTSource(launch.kernel, launch.signature, launch.constexprs), target=TARGET,
                              options=launch.options)
    check_metadata(launch.kernel.__name__, compiled.metadata)
    return compiled


def check_metadata(name: str, metadata) -> None:
    """RuntimeError for a compiled kernel TensorRT's one plain launch cannot run: scratch memory
    (triton's two trailing pointers are passed as null), clusters, cooperative or programmatic-
    dependent launches, more than SHARED_LIMIT of shared memory."""
    problems = []
    if getattr(metadata, "global_scratch_size", 0) or getattr(metadata, "profile_scratch_size", 0):
        problems.append("scratch memory")
    if getattr(metadata, "num_ctas", 1) != 1:
        problems.append(f"{metadata.num_ctas} CTAs per cluster")
    if getattr(metadata, "launch_cooperative_grid", False) or getattr(metadata, "launch_pdl", False):
        problems.append("a cooperative or PDL launch")
    if int(metadata.shared) > SHARED_LIMIT:
        problems.append(f"{metadata.shared} bytes of shared memory")
    if problems:
        raise RuntimeError(f"AOT kernel {name} needs {', '.join(problems)}: TensorRT's launch cannot provide it")


def aot_body(schema: schemas.PluginSchema, trt, trtp):
    """@trtp.aot_impl body, called with the named arguments (input descs, attributes, outputs,
    tactic) -> (kernel name, PTX, KernelLaunchParams, SymIntExprs of SymInt32)."""

    def aot(**named):
        inputs, attrs = [named[s.name] for s in schema.inputs], {k: named[k] for k in schema.attr_names}
        types = [TRT_TYPES[str(getattr(d.dtype, "name", d.dtype))] for d in inputs]
        launch = LAUNCHES[schema.op_type](trtp, inputs, types, attrs)
        compiled = compile_launch(launch)
        params = trtp.KernelLaunchParams()
        params.grid_x, params.grid_y, params.grid_z = launch.grid
        params.block_x = compiled.metadata.num_warps * 32
        params.shared_mem = int(compiled.metadata.shared)
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in launch.scalars])
        return compiled.metadata.name, compiled.asm["ptx"], params, extra

    return aot


def run(schema: schemas.PluginSchema, inputs: list, attrs: dict, tiles: str = "plan", **overrides) -> list:
    """The plugin's AOT launch on torch tensors, as TensorRT makes it (grid, int32 scalars, output
    buffers at their declared sizes): on CUDA, or on CPU tensors under TRITON_INTERPRET=1. Returns
    the outputs, data-dependent ones cut to their size tensor (BatchedNMS's keep to num_kept).
    tiles="interpreter": RoIAlign in the interpreter's large tiles (roi_align_launch). overrides:
    constexprs to change (tests: small NMS chunks; TRICK_LIMIT) - not TensorRT's."""
    import torch

    from ..kernels._triton import interpreted, triton_modules

    triton_modules()  # the interpreter's standard library first
    types = [{torch.float32: "fp32", torch.float16: "fp16", torch.int64: "i64", torch.uint8: "u8"}[t.dtype]
             for t in inputs]
    descs = [SimpleNamespace(shape_expr=tuple(t.shape)) for t in inputs]
    extra = {"trick_limit": overrides.pop("TRICK_LIMIT")} if "TRICK_LIMIT" in overrides else {}
    if schema is schemas.ROI_ALIGN:
        extra["tiles"] = tiles
    launch = LAUNCHES[schema.op_type](INT_OPS, descs, types, attrs, **extra)
    device = inputs[0].device
    outputs = [torch.zeros(shape, dtype=getattr(torch, dtype), device=device) for shape, dtype in launch.outputs]
    buffers = [o.view(torch.uint8) if o.dtype == torch.bool else o for o in outputs]
    options = {} if interpreted() else launch.options
    values = iter([*[t.contiguous() for t in inputs], *launch.scalars, *buffers])  # TensorRT's order
    args = {name: next(values) for name, kind in launch.signature.items() if kind != "constexpr"}
    launch.kernel[launch.grid](**args, **{**launch.constexprs, **overrides}, **options)
    if schema is schemas.NMS:
        outputs[0] = outputs[0][: int(outputs[1])]
    return outputs


def sources() -> list:
    """[(name, ASTSource, options)] of every AOT kernel variant a plan can hold (the compile tests):
    RoIAlign S = 7 and 14, NMS, paste (torchvision's and detectron2's), each for fp32 and fp16.
    (detectron2's level mapper changes RoIAlign's thresholds only, constexprs of the same code.)"""
    from triton.compiler import ASTSource

    examples = {
        "RoIAlign S=7": (schemas.ROI_ALIGN, dict(output_size=7)),
        "RoIAlign S=14": (schemas.ROI_ALIGN, dict(output_size=14)),
        "NMS": (schemas.NMS, {}), "PasteMasks": (schemas.PASTE, {}),
        "PasteMasks detectron2": (schemas.PASTE, dict(mode="detectron2")),
    }
    out = []
    for name, (schema, attrs) in examples.items():
        values = {a.name: a.default for a in schema.attributes} | attrs
        for float_type in ("fp32", "fp16"):
            types = [_example_type(s, float_type) for s in schema.inputs]
            descs = [SimpleNamespace(shape_expr=(1,) * len(s.shape)) for s in schema.inputs]
            launch = LAUNCHES[schema.op_type](INT_OPS, descs, types, values)
            out.append((f"{name} AOT {float_type}", ASTSource(launch.kernel, launch.signature, launch.constexprs),
                        launch.options))
    return out


def _example_type(spec: schemas.TensorSpec, float_type: str) -> str:
    if spec.dtypes == schemas.FLOAT_TYPES:
        return float_type
    return {"float": "fp32", "int64": "i64", "uint8": "u8"}[spec.dtypes[0]]
