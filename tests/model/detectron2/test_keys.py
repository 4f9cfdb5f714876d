"""detectron2 state dicts (maskrt.model.detectron2.keys): the architecture read from the weights
against the config detectron2 ran (the goldens' record), names mapped both ways, the class-layout
changes, strict loading in detectron2's names, and every non-Mask-R-CNN-FPN model refused."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from maskrt.errors import CheckpointError
from maskrt.model import load_model
from maskrt.model.arch import build_torchvision_model
from maskrt.model.detectron2.keys import (infer_config, is_detectron2_state_dict, to_detectron2_name,
                                          to_torchvision, to_torchvision_name)
from tests.cli_runner import run_in_process
from tests.model.detectron2 import weights as W
from tests.model.detectron2.conftest import random_state_dict

MODELS = ("r50_fpn_coco", "r18_fpn64_c7_agnostic_mask", "x50g8_fpn128_c3_agnostic_box")


def shapes_only(name: str) -> dict:
    return {k: torch.empty(shape) for k, shape, _ in W.load_spec(name)["tensors"]}


@pytest.mark.parametrize("name", MODELS)
def test_architecture_is_the_one_detectron2_built(name):
    """depth, groups, widths, classes and agnostic heads, read from names and shapes, equal the
    config values detectron2 built the golden model from (<model>.json)."""
    c = json.loads((W.HERE / f"{name}.json").read_text())["config"]
    stride = c["MODEL.RESNETS.STRIDE_IN_1X1"]
    cfg = infer_config(shapes_only(name), name, stride_in_1x1=stride)
    assert (cfg.depth, cfg.groups, cfg.fpn_channels, cfg.num_classes - 1) == tuple(
        c[f"MODEL.{k}"] for k in ("RESNETS.DEPTH", "RESNETS.NUM_GROUPS", "FPN.OUT_CHANNELS", "ROI_HEADS.NUM_CLASSES"))
    if cfg.depth >= 50:
        assert cfg.width_per_group == c["MODEL.RESNETS.WIDTH_PER_GROUP"] and cfg.stride_in_1x1 == stride
    assert (cfg.box_agnostic, cfg.mask_agnostic) == (c["MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG"],
                                                     c["MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK"])
    assert cfg.representation_size == c["MODEL.ROI_BOX_HEAD.FC_DIM"]
    assert cfg.mask_layers == (c["MODEL.ROI_MASK_HEAD.CONV_DIM"],) * c["MODEL.ROI_MASK_HEAD.NUM_CONV"]
    assert cfg.box_pool_size == c["MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION"] and cfg.numerics == "detectron2"


@pytest.mark.parametrize("name", MODELS)
def test_names_map_both_ways_onto_the_built_modules(name):
    sd = shapes_only(name)
    cfg = infer_config(sd, name, stride_in_1x1=True)
    own = build_torchvision_model(cfg).state_dict()
    mapped = {to_torchvision_name(k) for k in sd}
    assert mapped == set(own) and all(to_detectron2_name(to_torchvision_name(k)) == k for k in sd)
    assert is_detectron2_state_dict(sd) and not is_detectron2_state_dict(own)


def test_class_layouts_move_the_background_first(r18_weights):
    """cls_score: detectron2's last row (background) becomes row 0; a class-specific bbox_pred gets
    4 zero background rows first; the class-agnostic mask predictor stays one channel."""
    sd = {k: torch.from_numpy(v) for k, v in r18_weights.items()}
    cfg = infer_config(sd, "r18", stride_in_1x1=True)
    own = {k: v.shape for k, v in build_torchvision_model(cfg).state_dict().items()}
    tv = to_torchvision(sd, cfg, own, "r18")
    cls = sd["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(tv["roi_heads.box_predictor.cls_score.weight"], torch.cat([cls[-1:], cls[:-1]]))
    box = tv["roi_heads.box_predictor.bbox_pred.weight"]
    assert torch.equal(box[:4], torch.zeros_like(box[:4]))
    assert torch.equal(box[4:], sd["roi_heads.box_predictor.bbox_pred.weight"])
    assert tv["roi_heads.mask_predictor.mask_fcn_logits.weight"].shape[0] == 1


def write_pkl(tmp_path, weights: dict, name: str = "model_final.pkl"):
    W.save_model_zoo_pkl(weights, tmp_path / name)
    return tmp_path / name


def test_strict_loading_names_detectron2s_keys(tmp_path, r18_weights):
    """detectron2's own loader drops shape mismatches and leaves missing weights random, with a
    warning; maskrt refuses, naming the key as detectron2 names it."""
    missing = OrderedDict((k, v) for k, v in r18_weights.items() if k != "roi_heads.mask_head.mask_fcn4.bias")
    extra = OrderedDict(r18_weights, **{"roi_heads.box_head.fc1.extra": np.zeros(3, np.float32)})
    reshaped = OrderedDict(r18_weights, **{"backbone.bottom_up.res3.1.conv2.weight": np.zeros((128, 128, 1, 1),
                                                                                              np.float32)})
    for weights, message in ((missing, "missing keys roi_heads.mask_head.mask_fcn4.bias"),
                             (extra, "unexpected keys roi_heads.box_head.fc1.extra"),
                             (reshaped, "backbone.bottom_up.res3.1.conv2.weight has shape [128, 128, 1, 1], the "
                                        "architecture read from the other weights needs [128, 128, 3, 3]")):
        with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_model(write_pkl(tmp_path, weights))


def test_buffers_detectron2_ignores_are_ignored(tmp_path, r18_weights):
    """Older checkpoints carry pixel_mean / pixel_std and the cell anchors, BN backbones their
    num_batches_tracked: detectron2's loader ignores them, and so does maskrt (the same model)."""
    extra = OrderedDict(r18_weights, **{"pixel_mean": np.zeros((3, 1, 1), np.float32),
                                        "pixel_std": np.ones((3, 1, 1), np.float32),
                                        "proposal_generator.anchor_generator.cell_anchors.0": np.zeros((3, 4),
                                                                                                       np.float32),
                                        "backbone.bottom_up.stem.conv1.norm.num_batches_tracked": np.array(5)})
    a = load_model(write_pkl(tmp_path, extra, "a.pkl")).model.state_dict()
    b = load_model(write_pkl(tmp_path, r18_weights, "b.pkl")).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_detection_checkpointer_pth(tmp_path, r18_weights):
    """A DetectionCheckpointer training checkpoint ({"model", "trainer", "iteration"}, DDP's
    "module." prefix) loads like the model-zoo .pkl of the same weights."""
    model = OrderedDict((f"module.{k}", torch.from_numpy(v)) for k, v in r18_weights.items())
    checkpoint = {"model": model, "trainer": {"iteration": 9, "hooks": {}}, "iteration": 9}
    torch.save(checkpoint, tmp_path / "model_0000009.pth")
    a = load_model(tmp_path / "model_0000009.pth").model.state_dict()
    b = load_model(write_pkl(tmp_path, r18_weights)).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _replace_prefix(weights, old: str, new: str) -> OrderedDict:
    return OrderedDict((new + k[len(old):] if k.startswith(old) else k, v) for k, v in weights.items())


def other_models(r18) -> dict:
    z = np.zeros(4, np.float32)
    return {
        "a RetinaNet": OrderedDict([*((k, v) for k, v in r18.items() if k.startswith("backbone.")),
                                    ("head.cls_subnet.0.weight", z), ("head.cls_score.weight", z),
                                    ("backbone.top_block.p6.weight", z)]),
        "a Keypoint R-CNN": OrderedDict(r18, **{"roi_heads.keypoint_head.conv_fcn1.weight": z}),
        "a Cascade R-CNN": _replace_prefix(_replace_prefix(r18, "roi_heads.box_head.", "roi_heads.box_head.0."),
                                           "roi_heads.box_predictor.", "roi_heads.box_predictor.0."),
        "a Faster R-CNN": OrderedDict((k, v) for k, v in r18.items() if ".mask_head." not in k),
        "a C4 / DC5 (no FPN)": _replace_prefix(r18, "backbone.bottom_up.", "backbone."),
        "deformable convolutions": OrderedDict(r18, **{"backbone.bottom_up.res3.0.conv2_offset.weight": z}),
        "a PointRend": OrderedDict(r18, **{"roi_heads.mask_head.point_head.fc1.weight": z}),
    }


@pytest.mark.parametrize("what", list(other_models(random_state_dict("r18_fpn64_c7_agnostic_mask"))))
def test_other_detectron2_models_are_refused_in_one_line(tmp_path, r18_weights, what):
    path = write_pkl(tmp_path, other_models(r18_weights)[what])
    res = run_in_process("build", str(path), "-o", str(tmp_path / "m.maskrt"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("maskrt: error: ")
    assert f"is {what}" in res.stderr and "not Mask R-CNN" in res.stderr or what in res.stderr, res.stderr
    assert not (tmp_path / "m.maskrt").exists()
