"""detectron2 YAML configs (`--config model.yaml`), read with a YAML parser: detectron2 is not
needed. `_BASE_` chains are followed (paths relative to the file naming them) and merged as
detectron2's CfgNode.merge_from_file does; string values that are Python literals ("(1, 2)")
are decoded as yacs decodes them.

What a checkpoint cannot say comes from the config, or without one from the model zoo's Mask
R-CNN FPN configs (Base-RCNN-FPN.yaml + mask_rcnn_R_50_FPN_3x.yaml; for ResNeXt weights, groups > 1,
mask_rcnn_X_101_32x8d_FPN_3x.yaml's stride in the 3x3 convolution and pixel std, which every model-zoo
ResNeXt shares) - those are the values maskrt *assumes* and records in the engine. With a config, a
key its chain does not set takes detectron2's own default (config/defaults.py), as detectron2 would.
Three kinds of keys:
- SETTINGS: values maskrt applies (input format, means, sizes, stride placement, RPN and box-head
  parameters, pooler sampling, the test dataset for class names);
- FIXED: values of the only layout maskrt builds; any other value is refused in one line;
- FROM_WEIGHTS: architecture the weights already tell; a config that disagrees is refused.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CheckpointError, first_line
from ..arch import ArchConfig

# key: (detectron2's default, the model zoo's Mask R-CNN FPN value)
SETTINGS = {
    "INPUT.FORMAT": ("BGR", "BGR"),
    "MODEL.PIXEL_MEAN": ([103.530, 116.280, 123.675], [103.530, 116.280, 123.675]),
    "MODEL.PIXEL_STD": ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
    "INPUT.MIN_SIZE_TEST": (800, 800),
    "INPUT.MAX_SIZE_TEST": (1333, 1333),
    "MODEL.RESNETS.STRIDE_IN_1X1": (True, True),
    "MODEL.RPN.PRE_NMS_TOPK_TEST": (6000, 1000),
    "MODEL.RPN.POST_NMS_TOPK_TEST": (1000, 1000),
    "MODEL.RPN.NMS_THRESH": (0.7, 0.7),
    "MODEL.PROPOSAL_GENERATOR.MIN_SIZE": (0, 0),
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": (0.05, 0.05),
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": (0.5, 0.5),
    "TEST.DETECTIONS_PER_IMAGE": (100, 100),
    "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": (0, 0),
    "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO": (0, 0),
    "DATASETS.TEST": ((), ("coco_2017_val",)),
}
# The model zoo's ResNeXt Mask R-CNNs (X-101-32x8d, X-152): Caffe2-trained backbones
RESNEXT_ZOO = {"MODEL.RESNETS.STRIDE_IN_1X1": False, "MODEL.PIXEL_STD": [57.375, 57.120, 58.395]}
# key: (detectron2's default, the one value maskrt builds)
_P2P6, _RES2_5 = ["p2", "p3", "p4", "p5", "p6"], ["res2", "res3", "res4", "res5"]
FIXED = {
    "MODEL.META_ARCHITECTURE": ("GeneralizedRCNN", "GeneralizedRCNN"),
    "MODEL.MASK_ON": (False, True),
    "MODEL.KEYPOINT_ON": (False, False),
    "MODEL.BACKBONE.NAME": ("build_resnet_backbone", "build_resnet_fpn_backbone"),
    "MODEL.RESNETS.OUT_FEATURES": (["res4"], _RES2_5),
    "MODEL.RESNETS.RES5_DILATION": (1, 1),
    "MODEL.RESNETS.DEFORM_ON_PER_STAGE": ([False] * 4, [False] * 4),
    "MODEL.FPN.IN_FEATURES": ([], _RES2_5),
    "MODEL.FPN.NORM": ("", ""),
    "MODEL.FPN.FUSE_TYPE": ("sum", "sum"),
    "MODEL.PROPOSAL_GENERATOR.NAME": ("RPN", "RPN"),
    "MODEL.ANCHOR_GENERATOR.NAME": ("DefaultAnchorGenerator", "DefaultAnchorGenerator"),
    "MODEL.ANCHOR_GENERATOR.SIZES": ([[32, 64, 128, 256, 512]], [[32], [64], [128], [256], [512]]),
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": ([[0.5, 1.0, 2.0]], [[0.5, 1.0, 2.0]]),
    "MODEL.ANCHOR_GENERATOR.OFFSET": (0.0, 0.0),
    "MODEL.RPN.HEAD_NAME": ("StandardRPNHead", "StandardRPNHead"),
    "MODEL.RPN.IN_FEATURES": (["res4"], _P2P6),
    "MODEL.RPN.CONV_DIMS": ([-1], [-1]),
    "MODEL.RPN.BBOX_REG_WEIGHTS": ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]),
    "MODEL.ROI_HEADS.NAME": ("Res5ROIHeads", "StandardROIHeads"),
    "MODEL.ROI_HEADS.IN_FEATURES": (["res4"], _P2P6[:4]),
    "MODEL.ROI_BOX_HEAD.NAME": ("", "FastRCNNConvFCHead"),
    "MODEL.ROI_BOX_HEAD.NUM_CONV": (0, 0),
    "MODEL.ROI_BOX_HEAD.NORM": ("", ""),
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS": ([10.0, 10.0, 5.0, 5.0], [10.0, 10.0, 5.0, 5.0]),
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": ("ROIAlignV2", "ROIAlignV2"),
    "MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE": (False, False),
    "MODEL.ROI_MASK_HEAD.NAME": ("MaskRCNNConvUpsampleHead", "MaskRCNNConvUpsampleHead"),
    "MODEL.ROI_MASK_HEAD.NORM": ("", ""),
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": ("ROIAlignV2", "ROIAlignV2"),
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": (14, 14),
}
# key: (detectron2's default, the values maskrt accepts: the same inference math)
ACCEPTED = {"MODEL.RESNETS.NORM": ("FrozenBN", ("FrozenBN", "BN", "SyncBN", "naiveSyncBN", "nnSyncBN"))}
# key: (detectron2's default, what the architecture read from the weights has)
FROM_WEIGHTS = {
    "MODEL.RESNETS.DEPTH": (50, lambda a: a.depth),
    "MODEL.RESNETS.NUM_GROUPS": (1, lambda a: a.groups),
    "MODEL.RESNETS.WIDTH_PER_GROUP": (64, lambda a: a.width_per_group if a.depth >= 50 else 64),
    "MODEL.RESNETS.RES2_OUT_CHANNELS": (256, lambda a: 256 if a.depth >= 50 else 64),
    "MODEL.RESNETS.STEM_OUT_CHANNELS": (64, lambda a: 64),
    "MODEL.FPN.OUT_CHANNELS": (256, lambda a: a.fpn_channels),
    "MODEL.ROI_HEADS.NUM_CLASSES": (80, lambda a: a.num_classes - 1),
    "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": (False, lambda a: a.box_agnostic),
    "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK": (False, lambda a: a.mask_agnostic),
    "MODEL.ROI_BOX_HEAD.NUM_FC": (0, lambda a: 2),
    "MODEL.ROI_BOX_HEAD.FC_DIM": (1024, lambda a: a.representation_size),
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": (14, lambda a: a.box_pool_size),
    "MODEL.ROI_MASK_HEAD.NUM_CONV": (0, lambda a: len(a.mask_layers)),
    "MODEL.ROI_MASK_HEAD.CONV_DIM": (256, lambda a: a.mask_dim_reduced),
}


@dataclass(frozen=True)
class Detectron2Config:
    """A config's values (dotted keys, after _BASE_ merging), or None for the model zoo's."""

    values: dict | None = None
    path: str = ""
    chain: tuple[str, ...] = field(default=())
    zoo: dict = field(default_factory=dict)  # without a config: model-zoo values replacing SETTINGS' (RESNEXT_ZOO)

    def get(self, key: str):
        """The value of a SETTINGS or FIXED key: the config's, detectron2's default if its chain
        does not set it, the model zoo's when there is no config."""
        default, zoo = (SETTINGS.get(key) or FIXED[key])
        if self.values is None:
            return self.zoo.get(key, zoo)
        return self.values.get(key, default)

    def assumed(self) -> dict:
        """The SETTINGS values taken from the model zoo because no config was given ({} with one)."""
        return {} if self.values is not None else {k: self.get(k) for k in SETTINGS}

    def check(self, arch: ArchConfig) -> None:
        """One-line CheckpointError for a FIXED key with another value, a FROM_WEIGHTS key the weights
        contradict, or a sampling ratio the box and mask poolers do not share."""
        if self.values is None:
            return
        for key, (_, want) in FIXED.items():
            if not _same(self.get(key), want):
                raise CheckpointError(f"{self.path}: {key} is {self.get(key)!r}; maskrt builds detectron2's Mask R-CNN "
                                      f"R-FPN with {key} = {want!r}")
        for key, (default, accepted) in ACCEPTED.items():
            if self.values.get(key, default) not in accepted:
                raise CheckpointError(f"{self.path}: {key} is {self.values[key]!r}; maskrt builds "
                                      f"{', '.join(accepted)}")
        for key, (default, of) in FROM_WEIGHTS.items():
            value = self.values.get(key, default)
            if not _same(value, of(arch)):
                raise CheckpointError(f"{self.path}: {key} is {value!r}, but the checkpoint's weights have "
                                      f"{of(arch)!r}")
        box, mask = (self.get(f"MODEL.ROI_{h}_HEAD.POOLER_SAMPLING_RATIO") for h in ("BOX", "MASK"))
        if box != mask:
            raise CheckpointError(f"{self.path}: box and mask POOLER_SAMPLING_RATIO differ ({box}, {mask}); maskrt "
                                  "pools both heads alike")


def read_config(path: str | Path | None) -> Detectron2Config:
    """The config at `path` with its _BASE_ chain merged (None: the model zoo's values)."""
    if path is None:
        return Detectron2Config()
    chain: list[str] = []
    merged = _load(Path(path), chain)
    return Detectron2Config(_flatten(merged), str(path), tuple(chain))


def _load(path: Path, chain: list[str]) -> dict:
    import yaml

    if str(path) in chain:
        raise CheckpointError(f"{chain[0]}: _BASE_ chain loops back to {path}")
    chain.append(str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        base_of = f" (the _BASE_ of {chain[-2]})" if len(chain) > 1 else ""
        raise CheckpointError(f"config not found: {path}{base_of}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path} is not valid YAML ({first_line(exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a detectron2 config (a YAML mapping)")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    if not isinstance(base, str) or "://" in base:
        raise CheckpointError(f"{path}: _BASE_ {base!r} must be a path to a YAML file (URLs are not fetched)")
    base_path = Path(base).expanduser()
    return _merge(_load(base_path if base_path.is_absolute() else path.parent / base_path, chain), data)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = _decode(value)
    return out


def _decode(value):
    """yacs' decoding: a string that is a Python literal ("(1, 2)", "[0.5]") becomes that value."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _same(a, b) -> bool:
    """Config values equal up to list/tuple and int/float spelling."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    return a == b
