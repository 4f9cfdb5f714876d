"""detectron2 state dicts: which model a checkpoint holds, its architecture, and its weights under
the torchvision module names maskrt builds (maskrt.model.arch).

Only Mask R-CNN with a ResNet / ResNeXt FPN backbone (detectron2's GeneralizedRCNN with
build_resnet_fpn_backbone, StandardRPNHead, FastRCNNConvFCHead with two fc layers and
MaskRCNNConvUpsampleHead) is built; every other detectron2 model is refused in one line naming
it. Names map one to one (`to_torchvision_name` / `to_detectron2_name`), and three tensors
change layout: detectron2 puts the background class last in `cls_score` (moved to row 0, as
torchvision has it), has no background rows in a class-specific `bbox_pred` (4 zero rows are
prepended) nor a background channel in a class-specific mask `predictor` (a zero channel is
prepended). The background rows only feed outputs that are discarded.
"""

from __future__ import annotations

import re

import torch

from ...errors import CheckpointError
from ..arch import ArchConfig, _indices, check_keys

BODY = "backbone.bottom_up."
# key prefix or fragment -> the detectron2 model it belongs to (none of them Mask R-CNN R-FPN)
_OTHER_MODELS = (
    ("head.cls_subnet.", "a RetinaNet"),
    ("roi_heads.keypoint_head.", "a Keypoint R-CNN"),
    ("roi_heads.box_head.0.", "a Cascade R-CNN"),
    ("roi_heads.box_predictor.0.", "a Cascade R-CNN"),
    ("roi_heads.mask_head.point_head.", "a PointRend"),
    ("roi_heads.mask_point_head.", "a PointRend"),
    ("roi_heads.densepose", "a DensePose"),
    ("sem_seg_head.", "a Panoptic FPN / semantic segmentation"),
    ("roi_heads.res5.", "a C4 (Res5ROIHeads)"),
    ("backbone.res", "a C4 / DC5 (no FPN)"),
    ("backbone.stem.", "a C4 / DC5 (no FPN)"),
    ("backbone.net.", "a ViTDet"),
    ("backbone.bottom_up.stem.conv.", "a RegNet"),
    ("backbone.bottom_up.s1.", "a RegNet"),
    ("backbone.top_block.p6.", "a RetinaNet-style (P6/P7) FPN"),
)
_UNSUPPORTED_PARTS = (
    (".conv2_offset.", "deformable convolutions"),
    ("backbone.fpn_lateral2.norm.", "a normalised FPN (GN / SyncBN config)"),
    ("roi_heads.box_head.conv1.", "a box head with convolutions (4conv1fc)"),
    ("roi_heads.mask_head.mask_fcn1.norm.", "a normalised mask head (GN config)"),
    ("roi_heads.box_head.fc3.", "a box head with more than two fc layers"),
)
_RESNETS = {("basic", (2, 2, 2, 2)): 18, ("basic", (3, 4, 6, 3)): 34, ("bottleneck", (3, 4, 6, 3)): 50,
            ("bottleneck", (3, 4, 23, 3)): 101, ("bottleneck", (3, 8, 36, 3)): 152}
# What detectron2's own loader ignores too: BN counters, and buffers older detectron2 versions saved
# (cell anchors; pixel_mean / pixel_std, today non-persistent: the config's values are used)
_IGNORED = re.compile(r"(\.num_batches_tracked|^proposal_generator\.anchor_generator\.cell_anchors\.\d+|"
                      r"^pixel_(mean|std))$")


def is_detectron2_state_dict(sd: dict) -> bool:
    """True when the names are detectron2's (any of its detector layouts), not torchvision's."""
    roots = ("backbone.bottom_up.", "backbone.fpn_", "proposal_generator.", "head.cls_subnet.", "backbone.res",
             "backbone.stem.", "backbone.net.", "sem_seg_head.")
    return any(isinstance(k, str) and k.startswith(roots) for k in sd)


def check_model_kind(sd: dict, source: str) -> None:
    """One-line CheckpointError for a detectron2 checkpoint of any model but Mask R-CNN R-FPN."""
    keys = list(sd)
    for prefix, what in _OTHER_MODELS:
        if any(k.startswith(prefix) for k in keys):
            raise CheckpointError(f"{source} is {what} detectron2 checkpoint, not Mask R-CNN; maskrt builds Mask R-CNN "
                                  "with a ResNet/ResNeXt FPN backbone only")
    for part, what in _UNSUPPORTED_PARTS:
        if any(part in k for k in keys):
            raise CheckpointError(f"{source}: detectron2 Mask R-CNN with {what} is not supported (maskrt builds the "
                                  "model zoo's R/X-FPN layout)")
    if not any(k.startswith("roi_heads.mask_head.") for k in keys):
        raise CheckpointError(f"{source} is a Faster R-CNN detectron2 checkpoint (no mask head), not Mask R-CNN")


def infer_config(sd: dict[str, torch.Tensor], source: str, stride_in_1x1: bool) -> ArchConfig:
    """The architecture a detectron2 Mask R-CNN R-FPN state dict describes (names and shapes only).
    stride_in_1x1 (not in the weights) comes from the config or the model zoo's default."""
    check_model_kind(sd, source)
    shape = _shapes(sd, source)
    counts = tuple(len(_indices(sd, rf"{BODY}res{s}\.(\d+)\.conv1\.weight")) for s in (2, 3, 4, 5))
    block = "bottleneck" if f"{BODY}res2.0.conv3.weight" in sd else "basic"
    if (block, counts) not in _RESNETS:
        raise CheckpointError(f"{source}: unsupported ResNet body: {block} blocks {list(counts)} per stage")
    stem = shape(f"{BODY}stem.conv1.weight")[0]
    if stem != 64:
        raise CheckpointError(f"{source}: a stem of {stem} channels (STEM_OUT_CHANNELS); maskrt builds 64")
    width = shape(f"{BODY}res2.0.conv1.weight")[0]
    groups = width // shape(f"{BODY}res2.0.conv2.weight")[1] if block == "bottleneck" else 1
    res2_out = shape(f"{BODY}res2.0.conv3.weight" if block == "bottleneck" else f"{BODY}res2.0.conv2.weight")[0]
    if res2_out != (256 if block == "bottleneck" else 64):
        raise CheckpointError(f"{source}: res2 has {res2_out} output channels (RES2_OUT_CHANNELS); maskrt builds "
                              f"{256 if block == 'bottleneck' else 64} for this depth")
    if _indices(sd, r"backbone\.fpn_lateral(\d+)\.weight") != [2, 3, 4, 5]:
        raise CheckpointError(f"{source}: the FPN must take res2..res5 (fpn_lateral2..5)")
    anchors = shape("proposal_generator.rpn_head.objectness_logits.weight")[0]
    if anchors != 3 or shape("proposal_generator.rpn_head.anchor_deltas.weight")[0] != 12:
        raise CheckpointError(f"{source}: an RPN with {anchors} anchors per location (the model zoo's 3, "
                              "4 box deltas each, are supported)")
    fpn = shape("backbone.fpn_output2.weight")[0]
    rep = shape("roi_heads.box_head.fc2.weight")[0]
    fan_in = shape("roi_heads.box_head.fc1.weight")[1]
    pool = round((fan_in / fpn) ** 0.5)
    if pool * pool * fpn != fan_in or shape("roi_heads.box_head.fc1.weight")[0] != rep:
        raise CheckpointError(f"{source}: box head fc1 {list(shape('roi_heads.box_head.fc1.weight'))} does not take "
                              f"{fpn} x S x S pooled features into {rep}")
    classes = shape("roi_heads.box_predictor.cls_score.weight")[0]
    box_rows = shape("roi_heads.box_predictor.bbox_pred.weight")[0]
    if box_rows not in (4, 4 * (classes - 1)):
        raise CheckpointError(f"{source}: bbox_pred has {box_rows} rows; {classes - 1} classes need "
                              f"{4 * (classes - 1)} (or 4: class-agnostic)")
    mask_rows = shape("roi_heads.mask_head.predictor.weight")[0]
    if mask_rows not in (1, classes - 1):
        raise CheckpointError(f"{source}: the mask predictor has {mask_rows} outputs; {classes - 1} classes need "
                              f"{classes - 1} (or 1: class-agnostic)")
    convs = _indices(sd, r"roi_heads\.mask_head\.mask_fcn(\d+)\.weight")
    return ArchConfig(
        depth=_RESNETS[(block, counts)], fpn_channels=fpn, num_classes=classes, backbone_norm="frozen", fpn_norm=False,
        rpn_conv_depth=1, box_head="mlp", box_conv_layers=(), representation_size=rep, box_head_norm=False,
        mask_layers=tuple(shape(f"roi_heads.mask_head.mask_fcn{i}.weight")[0] for i in convs), mask_head_norm=False,
        mask_dim_reduced=shape("roi_heads.mask_head.deconv.weight")[1], box_pool_size=pool, groups=groups,
        width_per_group=width // groups, stride_in_1x1=stride_in_1x1 and block == "bottleneck",
        box_agnostic=box_rows == 4, mask_agnostic=mask_rows == 1, numerics="detectron2")


# detectron2 name <-> torchvision name, as (detectron2 pattern, torchvision pattern); {s} is the
# ResNet stage (res2..res5 <-> layer1..layer4), {i} a block or conv index, {p} a parameter name.
_NAMES = (
    ("backbone.bottom_up.stem.conv1.weight", "backbone.body.conv1.weight"),
    ("backbone.bottom_up.stem.conv1.norm.{p}", "backbone.body.bn1.{p}"),
    ("backbone.bottom_up.res{s}.{i}.conv{c}.weight", "backbone.body.layer{s}.{i}.conv{c}.weight"),
    ("backbone.bottom_up.res{s}.{i}.conv{c}.norm.{p}", "backbone.body.layer{s}.{i}.bn{c}.{p}"),
    ("backbone.bottom_up.res{s}.{i}.shortcut.weight", "backbone.body.layer{s}.{i}.downsample.0.weight"),
    ("backbone.bottom_up.res{s}.{i}.shortcut.norm.{p}", "backbone.body.layer{s}.{i}.downsample.1.{p}"),
    ("backbone.fpn_lateral{f}.{p}", "backbone.fpn.inner_blocks.{f}.0.{p}"),
    ("backbone.fpn_output{f}.{p}", "backbone.fpn.layer_blocks.{f}.0.{p}"),
    ("proposal_generator.rpn_head.conv.{p}", "rpn.head.conv.0.0.{p}"),
    ("proposal_generator.rpn_head.objectness_logits.{p}", "rpn.head.cls_logits.{p}"),
    ("proposal_generator.rpn_head.anchor_deltas.{p}", "rpn.head.bbox_pred.{p}"),
    ("roi_heads.box_head.fc1.{p}", "roi_heads.box_head.fc6.{p}"),
    ("roi_heads.box_head.fc2.{p}", "roi_heads.box_head.fc7.{p}"),
    ("roi_heads.box_predictor.cls_score.{p}", "roi_heads.box_predictor.cls_score.{p}"),
    ("roi_heads.box_predictor.bbox_pred.{p}", "roi_heads.box_predictor.bbox_pred.{p}"),
    ("roi_heads.mask_head.mask_fcn{m}.{p}", "roi_heads.mask_head.{m}.0.{p}"),
    ("roi_heads.mask_head.deconv.{p}", "roi_heads.mask_predictor.conv5_mask.{p}"),
    ("roi_heads.mask_head.predictor.{p}", "roi_heads.mask_predictor.mask_fcn_logits.{p}"),
)
# index offsets between the two namings: detectron2's stage s is layer s - 1, FPN level f is
# inner block f - 2, mask conv m (from 1) is mask_head.(m - 1)
_OFFSETS = {"s": 1, "f": 2, "m": 1, "i": 0, "c": 0}


def _compile(pattern: str) -> re.Pattern:
    parts = re.split(r"(\{\w\})", pattern)
    return re.compile("".join(
        (r"(?P<p>[a-z_]+)" if p == "{p}" else rf"(?P<{p[1]}>\d+)") if p.startswith("{") else re.escape(p)
        for p in parts if p) + "$")


_RULES = [(_compile(d2), d2, _compile(tv), tv) for d2, tv in _NAMES]


def to_torchvision_name(name: str) -> str | None:
    """The torchvision module name of a detectron2 parameter name (None if it has none)."""
    for rx, _, _, tv in _RULES:
        if m := rx.match(name):
            return tv.format(**{k: (v if k == "p" else int(v) - _OFFSETS[k]) for k, v in m.groupdict().items()})
    return None


def to_detectron2_name(name: str) -> str:
    """Inverse of to_torchvision_name."""
    for _, d2, rx, _ in _RULES:
        if m := rx.match(name):
            return d2.format(**{k: (v if k == "p" else int(v) + _OFFSETS[k]) for k, v in m.groupdict().items()})
    raise KeyError(name)


def to_torchvision(sd: dict[str, torch.Tensor], cfg: ArchConfig, expected: dict[str, torch.Size],
                   source: str) -> dict[str, torch.Tensor]:
    """The detectron2 state dict under torchvision names and layouts, checked strictly against the
    model's own parameters `expected` (torchvision name -> shape): every parameter present, nothing
    else (num_batches_tracked and legacy anchor buffers aside), every shape right. Problems are one
    CheckpointError line in detectron2's names and shapes (detectron2's own loader skips them)."""
    sd = {k: v for k, v in sd.items() if not _IGNORED.search(k)}
    want = {to_detectron2_name(k): _detectron2_shape(k, tuple(s), cfg) for k, s in expected.items()}
    check_keys({k: tuple(v.shape) for k, v in sd.items()}, want, source,
               "the architecture read from the other weights needs")
    return {to_torchvision_name(k): _to_torchvision_layout(k, v.float(), cfg) for k, v in sd.items()}


def _detectron2_shape(tv_name: str, shape: tuple, cfg: ArchConfig) -> tuple:
    """detectron2's shape of a torchvision parameter (the class rows without background)."""
    if tv_name.startswith("roi_heads.box_predictor.bbox_pred.") and not cfg.box_agnostic:
        return (shape[0] - 4, *shape[1:])
    if tv_name.startswith("roi_heads.mask_predictor.mask_fcn_logits.") and not cfg.mask_agnostic:
        return (shape[0] - 1, *shape[1:])
    return shape


def _to_torchvision_layout(name: str, value: torch.Tensor, cfg: ArchConfig) -> torch.Tensor:
    """Background last -> first (cls_score); zero background rows / channel prepended to class-specific
    box and mask predictors."""
    if name.startswith("roi_heads.box_predictor.cls_score."):
        return torch.cat([value[-1:], value[:-1]])
    if name.startswith("roi_heads.box_predictor.bbox_pred.") and not cfg.box_agnostic:
        return torch.cat([value.new_zeros((4, *value.shape[1:])), value])
    if name.startswith("roi_heads.mask_head.predictor.") and not cfg.mask_agnostic:
        return torch.cat([value.new_zeros((1, *value.shape[1:])), value])
    return value


def _shapes(sd: dict, source: str):
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise CheckpointError(f"{source}: not a detectron2 Mask R-CNN R-FPN state dict: no {key!r}")
        return tuple(sd[key].shape)

    return shape


