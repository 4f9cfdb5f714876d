"""The `tensorrt` target's ONNX: the whole detector in one graph, our three ops as plugin nodes.

`TensorRTGraph(model)` is `model.detector.run` for one image rewritten so that tracing records
it completely: sizes come from tensor shapes (dynamic H, W), the per-level top-k uses
k = min(pre_nms_top_n, anchors in the level) as a tensor, anchors are generated from the
feature shapes, and RoIAlign and NMS are torch.ops.maskrt.{roi_align, nms} (exported as
maskrt::MultiLevelRoIAlign / maskrt::BatchedNMS plugin nodes by maskrt.kernels.onnx_symbolics). The dense, box and mask stages are the model's own modules.
`PasteGraph` (a second, small graph: paste.onnx) scales the boxes to the original image and
pastes the masks with maskrt::PasteMasks; it is separate so that the detector graph keeps its
28x28 mask probabilities and the runtime pastes only when full-size masks are asked for.

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
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels import onnx_symbolics, schemas
from ..model import MaskRCNN
from ..model.boxes import decode_boxes, keep_min_size
from ..model.heads import BOX_CODER_WEIGHTS, infer_spatial_scales
from ..model.rpn import flatten_level, grid_anchors

GRAPH_INPUTS = ("images", "image_hw")
GRAPH_OUTPUTS = ("boxes", "scores", "labels", "mask_probs")
PASTE_INPUTS = ("mask_probs", "boxes", "image_hw", "image")
PASTE_OUTPUTS = ("boxes_px", "masks")


def clip_to(boxes: Tensor, hw: Tensor) -> Tensor:
    """clip_boxes with the size as a tensor: Tensor[..., 4] xyxy clamped to [0, w] x [0, h]."""
    size = hw.to(boxes.dtype)
    x = torch.minimum(boxes[..., 0::2].clamp(min=0), size[1])
    y = torch.minimum(boxes[..., 1::2].clamp(min=0), size[0])
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def with_batch_index(boxes: Tensor) -> Tensor:
    """Tensor[N, 4] -> RoIs Tensor[N, 5] (0, x1, y1, x2, y2) of image 0."""
    return torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)


class TensorRTGraph(nn.Module):
    """model.detector.run for one image, export-friendly.

    forward(images: Tensor[1, 3, H, W] normalised and zero-padded to multiples of 32 (float32,
    or float16 with half=True), image_hw: Tensor[2] int64 resized (unpadded) (h, w)) ->
    (boxes Tensor[N, 4] float32 xyxy in resized-image pixels, scores Tensor[N] float32
    descending, labels Tensor[N] int64, mask_probs Tensor[N, M, M] float32, M = 28).
    """

    def __init__(self, model: MaskRCNN, half: bool = False):
        super().__init__()
        stages = (model.dense, model.box, model.mask)
        if half:
            stages = tuple(copy.deepcopy(s).half() for s in stages)
        self.dense, self.box, self.mask = stages
        self.detector = model.detector  # parameters are read at forward time
        self.box_pool, self.mask_pool = model.config.box_pool_size, model.config.mask_pool_size
        self.num_classes = model.config.num_classes
        for i, cells in enumerate(model.cell_anchors):
            self.register_buffer(f"cells{i}", cells.float().clone(), persistent=False)
        self.num_levels = len(model.cell_anchors)

    def forward(self, images: Tensor, image_hw: Tensor):
        outputs = self.dense(images)
        n = self.num_levels
        features, logits, deltas = list(outputs[:-2 * n]), outputs[-2 * n:-n], outputs[-n:]
        if not torch.jit.is_tracing():
            self._check_scales(features, image_hw)
        proposals = self._proposals(logits, deltas, images, image_hw)
        boxes, scores, labels = self._detect(features, proposals, image_hw)
        return boxes, scores, labels, self._mask_probs(features, boxes, labels)

    def _check_scales(self, features: list[Tensor], image_hw: Tensor) -> None:
        hw = (int(image_hw[0]), int(image_hw[1]))
        scales = infer_spatial_scales(features, [hw])
        if tuple(scales) != schemas.FPN_SCALES:
            raise ValueError(f"resized size {hw} makes torchvision infer RoIAlign scales {scales}; the TensorRT graph "
                             f"assumes the standard FPN scales {schemas.FPN_SCALES} (resized height >= 75 px)")

    def _proposals(self, logits, deltas, images: Tensor, image_hw: Tensor) -> Tensor:
        """ProposalFilter for one image -> Tensor[P, 4] float32 proposals, best first."""
        p = self.detector.proposals.params
        boxes, scores, levels = [], [], []
        for i, (lg, dl) in enumerate(zip(logits, deltas)):
            b, s = self._top_level(lg.float(), dl.float(), getattr(self, f"cells{i}"), images)
            boxes.append(b)
            scores.append(s)
            levels.append(torch.full_like(s, i, dtype=torch.int64))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        scores = torch.sigmoid(scores)
        boxes = clip_to(boxes, image_hw)
        keep = keep_min_size(boxes, p.min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.where(scores >= p.score_thresh)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.ops.maskrt.nms(boxes, scores, levels, p.nms_thresh, p.post_nms_top_n)
        return boxes[keep]

    def _top_level(self, logits: Tensor, deltas: Tensor, cells: Tensor, images: Tensor):
        """Top-k anchors of one level, decoded -> (Tensor[k, 4], logits Tensor[k]).

        logits: Tensor[1, A, h, w]; deltas: Tensor[1, 4A, h, w]; stride = padded size // h, w.
        """
        h, w = logits.shape[-2], logits.shape[-1]
        stride = (images.shape[-2] // h, images.shape[-1] // w)
        anchors = grid_anchors(cells, (h, w), stride)
        objectness = flatten_level(logits, 1).flatten(1)
        k = torch.clamp(torch._shape_as_tensor(objectness)[1], max=self.detector.proposals.params.pre_nms_top_n)
        top_logits, top_idx = objectness.topk(k, dim=1)
        index = top_idx[0]  # row selection (Gather), not torch.gather: same values, simpler ONNX
        boxes = decode_boxes(flatten_level(deltas, 4)[0][index], anchors[index], (1.0, 1.0, 1.0, 1.0))[:, 0]
        return boxes, top_logits[0]

    def _pool(self, features: list[Tensor], boxes: Tensor, size: int) -> Tensor:
        sampling = self.detector.detection_params.sampling_ratio
        return torch.ops.maskrt.roi_align(features, with_batch_index(boxes), list(schemas.FPN_SCALES), size,
                                          sampling, False)

    def _detect(self, features: list[Tensor], proposals: Tensor, image_hw: Tensor):
        """Box head + RoIHeads._postprocess -> (boxes Tensor[N, 4], scores Tensor[N], labels Tensor[N])."""
        p = self.detector.detection_params
        class_logits, box_regression = self.box(self._pool(features, proposals, self.box_pool))
        class_logits, box_regression = class_logits.float(), box_regression.float()
        boxes = clip_to(decode_boxes(box_regression, proposals, BOX_CODER_WEIGHTS), image_hw)
        scores = F.softmax(class_logits, -1)
        labels = torch.arange(self.num_classes, device=scores.device).view(1, -1).expand_as(scores)
        boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
        keep = torch.where(scores > p.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = keep_min_size(boxes, p.min_box_size)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = torch.ops.maskrt.nms(boxes, scores, labels, p.nms_thresh, p.detections_per_img)
        return boxes[keep], scores[keep], labels[keep]

    def _mask_probs(self, features: list[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """Mask head on the detections -> sigmoid of each one's own class Tensor[N, M, M] float32."""
        logits = self.mask(self._pool(features, boxes, self.mask_pool))
        index = torch.arange(labels.shape[0], device=labels.device)
        return logits[index, labels].float().sigmoid()


class PasteGraph(nn.Module):
    """Boxes to the original image and mask paste (paste.onnx).

    forward(mask_probs Tensor[N, M, M], boxes Tensor[N, 4] float32 in resized pixels (the
    detector graph's outputs), image_hw Tensor[2] int64 resized (h, w), image Tensor[H, W, 3]
    uint8 original image (only its shape is used)) -> (boxes_px Tensor[N, 4] float32 in original
    pixels (model.boxes.scale_boxes numerics), masks Tensor[N, H, W] bool (paste > threshold)).
    """

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold

    def forward(self, mask_probs: Tensor, boxes: Tensor, image_hw: Tensor, image: Tensor):
        original = torch._shape_as_tensor(image)[:2].to(torch.float32)
        ratio = original / image_hw.to(torch.float32)
        x1, y1, x2, y2 = boxes.unbind(1)
        boxes_px = torch.stack((x1 * ratio[1], y1 * ratio[0], x2 * ratio[1], y2 * ratio[0]), dim=1)
        return boxes_px, onnx_symbolics.paste_onto(mask_probs, boxes_px, image, self.threshold)


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


def export_paste_onnx(path: str | Path, threshold: float = 0.5, mask_size: int = 28) -> Path:
    """Write PasteGraph to `path` (dynamic N, H, W)."""
    onnx_symbolics.register()
    g = torch.Generator().manual_seed(0)
    example = (torch.rand((2, mask_size, mask_size), generator=g), torch.tensor([[4.0, 6, 40, 50], [10, 12, 30, 20]]),
               torch.tensor([64, 96]), torch.zeros((80, 120, 3), dtype=torch.uint8))
    axes = {"mask_probs": {0: "detections"}, "boxes": {0: "detections"}, "image": {0: "height", 1: "width"},
            "boxes_px": {0: "detections"}, "masks": {0: "detections", 1: "height", 2: "width"}}
    _export(PasteGraph(threshold), example, Path(path), PASTE_INPUTS, PASTE_OUTPUTS, axes)
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
                   canonical_level):
    from ..kernels.roi_align.reference import roi_align

    features = [torch.from_numpy(f) for f in (p2, p3, p4, p5)]
    out = roi_align(features, torch.from_numpy(rois), list(spatial_scales), output_size, sampling_ratio,
                    bool(aligned), canonical_size, canonical_level)
    return (out.numpy(),)


def _ref_nms(boxes, scores, classes, iou_threshold, max_output):
    import numpy as np

    from ..kernels.nms.reference import nms

    keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou_threshold, max_output)
    return keep.numpy().astype(np.int64), np.array(keep.shape[0], dtype=np.int32)


def _ref_paste(masks, boxes, canvas, threshold):
    from ..kernels.paste.reference import paste

    pasted = paste(torch.from_numpy(masks), torch.from_numpy(boxes), canvas.shape[0], canvas.shape[1], threshold)
    return (pasted.numpy(),)


REFERENCE_IMPLS = {schemas.ROI_ALIGN.op_type: _ref_roi_align, schemas.NMS.op_type: _ref_nms,
                   schemas.PASTE.op_type: _ref_paste}


def reference_ops() -> list[type]:
    """onnx.reference OpRun classes for the plugin ops (one per schema, op_domain = "maskrt"),
    computed by maskrt's reference kernels (torchvision) on torch tensors. For
    onnx.reference.ReferenceEvaluator(model, new_ops=reference_ops())."""
    from onnx.reference.op_run import OpRun

    def make(schema: schemas.PluginSchema) -> type:
        impl = REFERENCE_IMPLS[schema.op_type]

        def _run(self, *inputs, **attrs):
            for name in schema.parser_attributes:
                attrs.pop(name, None)
            missing = set(schema.attr_names) - set(attrs)
            if len(inputs) != len(schema.inputs) or missing:
                raise ValueError(f"{schema.op_type}: {len(inputs)} inputs, missing attributes {sorted(missing)}")
            return impl(*inputs, **attrs)

        return type(schema.op_type, (OpRun,), {"op_domain": schema.domain, "_run": _run})

    return [make(s) for s in schemas.SCHEMAS.values()]
