"""TensorRT plugins for the three ops with tensorrt.plugin ("quickly deployable plugins", TensorRT >= 10.9).

UNVERIFIED HERE: no machine of this project has TensorRT or a GPU. `register_plugins()` imports
tensorrt lazily; what CPU tests can check is checked: the registration table is generated from
`maskrt.tensorrt.schemas` (plugin ids, input names, attribute names and types, outputs, size
tensors, autotune type combinations), the generated signatures satisfy tensorrt.plugin's
rules (tests drive them with a stand-in tensorrt.plugin), and each plugin's one kernel launch
(maskrt.tensorrt.aot) runs on CPU tensors under TRITON_INTERPRET=1 against the reference.

Per op (plugin id = schemas' "maskrt::<op_type>", so TensorRT's ONNX parser finds it from the
node's op_type and its plugin_namespace attribute):
- @trtp.register: output descriptors. MultiLevelRoIAlign -> [R, C, S, S] in the features' type;
  BatchedNMS -> keep [K] int64 with K a size tensor (upper bound N, or min(N, max_output)), the
  int32 size tensor itself and the kernel's int64 scratch; PasteMasks -> [N, H, W] bool, H and W
  from the canvas input.
- @trtp.autotune: the type combinations of the schema (FP32 or FP16 for the float tensors),
  linear formats.
- @trtp.aot_impl only (maskrt.tensorrt.aot): the kernel's PTX, launch and int32 scalars go into
  the plan, which then runs without Python (trtexec, Triton Inference Server, DeepStream). With
  one implementation registered, TensorRT creates that one whatever the network's preference;
  the nodes also carry aot=1 (strict AOT). There is no JIT (@trtp.impl) implementation: a plan
  built here never needs Python, torch or maskrt to run.
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
            from .aot import scratch_size

            n = a["boxes"].shape_expr[0]
            bound = n if a["max_output"] < 0 else trtp.min(n, int(a["max_output"]))
            count = trtp.size_tensor(trtp.cdiv(bound, 2), bound)
            scratch = trtp.from_shape_expr((scratch_size(trtp, n),), dtype=trt.int64)
            return trtp.from_shape_expr((count.expr(),), dtype=trt.int64), count, scratch
        masks, canvas = a["masks"], a["canvas"]
        shape = (masks.shape_expr[0], canvas.shape_expr[0], canvas.shape_expr[1])
        return trtp.from_shape_expr(shape, dtype=trt.bool)

    return describe


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

    from . import aot

    aot_sig = _signature([(i.name, trtp.TensorDesc) for i in schema.inputs] + attrs + [("outputs", outputs),
                                                                                       ("tactic", int)],
                         tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs])
    trtp.aot_impl(schema.plugin_id)(_generated(f"{schema.op_type}_aot_impl", aot_sig,
                                               aot.aot_body(schema, trt, trtp)))


def register_plugins() -> None:
    """Register MultiLevelRoIAlign, BatchedNMS and PasteMasks with tensorrt.plugin (idempotent).

    Call before parsing the tensorrt-target ONNX (TensorRT's ONNX parser looks the plugins up in
    the plugin registry); running the plan needs none of it. Raises ImportError when tensorrt with
    tensorrt.plugin's ahead-of-time API (>= 10.9) is not installed.
    """
    global _registered
    if _registered:
        return
    import numpy as np
    import numpy.typing as npt
    import tensorrt as trt
    import tensorrt.plugin as trtp

    if not hasattr(trtp, "aot_impl"):
        raise ImportError(f"TensorRT {getattr(trt, '__version__', '?')} has no ahead-of-time plugins "
                          "(tensorrt.plugin.aot_impl, TensorRT >= 10.9)")

    for schema in schemas.SCHEMAS.values():
        _register_one(trt, trtp, np, npt, schema)
    _registered = True
