"""Plugin schemas: the one source of truth for how maskrt's three ops appear outside torch.

Each op of the `tensorrt` target is one custom node in the exported ONNX and one TensorRT
plugin (tensorrt.plugin, "quickly deployable plugins"). This module describes both, and every
consumer is generated from it:
- `maskrt.tensorrt.onnx_symbolics` emits the ONNX nodes (`make_node`, attribute defaults);
- `register_onnx_schemas()` registers them with onnx (checker + shape inference);
- `maskrt.tensorrt.plugins` builds the tensorrt.plugin registrations (inputs, attributes
  with their Python/numpy types, outputs) from the same records;
- the tests validate exported nodes against them (`validate_node`) and back the ops with the
  reference kernels under onnx.reference.ReferenceEvaluator.

Naming: TensorRT's ONNX parser imports an unknown node as the plugin whose *name* is the node's
op_type, with namespace from the node's `plugin_namespace` attribute (version "1"). So the
plugin id is f"{NAMESPACE}::{op_type}" (e.g. "maskrt::MultiLevelRoIAlign"), the ONNX domain is
NAMESPACE too, and every node carries plugin_namespace="maskrt" besides the op's attributes.

Data-dependent output sizes (NMS keeps K <= min(N, max_output) boxes) follow TensorRT's rule
for plugins: the extent is produced as an extra scalar int32 output (a "size tensor"), so
BatchedNMS outputs `keep` and `num_kept`, and a third, `scratch`: its one-program kernel sorts in
global memory, and an ahead-of-time plugin gets no workspace. Every op is one kernel launch with
an ahead-of-time implementation (aot=True: its nodes carry aot=1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE = "maskrt"  # ONNX domain, tensorrt.plugin namespace and the node's plugin_namespace
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE_ATTR = "plugin_namespace"  # read by TensorRT's ONNX parser, not passed to the plugin
AOT_ATTR = "aot"  # 1: TensorRT's ONNX parser creates the plugin's ahead-of-time implementation (no Python at run time)

# ONNX attribute kinds used here -> (onnx.AttributeProto type name, tensorrt.plugin annotation)
ATTR_KINDS = {
    "int": ("INT", "int"),
    "float": ("FLOAT", "float"),
    "floats": ("FLOATS", "npt.NDArray[np.float32]"),
    "string": ("STRING", "str"),
}
FLOAT_TYPES = ("float", "float16")  # ONNX element type names; TensorRT: FP32, FP16


@dataclass(frozen=True)
class TensorSpec:
    """One input or output. dtypes: allowed ONNX element types (names as in onnx.TensorProto,
    lower case); shape: symbolic shape, one entry per dim ('?' = data dependent)."""

    name: str
    dtypes: tuple[str, ...]
    shape: tuple[str, ...]
    doc: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class AttrSpec:
    """One node attribute: name, kind (a key of ATTR_KINDS) and default value."""

    name: str
    kind: str
    default: object
    doc: str = ""

    @property
    def onnx_type(self) -> str:
        return ATTR_KINDS[self.kind][0]

    @property
    def trt_annotation(self) -> str:
        return ATTR_KINDS[self.kind][1]


@dataclass(frozen=True)
class PluginSchema:
    """One op: ONNX node (domain, op_type, inputs, outputs, attributes) = TensorRT plugin."""

    op_type: str
    torch_op: str  # the torch custom op it exports ("maskrt::roi_align")
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attributes: tuple[AttrSpec, ...]
    doc: str
    domain: str = NAMESPACE
    version: int = DOMAIN_VERSION
    size_tensor_outputs: tuple[str, ...] = field(default=())  # outputs that are TensorRT size tensors
    aot: bool = False  # has a @trtp.aot_impl (one kernel launch); its nodes carry aot=1

    @property
    def parser_attributes(self) -> dict:
        """Node attributes for TensorRT's ONNX parser, not passed to the plugin (name -> value)."""
        return {PLUGIN_NAMESPACE_ATTR: self.domain, **({AOT_ATTR: 1} if self.aot else {})}

    @property
    def plugin_id(self) -> str:
        return f"{self.domain}::{self.op_type}"

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def attr(self, name: str) -> AttrSpec:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(f"{self.op_type} has no attribute {name!r}")


FPN_SCALES = (0.25, 0.125, 0.0625, 0.03125)  # 1 / stride of P2..P5: the standard FPN strides 4..32

ROI_ALIGN = PluginSchema(
    op_type="MultiLevelRoIAlign",
    torch_op="maskrt::roi_align",
    inputs=(
        *(TensorSpec(f"p{k}", FLOAT_TYPES, ("B", "C", f"H{k}", f"W{k}"), f"FPN level P{k}") for k in (2, 3, 4, 5)),
        TensorSpec("rois", ("float",), ("R", "5"), "(batch_index, x1, y1, x2, y2) in input-image pixels"),
    ),
    outputs=(TensorSpec("pooled", FLOAT_TYPES, ("R", "C", "output_size", "output_size"),
                         "features' dtype, float32 accumulation"),),
    attributes=(
        AttrSpec("spatial_scales", "floats", FPN_SCALES, "1 / stride of each level, powers of two"),
        AttrSpec("output_size", "int", 7, "pooled height and width"),
        AttrSpec("sampling_ratio", "int", 2, "samples per bin and axis; <= 0: adaptive"),
        AttrSpec("aligned", "int", 0, "1: half-pixel offset (Detectron2); 0: torchvision Mask R-CNN"),
        AttrSpec("canonical_size", "int", 224, "FPN eq. 1"),
        AttrSpec("canonical_level", "int", 4, "FPN eq. 1"),
        AttrSpec("level_mapper", "string", "torchvision", "FPN level formula: torchvision or detectron2"),
    ),
    doc="Multi-level RoIAlign: each RoI pooled from the FPN level of FPN eq. 1 "
        "(maskrt.kernels.roi_align.reference.roi_align).",
    aot=True,
)

NMS = PluginSchema(
    op_type="BatchedNMS",
    torch_op="maskrt::nms",
    inputs=(
        TensorSpec("boxes", FLOAT_TYPES, ("N", "4"), "xyxy"),
        TensorSpec("scores", FLOAT_TYPES, ("N",)),
        TensorSpec("classes", ("int64",), ("N",), "boxes of different classes never suppress each other"),
    ),
    outputs=(
        TensorSpec("keep", ("int64",), ("?",), "K indices into boxes by decreasing score, K <= min(N, max_output)"),
        TensorSpec("num_kept", ("int32",), (), "K (TensorRT size tensor of `keep`)"),
        TensorSpec("scratch", ("int64",), ("?",), "the kernel's working memory (N + N rounded up to 2048); unused"),
    ),
    attributes=(
        AttrSpec("iou_threshold", "float", 0.5, "suppress IoU > threshold (compared in float32)"),
        AttrSpec("max_output", "int", -1, "keep at most this many; -1: all"),
    ),
    doc="Class-aware greedy NMS with torchvision.ops.batched_nms's kept set and order "
        "(maskrt.kernels.nms.reference.nms).",
    size_tensor_outputs=("num_kept",),
    aot=True,
)

PASTE = PluginSchema(
    op_type="PasteMasks",
    torch_op="maskrt::paste",
    inputs=(
        TensorSpec("masks", FLOAT_TYPES, ("N", "M", "M"), "probabilities over each box"),
        TensorSpec("boxes", ("float",), ("N", "4"), "xyxy in the target image's pixels"),
        TensorSpec("canvas", ("uint8", "float", "float16"), ("H", "W", "Ch"),
                   "gives the output size: e.g. the target image [H, W, 3]; only its shape is read"),
    ),
    outputs=(TensorSpec("pasted", ("bool",), ("N", "H", "W"), "pasted probability > threshold"),),
    attributes=(AttrSpec("threshold", "float", 0.5),
                AttrSpec("mode", "string", "torchvision", "torchvision's paste (> threshold) or detectron2's (>=)")),
    doc="Mask paste with torchvision's paste_masks_in_image numerics (or detectron2's), thresholded "
        "(maskrt.kernels.paste.reference.paste).",
    aot=True,
)

SCHEMAS: dict[str, PluginSchema] = {s.op_type: s for s in (ROI_ALIGN, NMS, PASTE)}
BY_TORCH_OP: dict[str, PluginSchema] = {s.torch_op: s for s in SCHEMAS.values()}


def make_node(schema: PluginSchema, inputs: list[str], outputs: list[str], name: str | None = None, **attrs):
    """onnx.NodeProto for `schema`: every attribute set (defaults filled in), plugin_namespace added.

    Raises ValueError for a wrong number of inputs/outputs, unknown attributes or values that
    do not fit the attribute's kind.
    """
    import onnx

    if len(inputs) != len(schema.inputs) or len(outputs) != len(schema.outputs):
        raise ValueError(f"{schema.op_type} takes {len(schema.inputs)} inputs and {len(schema.outputs)} outputs, "
                         f"got {len(inputs)} and {len(outputs)}")
    unknown = set(attrs) - set(schema.attr_names)
    if unknown:
        raise ValueError(f"{schema.op_type} has no attribute(s) {sorted(unknown)}; it has {list(schema.attr_names)}")
    values = {a.name: _coerce(a, attrs.get(a.name, a.default)) for a in schema.attributes}
    return onnx.helper.make_node(schema.op_type, inputs, outputs, name=name, domain=schema.domain,
                                 **values, **schema.parser_attributes)


def _coerce(spec: AttrSpec, value):
    """Value checked against the attribute kind (so the ONNX attribute gets exactly that type)."""
    if spec.kind == "int":
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"attribute {spec.name} must be an int, got {value!r}")
        return int(value)
    if spec.kind == "float":
        return float(value)
    if spec.kind == "floats":
        return [float(v) for v in value]
    if not isinstance(value, str):
        raise ValueError(f"attribute {spec.name} must be a string, got {value!r}")
    return value


def validate_node(node) -> PluginSchema:
    """Check an onnx.NodeProto of the maskrt domain against its schema; returns the schema.

    Checked: domain, op_type, number of inputs and outputs, attribute names (all of the
    schema's, plus plugin_namespace == domain and aot == 1 for AOT ops, nothing else) and types.
    Raises ValueError describing the first mismatch.
    """
    import onnx

    if node.domain != NAMESPACE or node.op_type not in SCHEMAS:
        raise ValueError(f"node {node.name!r}: {node.domain}::{node.op_type} is not a maskrt plugin op")
    schema = SCHEMAS[node.op_type]
    if len(node.input) != len(schema.inputs) or len(node.output) != len(schema.outputs):
        raise ValueError(f"node {node.name!r}: {len(node.input)} inputs / {len(node.output)} outputs, schema "
                         f"{schema.op_type} has {len(schema.inputs)} / {len(schema.outputs)}")
    attrs = {a.name: a for a in node.attribute}
    expected = set(schema.attr_names) | set(schema.parser_attributes)
    if set(attrs) != expected:
        raise ValueError(f"node {node.name!r}: attributes {sorted(attrs)}, schema wants {sorted(expected)}")
    for spec in schema.attributes:
        kind = onnx.AttributeProto.AttributeType.Name(attrs[spec.name].type)
        if kind != spec.onnx_type:
            raise ValueError(f"node {node.name!r}: attribute {spec.name} is {kind}, schema wants {spec.onnx_type}")
    namespace = onnx.helper.get_attribute_value(attrs[PLUGIN_NAMESPACE_ATTR])
    if namespace != schema.domain.encode():
        raise ValueError(f"node {node.name!r}: plugin_namespace {namespace!r}, expected {schema.domain!r}")
    if schema.aot and onnx.helper.get_attribute_value(attrs[AOT_ATTR]) != 1:
        raise ValueError(f"node {node.name!r}: {AOT_ATTR} must be 1 (the op has an ahead-of-time plugin)")
    return schema


def node_attributes(node) -> dict:
    """The node's schema attributes as Python values (floats lists as tuples, strings as str), parser
    attributes dropped."""
    import onnx

    values = {}
    for a in node.attribute:
        if a.name in (PLUGIN_NAMESPACE_ATTR, AOT_ATTR):
            continue
        v = onnx.helper.get_attribute_value(a)
        values[a.name] = tuple(v) if isinstance(v, list) else v.decode() if isinstance(v, bytes) else v
    return values


# --- onnx: the schemas as onnx.defs.OpSchema (checker) with shape inference -------------------

_ONNX_TYPE_PARAM = "T"  # type parameter shared by the float inputs/outputs of one op


def _type_str(spec: TensorSpec) -> str:
    if spec.dtypes == FLOAT_TYPES:
        return _ONNX_TYPE_PARAM
    if len(spec.dtypes) > 1:
        return f"T_{spec.name}"
    return f"tensor({spec.dtypes[0]})"


def onnx_op_schema(schema: PluginSchema):
    """onnx.defs.OpSchema of one plugin op, with a type and shape inference function.

    Output shapes: a symbol that names an input dim is copied from that input, a digit is a
    constant, an attribute name takes the attribute's value, anything else ('?') is left
    unknown (data dependent). Float outputs take the float inputs' element type.
    """
    import onnx
    from onnx.defs import OpSchema

    params = [*schema.inputs, *schema.outputs]
    constraints = {}
    for spec in params:
        ts = _type_str(spec)
        if not ts.startswith("tensor("):
            constraints[ts] = (ts, [f"tensor({d})" for d in spec.dtypes], spec.doc)
    attrs = [OpSchema.Attribute(a.name, onnx.helper.make_attribute(a.name, _coerce(a, a.default)), a.doc)
             for a in schema.attributes]
    attrs.append(OpSchema.Attribute(PLUGIN_NAMESPACE_ATTR, onnx.helper.make_attribute(PLUGIN_NAMESPACE_ATTR,
                                                                                      schema.domain),
                                    "TensorRT plugin namespace (read by TensorRT's ONNX parser)"))
    if schema.aot:
        attrs.append(OpSchema.Attribute(AOT_ATTR, onnx.helper.make_attribute(AOT_ATTR, 1),
                                        "1: TensorRT's ONNX parser uses the ahead-of-time plugin"))
    op = OpSchema(schema.op_type, schema.domain, schema.version, schema.doc,
                  inputs=[OpSchema.FormalParameter(s.name, _type_str(s), s.doc) for s in schema.inputs],
                  outputs=[OpSchema.FormalParameter(s.name, _type_str(s), s.doc) for s in schema.outputs],
                  type_constraints=list(constraints.values()), attributes=attrs)
    op.set_type_and_shape_inference_function(lambda ctx: _infer(schema, ctx))
    return op


def _infer(schema: PluginSchema, ctx) -> None:
    import numpy as np
    import onnx

    known, float_type = {}, None
    for i, spec in enumerate(schema.inputs):
        tensor = ctx.get_input_type(i).tensor_type
        if spec.dtypes == FLOAT_TYPES and float_type is None:
            float_type = tensor.elem_type
        if tensor.HasField("shape"):
            for symbol, dim in zip(spec.shape, tensor.shape.dim):
                known.setdefault(symbol, dim)
    for j, spec in enumerate(schema.outputs):
        elem = float_type if spec.dtypes == FLOAT_TYPES else onnx.helper.np_dtype_to_tensor_dtype(
            np.dtype(spec.dtypes[0]))
        out = onnx.TypeProto()
        out.tensor_type.elem_type = elem
        out.tensor_type.shape.SetInParent()
        for symbol in spec.shape:
            dim = out.tensor_type.shape.dim.add()
            if symbol.isdigit():
                dim.dim_value = int(symbol)
            elif symbol in schema.attr_names:
                dim.dim_value = int(onnx.helper.get_attribute_value(ctx.get_attribute(symbol)) or
                                    schema.attr(symbol).default)
            elif symbol in known:
                dim.CopyFrom(known[symbol])
        ctx.set_output_type(j, out)


def register_onnx_schemas() -> None:
    """Register the plugin ops with onnx (idempotent) so that onnx.checker validates the nodes'
    attributes and onnx.shape_inference infers their outputs. Process-wide, like onnx's own ops."""
    import onnx
    from onnx.onnx_cpp2py_export.defs import has_schema

    for schema in SCHEMAS.values():
        if not has_schema(schema.op_type, schema.domain):
            onnx.defs.register_schema(onnx_op_schema(schema))
