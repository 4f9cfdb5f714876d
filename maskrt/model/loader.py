"""Checkpoint (file or `torchvision:NAME`) -> maskrt MaskRCNN with class names and input policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .arch import ArchConfig, build_torchvision_model, infer_config, load_weights, upgrade_legacy_keys
from .checkpoint import Checkpoint, load_checkpoint
from .network import MaskRCNN
from .rpn import RPNParams
from .transform import InputPolicy

TORCHVISION_PREFIX = "torchvision:"
# RPN proposals per image (post-NMS) when a checkpoint's metadata names none: torchvision's and
# detectron2's test default. The bundled model's metadata holds its own (maskrt/assets/README.md).
DEFAULT_PROPOSALS = RPNParams().post_nms_top_n
TORCHVISION_MODELS = {
    "maskrcnn_resnet50_fpn": "MaskRCNN_ResNet50_FPN_Weights",
    "maskrcnn_resnet50_fpn_v2": "MaskRCNN_ResNet50_FPN_V2_Weights",
}


@dataclass
class LoadedModel:
    """A ready network plus what the runtime needs to know about it."""

    model: MaskRCNN
    classes: list[str]
    config: ArchConfig
    source: str
    # where what the weights do not say came from: {"format": "detectron2", "config": path or "",
    # "assumed": {detectron2 config key: the model zoo's value maskrt assumed}}; {} for torchvision
    provenance: dict = field(default_factory=dict)


def is_torchvision_name(name: str | Path) -> bool:
    return str(name).startswith(TORCHVISION_PREFIX)


def load_model(source: str | Path, min_size: int | None = None, max_size: int | None = None,
               config: str | Path | None = None) -> LoadedModel:
    """Build the network from a checkpoint path or `torchvision:maskrcnn_resnet50_fpn[_v2]`.
    config: a detectron2 YAML config for a detectron2 checkpoint (default: the model zoo's values)."""
    ckpt = torchvision_checkpoint(str(source)) if is_torchvision_name(source) else load_checkpoint(source)
    return model_from_checkpoint(ckpt, min_size=min_size, max_size=max_size, config=config)


def model_from_checkpoint(ckpt: Checkpoint, min_size: int | None = None, max_size: int | None = None,
                          config: str | Path | None = None) -> LoadedModel:
    if ckpt.format == "detectron2":
        from .detectron2 import build

        parts = build(ckpt.state_dict, ckpt.source, config, min_size, max_size)
        model = MaskRCNN(parts.tv_model, parts.config, parts.policy, parts.rpn, parts.detection)
        return LoadedModel(model, parts.classes, parts.config, ckpt.source, parts.provenance)
    if config is not None:
        raise CheckpointError(f"--config is a detectron2 config; {ckpt.source} is a torchvision checkpoint")
    state_dict = upgrade_legacy_keys(ckpt.state_dict)
    config = infer_config(state_dict)
    tv_model = build_torchvision_model(config)
    load_weights(tv_model, state_dict, ckpt.source)
    policy = InputPolicy(
        min_size=int(min_size or _size_metadata(ckpt, "min_size", 800)),
        max_size=int(max_size or _size_metadata(ckpt, "max_size", 1333)),
    )
    classes = _class_names(ckpt.classes, config.num_classes, ckpt.source)
    rpn = RPNParams().with_proposals(_size_metadata(ckpt, "proposals", DEFAULT_PROPOSALS))
    return LoadedModel(MaskRCNN(tv_model, config, policy, rpn=rpn), classes, config, ckpt.source)


def torchvision_checkpoint(name: str) -> Checkpoint:
    """COCO weights through torchvision's weights API (downloads on first use)."""
    import torchvision.models.detection as det

    arch = name[len(TORCHVISION_PREFIX):]
    if arch not in TORCHVISION_MODELS:
        raise CheckpointError(f"unknown torchvision model {arch!r}; choose from {', '.join(TORCHVISION_MODELS)}")
    weights = getattr(det, TORCHVISION_MODELS[arch]).DEFAULT
    try:
        state_dict = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # network errors, hash mismatch, disk full: all reported in one line
        raise CheckpointError(f"could not download {name} weights from {weights.url}: {exc}") from None
    return Checkpoint(state_dict, classes=list(weights.meta["categories"]), source=name)


def _size_metadata(ckpt: Checkpoint, key: str, default: int) -> int:
    """The checkpoint's min_size / max_size / proposals metadata: a positive integer (one-line error if not)."""
    value = ckpt.metadata.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{ckpt.source}: metadata {key} must be a positive integer, got {value!r}")
    return value


def _class_names(classes: list[str] | None, num_classes: int, source: str) -> list[str]:
    """Names indexed by class id (0 = background). Unnamed checkpoints get "class_<id>"."""
    if classes is None:
        return ["__background__"] + [f"class_{i}" for i in range(1, num_classes)]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, (str, int)) for c in classes):
        raise CheckpointError(f"{source}: metadata classes must be a list of names, got {str(classes)[:60]}")
    classes = [str(c) for c in classes]
    if len(classes) == num_classes - 1:
        classes = ["__background__"] + classes
    if len(classes) != num_classes:
        raise CheckpointError(f"{source}: {len(classes)} class names for a {num_classes}-class model")
    return classes


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], classes: list[str] | None = None,
                    min_size: int | None = None, max_size: int | None = None, half: bool = False,
                    proposals: int | None = None) -> Path:
    """Write a safetensors checkpoint with maskrt metadata, atomically (temp name, then rename).
    proposals: the model's default RPN proposals per image (metadata "proposals")."""
    import json

    from safetensors.torch import save_file

    path = Path(path)
    meta = {}
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    for key, value in (("min_size", min_size), ("max_size", max_size), ("proposals", proposals)):
        if value is not None:
            meta[key] = json.dumps(int(value))
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state_dict.items()}
    from ..safeio import Output

    with Output(path, "checkpoint", seekable=True) as out:  # unique temporary name, renamed when whole
        save_file(tensors, str(out.temp_path()), metadata=meta)
    return path
