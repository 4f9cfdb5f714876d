"""The `tensorrt` target's ONNX: the whole detector in one graph, our three ops as plugin nodes.

`TensorRTGraph(model)` traces the model's own `Detector.run` for one image (maskrt.model's
ProposalFilter and RoIHeads are written so that tracing records them completely: sizes from
tensor shapes (dynamic H, W), the per-level top-k count as a tensor, anchors from the feature
shapes, RoIAlign and NMS as torch.ops.maskrt.{roi_align, nms}, exported as
maskrt::MultiLevelRoIAlign / maskrt::BatchedNMS plugin nodes by onnx_symbolics). The dense, box
and mask stages are the model's own modules. So a change to the glue reaches the CPU engine,
the torch backend and this graph alike (tests/tensorrt/test_onnx_graph.py checks they agree).
`PasteGraph` (a second, small graph: paste.onnx) scales the boxes to the original image and
pastes the masks with maskrt::PasteMasks; it is separate so that the detector graph keeps its
28x28 mask probabilities (the runtime pastes with the fused Triton paste on the GPU).

Assumptions, stated:
- Batch is 1: the graph takes Tensor[1, 3, H, W]; the runtime loops over images.
- RoIAlign uses the standard FPN strides 4..32 (spatial scales 1/4..1/32, schemas.FPN_SCALES).
  The eager model infers them as torchvision does, 2 ** round(log2(H_l / h)) with h the
  resized (unpadded) height; that gives the standard scales whenever h > padded_h / sqrt(2),
  i.e. always for h >= 75 px. For smaller h (extreme aspect ratios) torchvision's inference
  picks other scales; the eager forward refuses such inputs (ValueError), the export cannot
  check them.
- Detection parameters (thresholds, top-n) are read at forward time, so they are baked into
  the ONNX at export: set them (model.detector.set_score_threshold, ...) before exporting.
Numerics: box arithmetic (anchors, decode, clip, softmax, sigmoid) always runs in float32 (for
an fp16 graph the stage outputs are cast up), so the fp32 graph equals the eager model; the
fp16 graph (`half=True`: fp16 stages and features, fp16 `images` input) keeps fp32 boxes.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..model import MaskRCNN
from ..model.boxes import clip_boxes
from ..model.heads import infer_spatial_scales
from ..model.network import Detector
from . import onnx_symbolics, schemas

GRAPH_INPUTS = ("images", "image_hw")
GRAPH_OUTPUTS = ("boxes", "scores", "labels", "mask_probs")
PASTE_INPUTS = ("mask_probs", "boxes", "image_hw", "image")
PASTE_OUTPUTS = ("boxes_px", "masks")


class TensorRTGraph(nn.Module):
    """The model's own Detector.run for one image, as one traceable module.

    forward(images: Tensor[1, 3, H, W] normalised and zero-padded to multiples of 32 (float32,
    or float16 with half=True), image_hw: Tensor[2] int64 resized (unpadded) (h, w)) ->
    (boxes Tensor[N, 4] float32 xyxy in resized-image pixels, scores Tensor[N] float32
    descending, labels Tensor[N] int64, mask_probs Tensor[N, M, M] float32, M = 28).

    No glue of its own: the proposals, RoIAlign, decoding, NMS and mask selection are
    maskrt.model's (ProposalFilter, RoIHeads), which accept a traced graph's tensor sizes and call
    torch.ops.maskrt.* when traced; this module only holds the stages (fp16 copies with half=True)
    and fixes the RoIAlign scales to the standard FPN ones (checked when run eagerly).
    """

    def __init__(self, model: MaskRCNN, half: bool = False):
        super().__init__()
        stages = (model.dense, model.box, model.mask)
        if half:
            stages = tuple(copy.deepcopy(s).half() for s in stages)
        self.dense, self.box, self.mask = stages
        source = model.detector
        self.detector = Detector(self.dense, self.box, self.mask, model.cell_anchors, model.config, source.policy,
                                 source.proposals.params, source.detection_params)

    def forward(self, images: Tensor, image_hw: Tensor):
        if not torch.jit.is_tracing():
            self._check_scales(images, image_hw)
        (result,) = self.detector.run(images, [image_hw], spatial_scales=list(schemas.FPN_SCALES))
        return result

    def _check_scales(self, images: Tensor, image_hw: Tensor) -> None:
        hw = (int(image_hw[0]), int(image_hw[1]))
        level_shapes = [torch.empty(1, 1, images.shape[-2] // round(1 / s), 1) for s in schemas.FPN_SCALES]
        scales = infer_spatial_scales(level_shapes, [hw])
        if tuple(scales) != schemas.FPN_SCALES:
            raise ValueError(f"resized size {hw} makes torchvision infer RoIAlign scales {scales}; the TensorRT graph "
                             f"assumes the standard FPN scales {schemas.FPN_SCALES} (resized height >= 75 px)")


class PasteGraph(nn.Module):
    """Boxes to the original image and mask paste (paste.onnx).

    forward(mask_probs Tensor[N, M, M], boxes Tensor[N, 4] float32 in resized pixels (the
    detector graph's outputs), image_hw Tensor[2] int64 resized (h, w), image Tensor[H, W, 3]
    uint8 original image (only its shape is used)) -> (boxes_px Tensor[N, 4] float32 in original
    pixels (model.boxes.scale_boxes numerics), masks Tensor[N, H, W] bool (paste > threshold)).
    mode "detectron2": detectron2's rescale (float32 of the float64 ratio, model.boxes.
    detectron2_rescale), clipped to the image, and its paste (>= threshold); detections whose box
    is empty after clipping get empty masks here (detectron2 drops them: the runtime does).
    """

    def __init__(self, threshold: float = 0.5, mode: str = "torchvision"):
        super().__init__()
        self.threshold, self.mode = threshold, mode

    def forward(self, mask_probs: Tensor, boxes: Tensor, image_hw: Tensor, image: Tensor):
        shape = torch._shape_as_tensor(image)[:2]
        if self.mode == "detectron2":
            ratio = (shape.to(torch.float64) / image_hw.to(torch.float64)).to(torch.float32)
        else:
            ratio = shape.to(torch.float32) / image_hw.to(torch.float32)
        x1, y1, x2, y2 = boxes.unbind(1)
        boxes_px = torch.stack((x1 * ratio[1], y1 * ratio[0], x2 * ratio[1], y2 * ratio[0]), dim=1)
        if self.mode == "detectron2":
            boxes_px = clip_boxes(boxes_px, shape)
        return boxes_px, onnx_symbolics.paste_onto(mask_probs, boxes_px, image, self.threshold, self.mode)


def example_inputs(model: MaskRCNN, half: bool = False, hw: tuple[int, int] = (256, 320)):
    """Seeded tracing inputs: (images Tensor[1, 3, H, W], image_hw Tensor[2] int64)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn((1, 3, *hw), generator=g)
    return images.half() if half else images, torch.tensor(hw, dtype=torch.int64)


def export_trt_onnx(model: MaskRCNN, path: str | Path, half: bool = False, hw: tuple[int, int] = (256, 320)) -> Path:
    """Write the detector graph (TensorRTGraph) to `path`: dynamic H and W, batch 1, opset 17 +
    the maskrt domain. half: fp16 stages and `images` input (TensorRT 11 has no FP16 builder
    flag: networks are strongly typed). Returns the path; see `check_trt_onnx`."""
    onnx_symbolics.register()
    graph = TensorRTGraph(model, half=half).eval()
    axes = {"images": {2: "height", 3: "width"}, "boxes": {0: "detections"}, "scores": {0: "detections"},
            "labels": {0: "detections"}, "mask_probs": {0: "detections"}}
    _export(graph, example_inputs(model, half, hw), Path(path), GRAPH_INPUTS, GRAPH_OUTPUTS, axes)
    return Path(path)


def export_paste_onnx(path: str | Path, threshold: float = 0.5, mask_size: int = 28, mode: str = "torchvision") -> Path:
    """Write PasteGraph to `path` (dynamic N, H, W); mode: the model's numerics."""
    onnx_symbolics.register()
    g = torch.Generator().manual_seed(0)
    example = (torch.rand((2, mask_size, mask_size), generator=g), torch.tensor([[4.0, 6, 40, 50], [10, 12, 30, 20]]),
               torch.tensor([64, 96]), torch.zeros((80, 120, 3), dtype=torch.uint8))
    axes = {"mask_probs": {0: "detections"}, "boxes": {0: "detections"}, "image": {0: "height", 1: "width"},
            "boxes_px": {0: "detections"}, "masks": {0: "detections", 1: "height", 2: "width"}}
    _export(PasteGraph(threshold, mode), example, Path(path), PASTE_INPUTS, PASTE_OUTPUTS, axes)
    return Path(path)


def _export(module: nn.Module, example: tuple, path: Path, inputs, outputs, axes: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=onnx_symbolics.OPSET,
                          input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes,
                          custom_opsets=onnx_symbolics.CUSTOM_OPSETS, do_constant_folding=True)


def check_trt_onnx(path: str | Path) -> list:
    """onnx.checker (full) + strict shape inference with the plugin schemas registered, and every
    maskrt-domain node validated against schemas.py. Returns the plugin nodes; raises on failure."""
    import onnx

    schemas.register_onnx_schemas()
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    domains = {o.domain: o.version for o in model.opset_import}
    if domains.get(schemas.NAMESPACE) != schemas.DOMAIN_VERSION:
        raise ValueError(f"{path}: opset_import does not declare {schemas.NAMESPACE} v{schemas.DOMAIN_VERSION}")
    nodes = [n for n in model.graph.node if n.domain == schemas.NAMESPACE]
    for node in nodes:
        schemas.validate_node(node)
    return nodes


# --- CPU execution of the plugin ONNX: onnx.reference with the plugin ops as new_ops ----------

def _ref_roi_align(p2, p3, p4, p5, rois, spatial_scales, output_size, sampling_ratio, aligned, canonical_size,
                   canonical_level, level_mapper):
    from ..kernels.roi_align.reference import roi_align

    features = [torch.from_numpy(f) for f in (p2, p3, p4, p5)]
    out = roi_align(features, torch.from_numpy(rois), list(spatial_scales), output_size, sampling_ratio,
                    bool(aligned), canonical_size, canonical_level, _text(level_mapper))
    return (out.numpy(),)


def _text(value) -> str:
    """A string attribute as onnx.reference passes it (bytes or str) -> str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _ref_nms(boxes, scores, classes, iou_threshold, max_output):
    import numpy as np

    from ..kernels.nms.reference import nms

    from .aot import INT_OPS, scratch_size

    keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou_threshold, max_output)
    scratch = np.zeros(scratch_size(INT_OPS, boxes.shape[0]), dtype=np.int64)
    return keep.numpy().astype(np.int64), np.array(keep.shape[0], dtype=np.int32), scratch


def _ref_paste(masks, boxes, canvas, threshold, mode):
    from ..kernels.paste.reference import paste

    pasted = paste(torch.from_numpy(masks), torch.from_numpy(boxes), canvas.shape[0], canvas.shape[1], threshold,
                   _text(mode))
    return (pasted.numpy(),)


REFERENCE_IMPLS = {schemas.ROI_ALIGN.op_type: _ref_roi_align, schemas.NMS.op_type: _ref_nms,
                   schemas.PASTE.op_type: _ref_paste}


def _aot_impl(schema: schemas.PluginSchema):
    """The plugin's AOT launch (maskrt.tensorrt.aot.run) on CPU tensors, under TRITON_INTERPRET=1:
    what the plan runs (RoIAlign in the interpreter's large tiles: the same code per element, far
    fewer programs), with torchvision's CPU switch for NMS's coordinate trick (as the CPU reference
    it is compared with)."""
    import numpy as np

    from . import aot

    def impl(*inputs, **attrs):
        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        extra = {"TRICK_LIMIT": 4000} if schema is schemas.NMS else {}
        return tuple(t.numpy() for t in aot.run(schema, tensors, attrs, tiles="interpreter", **extra))

    return impl


def reference_ops(plugins: str = "reference") -> list[type]:
    """onnx.reference OpRun classes for the plugin ops (one per schema, op_domain = "maskrt"),
    computed by maskrt's reference kernels (torchvision) on torch tensors, or with plugins="aot"
    by the plugins' ahead-of-time launches under the Triton interpreter (the plan's kernels, grids
    and arguments). For onnx.reference.ReferenceEvaluator(model, new_ops=reference_ops())."""
    from onnx.reference.op_run import OpRun

    def make(schema: schemas.PluginSchema) -> type:
        impl = REFERENCE_IMPLS[schema.op_type] if plugins == "reference" else _aot_impl(schema)

        def _run(self, *inputs, **attrs):
            for name in schema.parser_attributes:
                attrs.pop(name, None)
            missing = set(schema.attr_names) - set(attrs)
            if len(inputs) != len(schema.inputs) or missing:
                raise ValueError(f"{schema.op_type}: {len(inputs)} inputs, missing attributes {sorted(missing)}")
            return impl(*inputs, **attrs)

        return type(schema.op_type, (OpRun,), {"op_domain": schema.domain, "_run": _run})

    return [make(s) for s in schemas.SCHEMAS.values()]
