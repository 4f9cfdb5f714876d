"""ONNX export of torch.ops.maskrt.{roi_align, nms, paste} as TensorRT plugin nodes.

Exporter: the TorchScript (tracing) exporter, `torch.onnx.export(..., dynamo=False)`, with
`torch.onnx.register_custom_op_symbolic`. Chosen over the dynamo exporter because the graph
around the ops is full of data-dependent sizes (boolean filtering, NMS results feeding
indexing): tracing records them as ONNX NonZero/Gather/TopK with dynamic shapes without any
guard on unbacked sizes, and it is the exporter the stage ONNX (builders/onnx_export.py)
already uses. Export with `custom_opsets={"maskrt": 1}` (see `CUSTOM_OPSETS`).

Every node comes from `maskrt.tensorrt.schemas` (op type, domain, attribute names, kinds and
defaults, output count), so the nodes validate against the same records that generate the
TensorRT plugin registrations in `plugins.py`:
- roi_align(features, rois, spatial_scales, output_size, ...) -> maskrt::MultiLevelRoIAlign
  with the 4 levels as separate inputs (p2, p3, p4, p5, rois);
- nms(boxes, scores, classes, iou_threshold, max_output) -> maskrt::BatchedNMS; its second
  output (num_kept, the TensorRT size tensor) and third (scratch) are not used by the graph;
- paste(masks, boxes, height, width, threshold) -> maskrt::PasteMasks. A plugin can only take
  output sizes from input shapes, so the node's third input is a tensor [H, W, ...] of which
  only the shape is read. The tracer bakes int arguments of custom ops into constants, so
  torch.ops.maskrt.paste exports with a fixed size (canvas = ConstantOfShape -> empty
  [H, W, 0] uint8); for a size that follows an input image, call `paste_onto(masks, boxes,
  image)` instead: eager it is torch.ops.maskrt.paste at image.shape[:2], exported it is
  PasteMasks(masks, boxes, image) (a torch.autograd.Function with a `symbolic`).
Scalar arguments must be constants at export time (they are node attributes).
"""

from __future__ import annotations

from . import schemas

OPSET = 17
CUSTOM_OPSETS = {schemas.NAMESPACE: schemas.DOMAIN_VERSION}
_SUFFIX = {"int": "i", "float": "f", "floats": "f", "string": "s"}
_registered: set[int] = set()


def _attrs(schema: schemas.PluginSchema, values: dict) -> dict:
    """Schema attributes as g.op keyword arguments (name_i / name_f / name_s), defaults filled in."""
    out = {}
    for spec in schema.attributes:
        value = schemas._coerce(spec, values.get(spec.name, spec.default))
        out[f"{spec.name}_{_SUFFIX[spec.kind]}"] = value
    for name, value in schema.parser_attributes.items():
        out[f"{name}_{'s' if isinstance(value, str) else 'i'}"] = value
    return out


def _op(g, schema: schemas.PluginSchema, inputs: list, values: dict):
    """One plugin node; returns its outputs (a Value, or a tuple when the schema has several)."""
    name = f"{schema.domain}::{schema.op_type}"
    return g.op(name, *inputs, outputs=len(schema.outputs), **_attrs(schema, values))


def roi_align_symbolic(g, features, rois, spatial_scales, output_size, sampling_ratio, aligned,
                       canonical_size, canonical_level, level_mapper):
    """maskrt::roi_align -> MultiLevelRoIAlign(p2, p3, p4, p5, rois): Tensor[R, C, S, S]."""
    from torch.onnx import symbolic_helper as sh

    levels = sh._unpack_list(features)
    scales = sh._parse_arg(spatial_scales, "fs")
    n_levels = len(schemas.ROI_ALIGN.inputs) - 1
    if len(levels) != n_levels or len(scales) != n_levels:
        raise ValueError(f"MultiLevelRoIAlign takes {n_levels} FPN levels, got {len(levels)} features and "
                         f"{len(scales)} scales")
    size = sh._parse_arg(output_size, "i")
    values = dict(spatial_scales=scales, output_size=size, sampling_ratio=sh._parse_arg(sampling_ratio, "i"),
                  aligned=int(sh._parse_arg(aligned, "b")), canonical_size=sh._parse_arg(canonical_size, "i"),
                  canonical_level=sh._parse_arg(canonical_level, "i"), level_mapper=sh._parse_arg(level_mapper, "s"))
    out = _op(g, schemas.ROI_ALIGN, [*levels, rois], values)
    channels = levels[0].type().varyingSizes()[1] if levels[0].type().varyingSizes() else None
    out.setType(levels[0].type().with_sizes([None, channels, size, size]))
    return out


def nms_symbolic(g, boxes, scores, classes, iou_threshold, max_output):
    """maskrt::nms -> BatchedNMS(boxes, scores, classes): keep Tensor[K] int64 (+ num_kept, scratch: unused)."""
    import torch
    from torch.onnx import symbolic_helper as sh

    if classes.type().scalarType() != "Long":
        classes = g.op("Cast", classes, to_i=7)  # TensorProto.INT64
    from ..kernels.nms.common import float32_threshold

    # float32 attribute t with (iou > t) == (iou > threshold as double) for every float32 iou
    values = dict(iou_threshold=float32_threshold(sh._parse_arg(iou_threshold, "f")),
                  max_output=sh._parse_arg(max_output, "i"))
    keep, num_kept, scratch = _op(g, schemas.NMS, [boxes, scores, classes], values)
    keep.setType(boxes.type().with_dtype(torch.int64).with_sizes([None]))
    num_kept.setType(boxes.type().with_dtype(torch.int32).with_sizes([]))
    scratch.setType(boxes.type().with_dtype(torch.int64).with_sizes([None]))
    return keep


def paste_symbolic(g, masks, boxes, height, width, threshold, mode):
    """maskrt::paste -> PasteMasks(masks, boxes, canvas [H, W, 0] uint8): Tensor[N, H, W] bool."""
    import torch
    from torch.onnx import symbolic_helper as sh

    dims = [_as_int64_1d(g, v) for v in (height, width)]
    dims.append(g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64)))
    fill = torch.zeros(1, dtype=torch.uint8)
    canvas = g.op("ConstantOfShape", g.op("Concat", *dims, axis_i=0), value_t=fill)
    out = _op(g, schemas.PASTE, [masks, boxes, canvas], dict(threshold=sh._parse_arg(threshold, "f"),
                                                             mode=sh._parse_arg(mode, "s")))
    out.setType(masks.type().with_dtype(torch.bool).with_sizes([None, None, None]))
    return out


class _PasteOnto:
    """torch.autograd.Function (built on first use): eager paste at image.shape[:2], exported as PasteMasks."""

    fn = None

    @classmethod
    def get(cls):
        import torch

        if cls.fn is None:
            class PasteOnto(torch.autograd.Function):
                @staticmethod
                def forward(ctx, masks, boxes, image, threshold: float, mode: str):
                    return torch.ops.maskrt.paste(masks, boxes, int(image.shape[0]), int(image.shape[1]), threshold,
                                                  mode)

                @staticmethod
                def symbolic(g, masks, boxes, image, threshold, mode):
                    out = _op(g, schemas.PASTE, [masks, boxes, image], dict(threshold=threshold, mode=mode))
                    out.setType(masks.type().with_dtype(torch.bool).with_sizes([None, None, None]))
                    return out

            cls.fn = PasteOnto
        return cls.fn


def paste_onto(masks, boxes, image, threshold: float = 0.5, mode: str = "torchvision"):
    """Paste masks Tensor[N, M, M] at boxes Tensor[N, 4] into an image-sized Tensor[N, H, W] bool,
    H, W = image.shape[:2] (image: Tensor[H, W, ...], e.g. the uint8 frame; values unused); mode:
    the paste's ("torchvision" or "detectron2", maskrt.kernels.paste)."""
    return _PasteOnto.get().apply(masks, boxes, image, float(threshold), str(mode))


def _as_int64_1d(g, value):
    """A size argument (constant int, or a traced int/0-d tensor) as an int64 Tensor[1]."""
    import torch
    from torch.onnx import symbolic_helper as sh

    if sh._is_constant(value):
        return g.op("Constant", value_t=torch.tensor([sh._parse_arg(value, "i")], dtype=torch.int64))
    value = g.op("Cast", value, to_i=7)
    return g.op("Reshape", value, g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)))


SYMBOLICS = {
    schemas.ROI_ALIGN.torch_op: roi_align_symbolic,
    schemas.NMS.torch_op: nms_symbolic,
    schemas.PASTE.torch_op: paste_symbolic,
}


def register(opset: int = OPSET) -> None:
    """Register the three symbolics for `opset` with the TorchScript exporter (idempotent)."""
    import torch

    from ..kernels import library  # noqa: F401  (defines torch.ops.maskrt.*)

    if opset in _registered:
        return
    for op, fn in SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(op, fn, opset)
    _registered.add(opset)
