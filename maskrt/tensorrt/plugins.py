"""TensorRT plugins for the three ops with tensorrt.plugin ("quickly deployable plugins", TensorRT >= 10.9).

UNVERIFIED HERE: no machine of this project has TensorRT or a GPU. `register_plugins()` imports
tensorrt lazily; what CPU tests can check is checked: the registration table is generated from
`maskrt.tensorrt.schemas` (plugin ids, input names, attribute names and types, outputs, size
tensors, autotune type combinations), the generated signatures satisfy tensorrt.plugin's
rules (tests drive them with a stand-in tensorrt.plugin), and `run_kernel` - the part of each
impl that calls our Triton kernels - runs on CPU tensors under TRITON_INTERPRET=1.

Per op (plugin id = schemas' "maskrt::<op_type>", so TensorRT's ONNX parser finds it from the
node's op_type and its plugin_namespace attribute):
- @trtp.register: output descriptors. MultiLevelRoIAlign -> [R, C, S, S] in the features' type;
  BatchedNMS -> keep [K] int64 with K a size tensor (upper bound N, or min(N, max_output)) plus
  the int32 size tensor itself; PasteMasks -> [N, H, W] bool, H and W from the canvas input.
- @trtp.autotune: the type combinations of the schema (FP32 or FP16 for the float tensors),
  linear formats.
- @trtp.impl (JIT): wraps TensorRT's buffers as torch CUDA tensors (torch.as_tensor on the
  plugin Tensors' __cuda_array_interface__), runs `maskrt.kernels.<op>.triton` on TensorRT's
  stream (torch.cuda.ExternalStream) and copies the result into the output buffers.
- @trtp.aot_impl (ahead of time, no Python at run time) for the schemas with aot=True, whose
  work is one kernel launch: PasteMasks (maskrt.tensorrt.aot says which op qualifies and
  why the others keep the JIT path). Their ONNX nodes carry aot=1, which tells TensorRT's ONNX
  parser to create the AOT implementation; the network is also built with
  PREFER_AOT_PYTHON_PLUGINS (tensorrt_build).
  The JIT NMS reads its kept count back on the host (one sync per call), so a plan with it
  cannot be captured in a CUDA graph.
"""

import inspect

from . import schemas

TRT_TYPES = {"float": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32", "bool": "BOOL",
             "uint8": "UINT8"}
_registered = False


def autotune_combinations(schema: schemas.PluginSchema) -> list[str]:
    """One comma-separated type string per supported combination, inputs then outputs
    (tensorrt.plugin.AutoTuneCombination syntax). Float tensors share one type per combination."""
    combos = [{}]
    for spec in (*schema.inputs, *schema.outputs):
        if spec.dtypes != schemas.FLOAT_TYPES and len(spec.dtypes) > 1:
            combos = [{**c, spec.name: d} for c in combos for d in spec.dtypes]
    result = []
    for float_type in schemas.FLOAT_TYPES:
        for combo in combos:
            types = [float_type if spec.dtypes == schemas.FLOAT_TYPES else combo.get(spec.name, spec.dtypes[0])
                     for spec in (*schema.inputs, *schema.outputs)]
            result.append(", ".join(TRT_TYPES[t] for t in types))
    return result


def plugin_table() -> dict[str, dict]:
    """plugin id -> what register_plugins() declares for it, derived from schemas.SCHEMAS only."""
    return {
        s.plugin_id: {
            "op_type": s.op_type,
            "inputs": [i.name for i in s.inputs],
            "attributes": {a.name: a.trt_annotation for a in s.attributes},
            "outputs": [o.name for o in s.outputs],
            "size_tensors": list(s.size_tensor_outputs),
            "autotune": autotune_combinations(s),
        }
        for s in schemas.SCHEMAS.values()
    }


# --- the kernels, on torch tensors (device-agnostic: CUDA, or CPU under TRITON_INTERPRET=1) ----

def run_kernel(schema: schemas.PluginSchema, inputs: list, attrs: dict) -> list:
    """The op's Triton implementation on torch tensors, with attributes as tensorrt.plugin passes
    them (int, float, numpy float32 array). Returns the outputs as torch tensors, schema order."""
    import torch

    if schema is schemas.ROI_ALIGN:
        from ..kernels.roi_align.triton import roi_align

        *features, rois = inputs
        out = roi_align(features, rois, [float(s) for s in attrs["spatial_scales"]], int(attrs["output_size"]),
                        int(attrs["sampling_ratio"]), bool(attrs["aligned"]), int(attrs["canonical_size"]),
                        int(attrs["canonical_level"]), str(attrs["level_mapper"]))
        return [out]
    if schema is schemas.NMS:
        from ..kernels.nms.triton import nms

        keep = nms(*inputs, float(attrs["iou_threshold"]), int(attrs["max_output"]))
        return [keep, torch.tensor(keep.shape[0], dtype=torch.int32, device=keep.device)]
    if schema is schemas.PASTE:
        from ..kernels.paste.triton import paste

        masks, boxes, canvas = inputs
        return [paste(masks, boxes, int(canvas.shape[0]), int(canvas.shape[1]), float(attrs["threshold"]),
                      str(attrs["mode"]))]
    raise ValueError(f"no kernel for {schema.op_type}")


# --- tensorrt.plugin registration (GPU only) -------------------------------------------------------

def _signature(params: list[tuple[str, object]], returns=inspect.Signature.empty) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(n, kind, annotation=a) for n, a in params], return_annotation=returns)


def _generated(name: str, sig: inspect.Signature, body):
    """A function with signature `sig` (what tensorrt.plugin inspects) calling body(**named args)."""

    def fn(*args, **kwargs):
        return body(**sig.bind(*args, **kwargs).arguments)

    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = sig
    return fn


def _attr_types(np_module, npt_module) -> dict[str, object]:
    return {"int": int, "float": float, "string": str, "floats": npt_module.NDArray[np_module.float32]}


def _descriptor(trt, trtp, schema: schemas.PluginSchema):
    """@trtp.register body: output TensorDescs from input descriptors (symbolic shapes)."""

    def describe(**a):
        if schema is schemas.ROI_ALIGN:
            p2, rois, size = a["p2"], a["rois"], int(a["output_size"])
            return trtp.from_shape_expr((rois.shape_expr[0], p2.shape_expr[1], size, size), dtype=p2.dtype)
        if schema is schemas.NMS:
            n = a["boxes"].shape_expr[0]
            bound = n if a["max_output"] < 0 else trtp.min(n, int(a["max_output"]))
            count = trtp.size_tensor(trtp.cdiv(bound, 2), bound)
            return trtp.from_shape_expr((count.expr(),), dtype=trt.int64), count
        masks, canvas = a["masks"], a["canvas"]
        shape = (masks.shape_expr[0], canvas.shape_expr[0], canvas.shape_expr[1])
        return trtp.from_shape_expr(shape, dtype=trt.bool)

    return describe


def _impl(schema: schemas.PluginSchema):
    """@trtp.impl body: TensorRT buffers -> torch CUDA tensors -> run_kernel on TensorRT's stream -> outputs."""

    def enqueue(outputs, stream, **named):
        import torch

        attrs = {k: named[k] for k in schema.attr_names}
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            inputs = [_as_torch(named[spec.name]) for spec in schema.inputs]
            results = run_kernel(schema, inputs, attrs)
            for spec, buffer, value in zip(schema.outputs, outputs, results):
                if spec.shape and spec.shape[0] == "?":  # data-dependent extent: alias to the actual shape
                    buffer = buffer.aliased(tuple(value.shape))
                target = _as_torch(buffer)
                if target.numel():
                    target.copy_(value.reshape(target.shape))

    return enqueue


def _as_torch(tensor):
    """torch CUDA tensor over a tensorrt.plugin Tensor's buffer (empty tensors have no buffer)."""
    import torch

    if 0 in tuple(tensor.shape):
        import numpy as np
        import tensorrt as trt

        dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(tensor.dtype))).dtype
        return torch.empty(tuple(tensor.shape), dtype=dtype, device="cuda")
    return torch.as_tensor(tensor, device="cuda")


def _register_one(trt, trtp, np, npt, schema: schemas.PluginSchema) -> None:
    attr_types = _attr_types(np, npt)
    attrs = [(a.name, attr_types[a.kind]) for a in schema.attributes]
    outputs = tuple[tuple(trtp.TensorDesc for _ in schema.outputs)]
    desc_sig = _signature([(i.name, trtp.TensorDesc) for i in schema.inputs] + attrs, outputs)
    trtp.register(schema.plugin_id)(_generated(f"{schema.op_type}_desc", desc_sig, _descriptor(trt, trtp, schema)))

    tune_sig = _signature([(i.name, trtp.TensorDesc) for i in schema.inputs] + [("outputs", outputs)])
    combos = autotune_combinations(schema)
    trtp.autotune(schema.plugin_id)(_generated(
        f"{schema.op_type}_autotune", tune_sig, lambda **_: [trtp.AutoTuneCombination(c) for c in combos]))

    impl_outputs = tuple[tuple(trtp.Tensor for _ in schema.outputs)]
    impl_sig = _signature([(i.name, trtp.Tensor) for i in schema.inputs] + attrs +
                          [("outputs", impl_outputs), ("stream", int)])
    trtp.impl(schema.plugin_id)(_generated(f"{schema.op_type}_impl", impl_sig, _impl(schema)))
    if schema.aot and hasattr(trtp, "aot_impl"):
        from . import aot

        aot_sig = _signature([(i.name, trtp.TensorDesc) for i in schema.inputs] + attrs +
                             [("outputs", outputs), ("tactic", int)],
                             tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs])
        body = aot.AOT_BODIES[schema.op_type](trt, trtp)
        trtp.aot_impl(schema.plugin_id)(_generated(f"{schema.op_type}_aot_impl", aot_sig, body))


def register_plugins() -> None:
    """Register MultiLevelRoIAlign, BatchedNMS and PasteMasks with tensorrt.plugin (idempotent).

    Call before parsing the tensorrt-target ONNX (TensorRT's ONNX parser looks the plugins up in
    the plugin registry) and before deserialising an engine built from it, in the same process.
    Raises ImportError when tensorrt (>= 10.9, with tensorrt.plugin) is not installed.
    """
    global _registered
    if _registered:
        return
    import numpy as np
    import numpy.typing as npt
    import tensorrt as trt
    import tensorrt.plugin as trtp

    for schema in schemas.SCHEMAS.values():
        _register_one(trt, trtp, np, npt, schema)
    _registered = True
