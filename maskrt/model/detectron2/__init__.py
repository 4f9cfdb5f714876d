"""detectron2 Mask R-CNN checkpoints: model-zoo `.pkl` and DetectionCheckpointer `.pth` files,
built on maskrt's modules and run with detectron2's inference numerics (ArchConfig.numerics
"detectron2": input resize, anchors, RPN, ROIAlignV2, box head, postprocess and paste).

`pickles` reads `.pkl` files without unpickling code, `keys` tells the model and its
architecture from the weights and maps them onto torchvision's modules, `config` reads a
detectron2 YAML config (or assumes the model zoo's values). `build` puts them together.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from pathlib import Path

from ...errors import CheckpointError
from ..arch import ArchConfig, build_torchvision_model, load_weights
from ..heads import DetectionParams
from ..rpn import RPNParams
from ..transform import InputPolicy
from .config import RESNEXT_ZOO, Detectron2Config, read_config
from .keys import infer_config, is_detectron2_state_dict, to_torchvision
from .pickles import model_state_dict, read_model_pickle

CITYSCAPES_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


@dataclass
class Detectron2Parts:
    """What maskrt.model.loader needs to make the model: the torchvision-layout network with its
    weights loaded, its architecture, input policy, RPN and detection parameters, class names
    (index 0 the background) and where the settings came from (for the engine's manifest)."""

    tv_model: object
    config: ArchConfig
    policy: InputPolicy
    rpn: RPNParams
    detection: DetectionParams
    classes: list[str]
    provenance: dict


def build(state_dict: dict, source: str, config_path: str | Path | None = None, min_size: int | None = None,
          max_size: int | None = None) -> Detectron2Parts:
    """A detectron2 Mask R-CNN R-FPN from its state dict (detectron2 names), strictly checked; the
    settings the weights cannot say from the config at `config_path` or the model zoo's (its
    ResNeXt configs' for grouped weights)."""
    cfg = read_config(config_path)
    arch = infer_config(state_dict, source, stride_in_1x1=True)
    if cfg.values is None and arch.groups > 1:
        cfg = replace(cfg, zoo=RESNEXT_ZOO)
    arch = replace(arch, stride_in_1x1=arch.depth >= 50 and _value(cfg, "MODEL.RESNETS.STRIDE_IN_1X1", bool))
    cfg.check(arch)
    tv_model = build_torchvision_model(arch)
    own = {k: v.shape for k, v in tv_model.state_dict().items()}
    load_weights(tv_model, to_torchvision(state_dict, arch, own, source), source)
    provenance = {"format": "detectron2", "config": str(config_path or ""),
                  "assumed": {k: _json(v) for k, v in cfg.assumed().items()}}
    return Detectron2Parts(tv_model, arch, input_policy(cfg, min_size, max_size), _rpn(cfg), _detection(cfg),
                           class_names(cfg, arch.num_classes), provenance)


def class_names(cfg: Detectron2Config, num_classes: int) -> list[str]:
    """Names by maskrt label (0 = background, label k = detectron2 class k - 1): the test dataset's
    when maskrt knows it (COCO's 80, Cityscapes' 8; the model zoo's is coco_2017_val), else
    "class_<label>"."""
    datasets = _value(cfg, "DATASETS.TEST", (list, tuple))
    name = str(datasets[0]) if datasets else ""
    k = num_classes - 1
    if name.startswith("coco_") and k == 80:
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

        coco = MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]  # 91 ids: "N/A" where COCO has none
        names = [c for c in coco if c not in ("N/A", "__background__")]
    elif name.startswith("cityscapes_fine_instance_seg") and k == len(CITYSCAPES_CLASSES):
        names = list(CITYSCAPES_CLASSES)
    else:
        names = [f"class_{i}" for i in range(1, num_classes)]
    return ["__background__", *names]


def input_policy(cfg: Detectron2Config, min_size: int | None = None, max_size: int | None = None) -> InputPolicy:
    """The input transform of a config (detectron2's resize and normalisation), sizes overridable."""
    fmt = _value(cfg, "INPUT.FORMAT", str)
    if fmt not in ("BGR", "RGB"):
        raise CheckpointError(f"{cfg.path}: INPUT.FORMAT {fmt!r} is not supported (BGR or RGB)")
    mean, std = (_triple(cfg, k) for k in ("MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD"))
    if min(std) <= 0:
        raise CheckpointError(f"{cfg.path}: MODEL.PIXEL_STD must be positive, got {list(std)}")
    sizes = [_value(cfg, k, int, minimum=1) for k in ("INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST")]
    return InputPolicy(min_size or sizes[0], max_size or sizes[1], mean, std, channels=fmt, resize="detectron2")


def _rpn(cfg: Detectron2Config) -> RPNParams:
    return RPNParams(pre_nms_top_n=_value(cfg, "MODEL.RPN.PRE_NMS_TOPK_TEST", int, minimum=1),
                     post_nms_top_n=_value(cfg, "MODEL.RPN.POST_NMS_TOPK_TEST", int, minimum=1),
                     nms_thresh=_probability(cfg, "MODEL.RPN.NMS_THRESH"), score_thresh=0.0,
                     min_size=float(_value(cfg, "MODEL.PROPOSAL_GENERATOR.MIN_SIZE", numbers.Real, minimum=0)))


def _detection(cfg: Detectron2Config) -> DetectionParams:
    return DetectionParams(score_thresh=_probability(cfg, "MODEL.ROI_HEADS.SCORE_THRESH_TEST"),
                           nms_thresh=_probability(cfg, "MODEL.ROI_HEADS.NMS_THRESH_TEST"),
                           detections_per_img=_value(cfg, "TEST.DETECTIONS_PER_IMAGE", int, minimum=1),
                           min_box_size=0.0,
                           sampling_ratio=_value(cfg, "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", int, minimum=0))


def _value(cfg: Detectron2Config, key: str, kind, minimum=None):
    """cfg.get(key), checked to be a `kind` (bool is not an int) at least `minimum`: one line if not."""
    value = cfg.get(key)
    ok = isinstance(value, kind) and not (kind in (int, numbers.Real) and isinstance(value, bool))
    if not ok or (minimum is not None and value < minimum):
        names = {int: "an integer", numbers.Real: "a number", str: "a string", bool: "true or false"}
        what = names.get(kind, "a list") + (f" >= {minimum}" if minimum is not None else "")
        raise CheckpointError(f"{cfg.path}: {key} must be {what}, got {value!r}")
    return value


def _probability(cfg: Detectron2Config, key: str) -> float:
    value = _value(cfg, key, numbers.Real, minimum=0)
    if value > 1:
        raise CheckpointError(f"{cfg.path}: {key} must be in [0, 1], got {value!r}")
    return float(value)


def _triple(cfg: Detectron2Config, key: str) -> tuple[float, float, float]:
    value = _value(cfg, key, (list, tuple))
    if len(value) != 3 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"{cfg.path}: {key} must be 3 numbers (one per channel), got {value!r}")
    return tuple(float(v) for v in value)


def _json(value):
    return list(value) if isinstance(value, tuple) else value


__all__ = ["Detectron2Parts", "build", "class_names", "input_policy", "is_detectron2_state_dict", "model_state_dict",
           "read_config", "read_model_pickle"]
