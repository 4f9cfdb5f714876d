"""Export the model's three dense stages to ONNX (opset 17) with dynamic batch and image size.

The data-dependent glue (proposals, RoIAlign, NMS, paste) stays in maskrt's kernels, so the
ONNX graphs hold only standard ops and reproduce the torch model to float rounding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..model import MaskRCNN

OPSET = 17
STAGES = ("dense", "box", "mask")


def stage_io(model: MaskRCNN) -> dict[str, dict]:
    """Per stage: example input, input/output names and dynamic axes."""
    cfg = model.config
    levels = len(model.cell_anchors)
    c = cfg.fpn_channels
    dense_outputs = [f"p{i + 2}" for i in range(4)] + [f"objectness{i}" for i in range(levels)] + \
        [f"deltas{i}" for i in range(levels)]
    return {
        "dense": dict(example=torch.zeros(1, 3, 256, 320), inputs=["images"], outputs=dense_outputs,
                      axes={"images": {0: "batch", 2: "height", 3: "width"}}),
        "box": dict(example=torch.zeros(2, c, cfg.box_pool_size, cfg.box_pool_size), inputs=["box_features"],
                    outputs=["class_logits", "box_deltas"], axes={"box_features": {0: "rois"}}),
        "mask": dict(example=torch.zeros(2, c, cfg.mask_pool_size, cfg.mask_pool_size), inputs=["mask_features"],
                     outputs=["mask_logits"], axes={"mask_features": {0: "detections"}}),
    }


def export_stages(model: MaskRCNN, out_dir: Path, half: bool = False) -> dict[str, Path]:
    """Write out_dir/{dense,box,mask}.onnx; returns stage -> path. half: fp16 weights and I/O."""
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = {"dense": model.dense, "box": model.box, "mask": model.mask}
    paths = {}
    for name, io in stage_io(model).items():
        module, example = modules[name], io["example"]
        if half:
            module, example = _half_copy(module), example.half()
        paths[name] = out_dir / f"{name}.onnx"
        _export(module, example, paths[name], io)
    return paths


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, io: dict) -> None:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=io["inputs"], output_names=io["outputs"], dynamic_axes=io["axes"],
                          do_constant_folding=True)


def _half_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).half()


def check_onnx(path: Path) -> None:
    """onnx.checker plus shape inference; raises onnx's errors."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
