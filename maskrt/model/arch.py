"""Architecture inference: a torchvision Mask R-CNN state dict -> `ArchConfig` -> modules.

Everything is read from key names and tensor shapes; no config file is needed. Supported:
ResNet-18/34/50/101/152 bodies with a 4-level FPN (+ max-pool level, 5 feature maps), the
maskrcnn_resnet50_fpn (v1: MLP box head, plain convs) and _v2 (conv box head, BatchNorm in
FPN and heads, 2-conv RPN head) layouts, any FPN width and any number of classes.
detectron2 checkpoints (maskrt.model.detectron2) map onto the same modules, with the ArchConfig
fields torchvision models leave at their defaults: ResNeXt groups, the stride in the 1x1
convolution, class-agnostic box and mask predictors, and numerics "detectron2".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import CheckpointError

_RESNETS = {
    ("basic", (2, 2, 2, 2)): 18,
    ("basic", (3, 4, 6, 3)): 34,
    ("bottleneck", (3, 4, 6, 3)): 50,
    ("bottleneck", (3, 4, 23, 3)): 101,
    ("bottleneck", (3, 8, 36, 3)): 152,
}
ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
NUMERICS = ("torchvision", "detectron2")  # ArchConfig.numerics: whose inference conventions the model follows


@dataclass(frozen=True)
class ArchConfig:
    """What a state dict says about the network it belongs to."""

    depth: int
    fpn_channels: int
    num_classes: int
    backbone_norm: str  # "frozen" (FrozenBatchNorm2d) or "batch" (BatchNorm2d), as saved
    fpn_norm: bool
    rpn_conv_depth: int
    box_head: str  # "mlp" (TwoMLPHead, v1) or "conv" (FastRCNNConvFCHead, v2)
    box_conv_layers: tuple[int, ...]
    representation_size: int
    box_head_norm: bool
    mask_layers: tuple[int, ...]
    mask_head_norm: bool
    mask_dim_reduced: int
    box_pool_size: int = 7
    mask_pool_size: int = 14
    # What only detectron2 models use (defaults: torchvision's networks).
    groups: int = 1  # ResNeXt: groups of the 3x3 bottleneck convolutions
    width_per_group: int = 64  # bottleneck width of the first stage = groups * width_per_group
    stride_in_1x1: bool = False  # a stage's stride in its first 1x1 convolution (MSRA), not the 3x3
    box_agnostic: bool = False  # one box regression for all classes: deltas Tensor[R, 4]
    mask_agnostic: bool = False  # one mask for all classes: mask logits Tensor[N, 1, M, M]
    numerics: str = "torchvision"  # "detectron2": its inference conventions (maskrt.model.detectron2)

    @property
    def variant(self) -> str:
        if self.numerics == "detectron2":
            return "detectron2"
        v2 = self.box_head == "conv" and self.fpn_norm and self.mask_head_norm and self.rpn_conv_depth == 2
        return "v2" if v2 else "v1"

    @property
    def name(self) -> str:
        if self.numerics == "detectron2":
            body = f"R_{self.depth}" if self.groups == 1 else f"X_{self.depth}_{self.groups}x{self.width_per_group}d"
            return f"mask_rcnn_{body}_FPN"
        return f"maskrcnn_resnet{self.depth}_fpn{'_v2' if self.variant == 'v2' else ''}"


def upgrade_legacy_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename pre-0.13 torchvision keys (rpn.head.conv.*, mask_head.mask_fcnN.*) to today's."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"^rpn\.head\.conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1", key)
        m = re.match(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$", key)
        if m:
            key = f"roi_heads.mask_head.{int(m.group(1)) - 1}.0.{m.group(2)}"
        out[key] = value
    return out


def infer_config(sd: dict[str, torch.Tensor]) -> ArchConfig:
    """Read the architecture from key names and shapes (keys already upgraded)."""
    _require(sd, "backbone.body.conv1.weight", "roi_heads.box_predictor.cls_score.weight")
    fpn_channels = _shape(sd, "backbone.fpn.inner_blocks.0.0.weight")[0]
    num_anchors = _shape(sd, "rpn.head.cls_logits.weight")[0]
    if num_anchors != len(ASPECT_RATIOS):
        raise CheckpointError(f"unsupported RPN with {num_anchors} anchors per location (expected 3)")
    inner = _indices(sd, r"backbone\.fpn\.inner_blocks\.(\d+)\.")
    if len(inner) != 4:
        raise CheckpointError(f"unsupported FPN over {len(inner)} backbone stages (expected 4)")
    box_head, box_convs, rep = _box_head(sd)
    mask_layers = tuple(_shape(sd, f"roi_heads.mask_head.{i}.0.weight")[0]
                        for i in _indices(sd, r"roi_heads\.mask_head\.(\d+)\.0\.weight"))
    return ArchConfig(
        depth=_resnet_depth(sd),
        fpn_channels=fpn_channels,
        num_classes=_shape(sd, "roi_heads.box_predictor.cls_score.weight")[0],
        backbone_norm="batch" if "backbone.body.bn1.num_batches_tracked" in sd else "frozen",
        fpn_norm="backbone.fpn.inner_blocks.0.1.weight" in sd,
        rpn_conv_depth=len(_indices(sd, r"rpn\.head\.conv\.(\d+)\.0\.weight")),
        box_head=box_head,
        box_conv_layers=box_convs,
        representation_size=rep,
        box_head_norm="roi_heads.box_head.0.1.weight" in sd,
        mask_layers=mask_layers,
        mask_head_norm="roi_heads.mask_head.0.1.weight" in sd,
        mask_dim_reduced=_shape(sd, "roi_heads.mask_predictor.conv5_mask.weight")[1],
        box_pool_size=_box_pool_size(sd, fpn_channels, box_head),
    )


def build_torchvision_model(cfg: ArchConfig) -> TorchvisionMaskRCNN:
    """Instantiate torchvision's MaskRCNN with the inferred architecture (weights not loaded)."""
    backbone = _backbone(cfg)
    anchors = AnchorGenerator(ANCHOR_SIZES, (ASPECT_RATIOS,) * len(ANCHOR_SIZES))
    rpn_head = RPNHead(cfg.fpn_channels, len(ASPECT_RATIOS), conv_depth=cfg.rpn_conv_depth)
    if cfg.box_head == "mlp":
        box_head = TwoMLPHead(cfg.fpn_channels * cfg.box_pool_size**2, cfg.representation_size)
    else:
        norm = nn.BatchNorm2d if cfg.box_head_norm else None
        shape = (cfg.fpn_channels, cfg.box_pool_size, cfg.box_pool_size)
        box_head = FastRCNNConvFCHead(shape, list(cfg.box_conv_layers), [cfg.representation_size], norm_layer=norm)
    mask_norm = nn.BatchNorm2d if cfg.mask_head_norm else None
    mask_head = MaskRCNNHeads(cfg.fpn_channels, list(cfg.mask_layers), 1, norm_layer=mask_norm)
    box_predictor = FastRCNNPredictor(cfg.representation_size, cfg.num_classes)
    if cfg.box_agnostic:
        box_predictor.bbox_pred = nn.Linear(cfg.representation_size, 4)
    mask_classes = 1 if cfg.mask_agnostic else cfg.num_classes
    model = TorchvisionMaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        box_head=box_head,
        box_predictor=box_predictor,
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(cfg.mask_layers[-1], cfg.mask_dim_reduced, mask_classes),
    )
    return model.eval()


def load_weights(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict load; a mismatch is reported in one line naming the first offending keys."""
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if not (k.endswith("num_batches_tracked") and k not in own)}
    check_keys({k: tuple(v.shape) for k, v in sd.items()}, {k: tuple(v.shape) for k, v in own.items()}, source,
               "the inferred architecture needs")
    model.load_state_dict(sd, strict=True)


def check_keys(shapes: dict[str, tuple], want: dict[str, tuple], source: str, needs: str) -> None:
    """Every key of `want` in `shapes`, no other, with the same shape; else one CheckpointError line
    naming the first offending keys ("K has shape [..], <needs> [..]")."""
    missing = [k for k in want if k not in shapes]
    unexpected = [k for k in shapes if k not in want]
    if missing:
        raise CheckpointError(f"{source}: missing keys {_few(missing)}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected keys {_few(unexpected)}")
    for k, shape in shapes.items():
        if tuple(shape) != tuple(want[k]):
            raise CheckpointError(f"{source}: {k} has shape {list(shape)}, {needs} {list(want[k])}")


def _backbone(cfg: ArchConfig) -> BackboneWithFPN:
    norm = FrozenBatchNorm2d if cfg.backbone_norm == "frozen" else nn.BatchNorm2d
    grouping = {} if cfg.depth < 50 else {"groups": cfg.groups, "width_per_group": cfg.width_per_group}
    body = getattr(resnet, f"resnet{cfg.depth}")(weights=None, norm_layer=norm, **grouping)
    if cfg.stride_in_1x1 and cfg.depth >= 50:
        _move_stride_to_1x1(body)
    stage2 = body.inplanes // 8
    return BackboneWithFPN(
        body,
        return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)},
        in_channels_list=[stage2 * 2 ** (i - 1) for i in range(1, 5)],
        out_channels=cfg.fpn_channels,
        norm_layer=nn.BatchNorm2d if cfg.fpn_norm else None,
    )


def _move_stride_to_1x1(body: nn.Module) -> None:
    """MSRA ResNet (detectron2's STRIDE_IN_1X1): each stage's first bottleneck strides in conv1 (1x1)
    instead of conv2 (3x3). Output sizes are the same (ceil(H / 2) either way)."""
    for layer in (body.layer2, body.layer3, body.layer4):
        block = layer[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)


def _resnet_depth(sd: dict[str, torch.Tensor]) -> int:
    counts = tuple(len(_indices(sd, rf"backbone\.body\.layer{i}\.(\d+)\.conv1\.weight")) for i in range(1, 5))
    block = "bottleneck" if "backbone.body.layer1.0.conv3.weight" in sd else "basic"
    if (block, counts) not in _RESNETS:
        raise CheckpointError(f"unsupported ResNet body: {block} blocks {list(counts)} per stage")
    return _RESNETS[(block, counts)]


def _box_head(sd: dict[str, torch.Tensor]) -> tuple[str, tuple[int, ...], int]:
    if "roi_heads.box_head.fc6.weight" in sd:
        return "mlp", (), _shape(sd, "roi_heads.box_head.fc7.weight")[0]
    convs = _indices(sd, r"roi_heads\.box_head\.(\d+)\.0\.weight")
    linears = [i for i in _indices(sd, r"roi_heads\.box_head\.(\d+)\.weight") if i not in convs]
    if not convs or len(linears) != 1:
        raise CheckpointError("unsupported box head: neither TwoMLPHead (fc6/fc7) nor conv+fc (v2) layout")
    channels = tuple(_shape(sd, f"roi_heads.box_head.{i}.0.weight")[0] for i in convs)
    return "conv", channels, _shape(sd, f"roi_heads.box_head.{linears[0]}.weight")[0]


def _box_pool_size(sd: dict[str, torch.Tensor], fpn_channels: int, box_head: str) -> int:
    if box_head == "mlp":
        fan_in = _shape(sd, "roi_heads.box_head.fc6.weight")[1]
        channels = fpn_channels
    else:
        linear = max(_indices(sd, r"roi_heads\.box_head\.(\d+)\.weight"))
        fan_in = _shape(sd, f"roi_heads.box_head.{linear}.weight")[1]
        last_conv = max(_indices(sd, r"roi_heads\.box_head\.(\d+)\.0\.weight"))
        channels = _shape(sd, f"roi_heads.box_head.{last_conv}.0.weight")[0]
    size = round((fan_in / channels) ** 0.5)
    if size * size * channels != fan_in:
        raise CheckpointError(f"box head input of {fan_in} features is not {channels} channels x S x S")
    return size


def _require(sd: dict, *keys: str) -> None:
    for key in keys:
        if key not in sd:
            raise CheckpointError(f"not a torchvision Mask R-CNN state dict: no {key!r}")


def _shape(sd: dict, key: str) -> tuple[int, ...]:
    _require(sd, key)
    return tuple(sd[key].shape)


def _indices(sd: dict, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.match(k))})


def _few(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")
