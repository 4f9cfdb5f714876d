#!/usr/bin/env python
"""Write the detectron2 Mask R-CNN goldens in tests/model/detectron2/ (detectron2 is the oracle).

Runs in the side environment described in tests/model/detectron2/README.md (detectron2 from a
source checkout on PYTHONPATH, no C++ extension; torch/torchvision/numpy from maskrt's .venv), never
in maskrt's own .venv:

    PYTHONPATH=/work/side/detectron2 OMP_NUM_THREADS=1 /work/side/d2env/bin/python \
        tools/detectron2_goldens.py --detectron2 /work/side/detectron2

For every model below: build it with detectron2 from the config (base yaml + the explicit overrides
here), record its state-dict layout in <model>.spec.json, fill every tensor deterministically
(tests/model/detectron2/weights.py: seeded by (seed, key), with the init rules here), save that as a
model-zoo style .pkl and load it through DetectionCheckpointer (the path DefaultPredictor takes);
calibrate() then runs the images once and fixes the class-score and mask-predictor scale and biases
(numbers written into the spec: the weights never need detectron2 to be rebuilt), the weights are
reloaded, and DefaultPredictor runs on the synthetic images, recording with forward hooks:

  * the RPN proposals (boxes in resized-input coordinates + objectness logits, best first, all of
    them: up to POST_NMS_TOPK_TEST = 1000),
  * the ROI-head detections before detector_postprocess (boxes in resized-input coordinates,
    scores, classes) and their 28x28 mask probabilities (after the sigmoid, before pasting),
  * DefaultPredictor's final instances (boxes in original-image coordinates, scores, classes) and
    the pasted boolean masks as COCO RLE,
  * checks on the way: the sha256 of the resized uint8 image, resized and padded sizes, and
    mean / std of every FPN level.

Outputs (deterministic bytes: fixed zip timestamps, sorted JSON): <model>.spec.json, <model>.npz,
<model>.json and manifest.json. `--check` regenerates into a temporary folder and compares bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "tests" / "model" / "detectron2"
DEFAULT_D2 = Path("/work/side/detectron2")

# Loaded by path: importing tests.model.detectron2 as a package would shadow nothing, but keeping
# `import detectron2` unambiguous is simpler this way.
_spec = importlib.util.spec_from_file_location("d2_golden_weights", GOLDEN_DIR / "weights.py")
W = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(W)

# ---------------------------------------------------------------------------------------------
# The models. Config = base yaml + these overrides (+ MODEL.DEVICE cpu, MODEL.WEIGHTS the .pkl).
# Init rules (see tests/model/detectron2/weights.py): the first regex (re.search) that matches a
# key wins; "center" / "scale" / "shift" act on the base draw, "values" replaces it. The class-score
# and mask-predictor rules are completed by calibrate() ("calibrate" targets) and written, with the
# numbers it chose, into <model>.spec.json: the weights never need detectron2 to be regenerated.
# ---------------------------------------------------------------------------------------------

_RESNET_BOTTLENECK_RULES = [
    # Pixels are 0..255 minus the mean (PIXEL_STD 1): bring the stem's output to O(1).
    {"match": r"^backbone\.bottom_up\.stem\.conv1\.weight$", "scale": 1 / 64},
    # FrozenBN does not normalise: keep each residual branch small so the sum does not double per block.
    {"match": r"^backbone\.bottom_up\.res\d\.\d+\.conv3\.norm\.weight$", "scale": 0.3},
]

_HEAD_RULES = [
    {"match": r"^roi_heads\.box_head\.fc\d\.weight$", "center": True},
    {"match": r"^backbone\.fpn_(lateral|output)\d\.weight$", "scale": 0.5},
    {"match": r"^proposal_generator\.rpn_head\.objectness_logits\.weight$", "scale": 1.0},
    {"match": r"^proposal_generator\.rpn_head\.anchor_deltas\.weight$", "scale": 0.05},
    {"match": r"^roi_heads\.box_predictor\.cls_score\.weight$", "center": True, "scale": 1.0},
    {"match": r"^roi_heads\.box_predictor\.bbox_pred\.weight$", "center": True, "scale": 0.1},
    {"match": r"^roi_heads\.mask_head\.predictor\.weight$", "center": True, "scale": 1.0},
]

MODELS: dict[str, dict] = {
    # (a) the model-zoo R50-FPN Mask R-CNN, 80 classes, class-specific boxes and masks.
    "r50_fpn_coco": {
        "seed": 1,
        "calibrate": {"cls_std": 2.0, "bg_logit": 9.0, "mask_std": 2.5, "mask_shift": 0.5},
        "base": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "overrides": [],
        "init": _RESNET_BOTTLENECK_RULES + _HEAD_RULES,
    },
    # (b) small: ResNet-18 (BasicBlock), 64-channel FPN, narrow heads, class-agnostic masks, 7 classes.
    "r18_fpn64_c7_agnostic_mask": {
        "seed": 2,
        "calibrate": {"cls_std": 2.0, "bg_logit": 7.5, "mask_std": 2.5, "mask_shift": 0.5},
        "base": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "overrides": [
            "MODEL.RESNETS.DEPTH", 18,
            "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
            "MODEL.FPN.OUT_CHANNELS", 64,
            "MODEL.ROI_HEADS.NUM_CLASSES", 7,
            "MODEL.ROI_BOX_HEAD.FC_DIM", 256,
            "MODEL.ROI_MASK_HEAD.CONV_DIM", 128,
            "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", True,
        ],
        "init": [
            {"match": r"^backbone\.bottom_up\.stem\.conv1\.weight$", "scale": 1 / 64},
            {"match": r"^backbone\.bottom_up\.res\d\.\d+\.conv2\.norm\.weight$", "scale": 0.3},
        ]
        + _HEAD_RULES,
    },
    # (c) ResNeXt-style like model zoo's X-101-32x8d config, scaled down: depth 50, 8 groups x 8,
    #     stride in the 3x3 conv, non-unit PIXEL_STD, 128-channel FPN, class-agnostic boxes, 3 classes.
    "x50g8_fpn128_c3_agnostic_box": {
        "seed": 3,
        "calibrate": {"cls_std": 2.0, "bg_logit": 6.0, "mask_std": 2.5, "mask_shift": 0.5},
        "base": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "overrides": [
            "MODEL.RESNETS.DEPTH", 50,
            "MODEL.RESNETS.NUM_GROUPS", 8,
            "MODEL.RESNETS.WIDTH_PER_GROUP", 8,
            "MODEL.RESNETS.STRIDE_IN_1X1", False,
            "MODEL.PIXEL_STD", [57.375, 57.120, 58.395],
            "MODEL.FPN.OUT_CHANNELS", 128,
            "MODEL.ROI_HEADS.NUM_CLASSES", 3,
            "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", True,
        ],
        "init": [
            # Inputs are already ~unit scale (PIXEL_STD ~58): no stem rule.
            {"match": r"^backbone\.bottom_up\.res\d\.\d+\.conv3\.norm\.weight$", "scale": 0.3},
        ]
        + _HEAD_RULES,
    },
    # (d) HELD OUT: made last, never used while maskrt's detectron2 loader was developed (its config,
    #     seed and images are new). ResNet-34, 96-channel FPN, 512-wide box head, a 2-conv 192-wide mask
    #     head, 12 classes; everything the weights cannot say is the model zoo's (maskrt.load(pkl) with
    #     no config must match). Its own images: a square (h == w), a tall image clamped by MAX_SIZE_TEST,
    #     a panorama.
    "heldout_r34_fpn96_c12": {
        "seed": 34,
        "calibrate": {"cls_std": 2.0, "bg_logit": 7.0, "mask_std": 2.5, "mask_shift": 0.5},
        "base": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "overrides": [
            "MODEL.RESNETS.DEPTH", 34,
            "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
            "MODEL.FPN.OUT_CHANNELS", 96,
            "MODEL.ROI_HEADS.NUM_CLASSES", 12,
            "MODEL.ROI_BOX_HEAD.FC_DIM", 512,
            "MODEL.ROI_MASK_HEAD.CONV_DIM", 192,
            "MODEL.ROI_MASK_HEAD.NUM_CONV", 2,
        ],
        "init": [
            {"match": r"^backbone\.bottom_up\.stem\.conv1\.weight$", "scale": 1 / 64},
            {"match": r"^backbone\.bottom_up\.res\d\.\d+\.conv2\.norm\.weight$", "scale": 0.3},
        ]
        + _HEAD_RULES,
        "images": [("heldout_square_256", 301, 256, 256), ("heldout_tall_900x500", 302, 900, 500),
                   ("heldout_pano_300x1200", 303, 300, 1200)],
    },
}


def model_images(model_def: dict) -> list:
    """(name, seed, height, width) of the images a model runs on: its own, else W.IMAGES."""
    return [tuple(i) for i in model_def.get("images", W.IMAGES)]

# 28x28 mask probabilities are stored for the best MASK_PROBS_TOPK ROI detections of each image
# (all detections' pasted masks are stored, as RLE): keeps the goldens small.
MASK_PROBS_TOPK = 16

# Config values recorded in each <model>.json (what a re-implementation needs besides the weights).
CFG_KEYS = [
    "INPUT.FORMAT", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST",
    "MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD",
    "MODEL.RESNETS.DEPTH", "MODEL.RESNETS.NUM_GROUPS", "MODEL.RESNETS.WIDTH_PER_GROUP",
    "MODEL.RESNETS.STRIDE_IN_1X1", "MODEL.RESNETS.RES2_OUT_CHANNELS", "MODEL.RESNETS.STEM_OUT_CHANNELS",
    "MODEL.RESNETS.NORM", "MODEL.RESNETS.RES5_DILATION", "MODEL.RESNETS.OUT_FEATURES",
    "MODEL.FPN.IN_FEATURES", "MODEL.FPN.OUT_CHANNELS", "MODEL.FPN.NORM", "MODEL.FPN.FUSE_TYPE",
    "MODEL.ANCHOR_GENERATOR.SIZES", "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "MODEL.ANCHOR_GENERATOR.OFFSET",
    "MODEL.RPN.IN_FEATURES", "MODEL.RPN.PRE_NMS_TOPK_TEST", "MODEL.RPN.POST_NMS_TOPK_TEST",
    "MODEL.RPN.NMS_THRESH", "MODEL.RPN.BBOX_REG_WEIGHTS", "MODEL.PROPOSAL_GENERATOR.MIN_SIZE",
    "MODEL.ROI_HEADS.NAME", "MODEL.ROI_HEADS.IN_FEATURES", "MODEL.ROI_HEADS.NUM_CLASSES",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.ROI_HEADS.NMS_THRESH_TEST",
    "MODEL.ROI_BOX_HEAD.NAME", "MODEL.ROI_BOX_HEAD.NUM_FC", "MODEL.ROI_BOX_HEAD.FC_DIM",
    "MODEL.ROI_BOX_HEAD.NUM_CONV", "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION",
    "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", "MODEL.ROI_BOX_HEAD.POOLER_TYPE",
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG",
    "MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE",
    "MODEL.ROI_MASK_HEAD.NAME", "MODEL.ROI_MASK_HEAD.NUM_CONV", "MODEL.ROI_MASK_HEAD.CONV_DIM",
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO",
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK",
    "TEST.DETECTIONS_PER_IMAGE",
]


# ---------------------------------------------------------------------------------------------
# Deterministic writers
# ---------------------------------------------------------------------------------------------


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed without the wall-clock timestamps (np.load reads it as usual)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------
# detectron2 side
# ---------------------------------------------------------------------------------------------


def cfg_get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    if isinstance(node, tuple):
        node = list(node)
    if isinstance(node, list):
        node = [list(x) if isinstance(x, tuple) else x for x in node]
    return node


def build_cfg(d2_root: Path, model: dict, weights_path: str = ""):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(d2_root / "configs" / model["base"]))
    cfg.merge_from_list(list(model["overrides"]))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = weights_path
    cfg.freeze()
    return cfg


class Recorder:
    """Forward hooks on backbone / proposal_generator / roi_heads: clones of what they return."""

    def __init__(self, model):
        self.rec: dict = {}
        model.backbone.register_forward_hook(self._backbone)
        model.proposal_generator.register_forward_hook(self._rpn)
        model.roi_heads.register_forward_hook(self._roi)

    def reset(self):
        self.rec = {}

    def _backbone(self, module, inputs, output):
        self.rec["padded_hw"] = [int(inputs[0].shape[-2]), int(inputs[0].shape[-1])]
        stats = {}
        for name, t in output.items():
            t64 = t.detach().double()
            stats[name] = {
                "shape": [int(s) for s in t.shape],
                "mean": float(t64.mean()),
                "std": float(t64.std()),
                "absmax": float(t64.abs().max()),
            }
        self.rec["fpn"] = stats

    def _rpn(self, module, inputs, output):
        proposals, _ = output
        (p,) = proposals
        self.rec["resized_hw"] = [int(p.image_size[0]), int(p.image_size[1])]
        self.rec["proposal_boxes"] = p.proposal_boxes.tensor.detach().clone().numpy()
        self.rec["proposal_logits"] = p.objectness_logits.detach().clone().numpy()

    def _roi(self, module, inputs, output):
        instances, _ = output
        (r,) = instances
        self.rec["roi_boxes"] = r.pred_boxes.tensor.detach().clone().numpy()
        self.rec["roi_scores"] = r.scores.detach().clone().numpy()
        self.rec["roi_classes"] = r.pred_classes.detach().clone().numpy()
        self.rec["roi_mask_probs"] = r.pred_masks.detach().clone()[:, 0].numpy()


def state_dict_spec(model) -> list[list]:
    out = []
    for key, t in model.state_dict().items():
        out.append([key, [int(s) for s in t.shape], str(t.dtype).replace("torch.", "")])
    return out


def rle_counts(mask: np.ndarray) -> bytes:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert list(rle["size"]) == list(mask.shape)
    return rle["counts"]


def load_weights(model, spec: dict, pkl: Path) -> None:
    """weights.py -> model-zoo .pkl -> DetectionCheckpointer, as DefaultPredictor loads cfg.MODEL.WEIGHTS."""
    from detectron2.checkpoint import DetectionCheckpointer

    weights = W.weights_from_spec(spec)
    W.save_model_zoo_pkl(weights, pkl)
    DetectionCheckpointer(model).load(str(pkl))  # engine/defaults.py DefaultPredictor.__init__
    loaded = model.state_dict()
    assert list(loaded) == list(weights), "state-dict keys changed"
    for k, v in weights.items():
        if not np.array_equal(loaded[k].numpy(), v):
            raise AssertionError(f"{k} was not loaded from the .pkl as written")
    pkl.unlink()


def _g(x: float) -> float:
    """Six significant digits: readable specs, and the value used is exactly the one written."""
    return float(f"{x:.6g}")


def calibrate(predictor, model_def: dict) -> list[dict]:
    """Init rules for the class-score and mask-predictor layers from a first pass over the images.

    Random box-head features share a large common component, so raw class logits have per-class
    offsets that make one class win everywhere. From the pre-bias outputs z = W x of those layers
    (over all proposals / all mask pixels of all images), per output channel c: mean m_c, std s_c.
    Then scale k = target_std / mean_c(s_c) on the (centred) weight and bias_c = -k m_c (+ the
    background logit for the last class, + mask_shift for mask channels): every class gets a fair
    chance, and the background logit sets how many (class, box) pairs pass SCORE_THRESH_TEST.
    """
    import torch

    cal = model_def["calibrate"]
    static = {r["match"]: r for r in model_def["init"]}
    cls_key = r"^roi_heads\.box_predictor\.cls_score\."
    mask_key = r"^roi_heads\.mask_head\.predictor\."
    model = predictor.model
    cls_z, mask_z = [], []

    def cls_hook(m, i, o):
        cls_z.append(o.detach().double() - m.bias.detach().double())

    def mask_hook(m, i, o):
        if o.shape[0]:
            z = o.detach().double() - m.bias.detach().double()[None, :, None, None]
            mask_z.append(z.permute(1, 0, 2, 3).reshape(z.shape[1], -1))

    hooks = [
        model.roi_heads.box_predictor.cls_score.register_forward_hook(cls_hook),
        model.roi_heads.mask_head.predictor.register_forward_hook(mask_hook),
    ]
    for _, seed, h, w in model_images(model_def):
        predictor(np.ascontiguousarray(W.synthetic_image(seed, h, w)[:, :, ::-1]))
    for hk in hooks:
        hk.remove()
    z = torch.cat(cls_z)
    m, s = z.mean(0), z.std(0)
    k = cal["cls_std"] / float(s[:-1].mean())
    bias = (-k * m).tolist()
    bias[-1] += cal["bg_logit"]
    mz = torch.cat(mask_z, dim=1)
    mm, ms = mz.mean(1), mz.std(1)
    km = cal["mask_std"] / float(ms.mean())
    mbias = (-km * mm + cal["mask_shift"]).tolist()
    cls_w = static.get(cls_key + r"weight$", {})
    mask_w = static.get(mask_key + r"weight$", {})
    return [
        {"match": cls_key + r"weight$", "center": cls_w.get("center", False), "scale": _g(cls_w.get("scale", 1.0) * k)},
        {"match": cls_key + r"bias$", "values": [_g(v) for v in bias]},
        {
            "match": mask_key + r"weight$",
            "center": mask_w.get("center", False),
            "scale": _g(mask_w.get("scale", 1.0) * km),
        },
        {"match": mask_key + r"bias$", "values": [_g(v) for v in mbias]},
    ]


def run_model(name: str, model_def: dict, d2_root: Path, out_dir: Path, work_dir: Path, explore: bool) -> dict:
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.engine import DefaultPredictor

    t0 = time.time()
    cfg = build_cfg(d2_root, model_def)
    predictor = DefaultPredictor(cfg)  # random init (MODEL.WEIGHTS "")
    model = predictor.model
    spec = {
        "model": name,
        "seed": model_def["seed"],
        "calibrate": model_def["calibrate"],
        "init": list(model_def["init"]),
        "tensors": state_dict_spec(model),
    }
    load_weights(model, spec, work_dir / f"{name}.pkl")
    spec["init"] = calibrate(predictor, model_def) + spec["init"]
    load_weights(model, spec, work_dir / f"{name}.pkl")

    rec = Recorder(model)
    if explore > 1:
        _explore_hooks(model)
    arrays: dict[str, np.ndarray] = {}
    images_meta = []
    for img_name, seed, h, w in model_images(model_def):
        rgb = W.synthetic_image(seed, h, w)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # DefaultPredictor takes BGR (cv2.imread order)
        # The exact resized uint8 image DefaultPredictor feeds the model (same aug, same input):
        model_in = bgr[:, :, ::-1] if predictor.input_format == "RGB" else bgr
        resized = predictor.aug.get_transform(model_in).apply_image(model_in)
        rec.reset()
        t1 = time.time()
        out = predictor(bgr)["instances"]
        dt = time.time() - t1
        r = rec.rec
        assert list(resized.shape[:2]) == r["resized_hw"], (resized.shape, r["resized_hw"])

        fin_boxes = out.pred_boxes.tensor.numpy().astype(np.float32)
        fin_scores = out.scores.numpy().astype(np.float32)
        fin_classes = out.pred_classes.numpy().astype(np.int64)
        fin_masks = out.pred_masks.numpy()
        # detector_postprocess drops boxes that are empty after rescaling; map final -> ROI index.
        keep = []
        j = 0
        for i in range(len(fin_scores)):
            while r["roi_scores"][j] != fin_scores[i] or r["roi_classes"][j] != fin_classes[i]:
                j += 1
            keep.append(j)
            j += 1
        p = f"{img_name}."
        arrays[p + "proposal_boxes"] = r["proposal_boxes"].astype(np.float32)
        arrays[p + "proposal_logits"] = r["proposal_logits"].astype(np.float32)
        arrays[p + "roi_boxes"] = r["roi_boxes"].astype(np.float32)
        arrays[p + "roi_scores"] = r["roi_scores"].astype(np.float32)
        arrays[p + "roi_classes"] = r["roi_classes"].astype(np.int64)
        probs = r["roi_mask_probs"][:MASK_PROBS_TOPK].astype(np.float64)
        arrays[p + "roi_mask_probs_u16"] = np.rint(probs * 65535.0).astype(np.uint16)
        arrays[p + "boxes"] = fin_boxes
        arrays[p + "scores"] = fin_scores
        arrays[p + "classes"] = fin_classes
        arrays[p + "final_to_roi"] = np.asarray(keep, dtype=np.int64)
        # Pasted masks: COCO compressed RLE strings (pycocotools), concatenated, with offsets.
        counts = [rle_counts(m) for m in fin_masks]
        arrays[p + "masks_rle"] = np.frombuffer(b"".join(counts), dtype=np.uint8)
        arrays[p + "masks_rle_offsets"] = np.cumsum([0] + [len(c) for c in counts]).astype(np.int64)
        images_meta.append(
            {
                "name": img_name,
                "seed": seed,
                "height": h,
                "width": w,
                "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
                "resized_hw": r["resized_hw"],
                "resized_model_input_sha256": hashlib.sha256(np.ascontiguousarray(resized).tobytes()).hexdigest(),
                "padded_hw": r["padded_hw"],
                "fpn": r["fpn"],
                "num_proposals": int(len(r["proposal_logits"])),
                "num_roi_detections": int(len(r["roi_scores"])),
                "num_detections": int(len(fin_scores)),
                "mask_areas": [int(m.sum()) for m in fin_masks],
            }
        )
        if explore:
            explore_print(img_name, r, fin_masks, dt)
    write_json(out_dir / f"{name}.spec.json", spec)
    write_npz(out_dir / f"{name}.npz", arrays)
    meta = {
        "model": name,
        "base_config": model_def["base"],
        "overrides": model_def["overrides"],
        "config": {k: cfg_get(cfg, k) for k in CFG_KEYS},
        "images": images_meta,
    }
    write_json(out_dir / f"{name}.json", meta)
    print(f"{name}: {time.time() - t0:.1f} s", flush=True)
    return meta


def _explore_hooks(model):
    def hook(name):
        def f(module, inputs, output):
            outs = output if isinstance(output, (list, tuple)) else [output]
            for i, o in enumerate(outs[:5]):
                if hasattr(o, "detach") and o.numel():
                    o = o.detach().double()
                    print(
                        f"      [{name}{i}] {list(o.shape)} mean {float(o.mean()):.3g}"
                        f" std {float(o.std()):.3g} max {float(o.max()):.3g}"
                    )
        return f
    bu = model.backbone.bottom_up
    for n in ["stem", "res2", "res3", "res4", "res5"]:
        getattr(bu, n).register_forward_hook(hook(n))
    model.proposal_generator.rpn_head.conv.register_forward_hook(hook("rpn_conv"))
    model.proposal_generator.rpn_head.objectness_logits.register_forward_hook(hook("rpn_logits"))
    model.proposal_generator.rpn_head.anchor_deltas.register_forward_hook(hook("rpn_deltas"))
    model.roi_heads.box_head.register_forward_hook(hook("box_head"))
    model.roi_heads.box_predictor.cls_score.register_forward_hook(hook("cls_logits"))
    model.roi_heads.box_predictor.bbox_pred.register_forward_hook(hook("bbox_deltas"))
    model.roi_heads.mask_head.deconv_relu.register_forward_hook(hook("mask_feat"))
    model.roi_heads.mask_head.predictor.register_forward_hook(hook("mask_logits"))


def explore_print(img_name, r, fin_masks, dt):
    pl = r["proposal_logits"]
    sc = r["roi_scores"]
    mp = r["roi_mask_probs"]
    print(f"  {img_name}: {dt:.2f}s resized {r['resized_hw']} padded {r['padded_hw']}")
    for k, s in r["fpn"].items():
        print(f"    {k} {s['shape']} mean {s['mean']:.3g} std {s['std']:.3g} absmax {s['absmax']:.3g}")
    print(f"    proposals {len(pl)} logits q0/25/50/75/100 {np.percentile(pl, [0, 25, 50, 75, 100]).round(2)}")
    bw = r["proposal_boxes"][:, 2] - r["proposal_boxes"][:, 0]
    bh = r["proposal_boxes"][:, 3] - r["proposal_boxes"][:, 1]
    print(f"    proposal w q {np.percentile(bw, [0, 50, 100]).round(1)} h q {np.percentile(bh, [0, 50, 100]).round(1)}")
    print(f"    roi dets {len(sc)} scores q {np.percentile(sc, [0, 25, 50, 75, 100]).round(3) if len(sc) else []}")
    print(f"    classes {np.bincount(r['roi_classes']).tolist() if len(sc) else []}")
    if len(sc):
        print(f"    mask probs q {np.percentile(mp, [1, 10, 25, 50, 75, 90, 99]).round(3)}")
        areas = fin_masks.reshape(len(fin_masks), -1).sum(1)
        bx = r["roi_boxes"]
        barea = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])
        q = [0, 50, 100]
        print(f"    box area q {np.percentile(barea, q).round(0)} mask area q {np.percentile(areas, q).round(0)}")


def d2_commit(d2_root: Path) -> str:
    try:
        return subprocess.check_output(["git", "-C", str(d2_root), "rev-parse", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def generate(out_dir: Path, d2_root: Path, names: list[str], explore: bool) -> None:
    import PIL
    import torch
    import torchvision

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="d2goldens-") as work:
        for name in names:
            run_model(name, MODELS[name], d2_root, out_dir, Path(work), explore)
    previous = out_dir / "manifest.json"
    done = set(json.loads(previous.read_text())["models"]) if previous.exists() else set()
    models = [m for m in MODELS if m in done or m in names]  # a subset run keeps the others listed
    manifest = {
        "detectron2_commit": d2_commit(d2_root),
        "models": models,
        "images": [{"name": n, "seed": s, "height": h, "width": w} for n, s, h, w in W.IMAGES],
        "model_images": {m: [{"name": n, "seed": s, "height": h, "width": w} for n, s, h, w in model_images(MODELS[m])]
                         for m in models if "images" in MODELS[m]},
        "input_convention": "synthetic_image() is RGB; DefaultPredictor gets rgb[:, :, ::-1] (BGR, as from cv2.imread)",
        "generated_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "command": (
            "PYTHONPATH=<d2 checkout> OMP_NUM_THREADS=1 <side env>/bin/python"
            " tools/detectron2_goldens.py --detectron2 <d2 checkout>"
        ),
    }
    write_json(out_dir / "manifest.json", manifest)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectron2", type=Path, default=DEFAULT_D2, help="detectron2 source checkout (configs/)")
    ap.add_argument("--out", type=Path, default=GOLDEN_DIR)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the goldens were made with 1)")
    ap.add_argument("--explore", action="count", default=0, help="print score / mask statistics (twice: per layer too)")
    ap.add_argument("--check", action="store_true", help="regenerate into a temporary folder, compare bytes with --out")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.detectron2))
    import detectron2  # noqa: F401

    if Path(detectron2.__file__).resolve().parents[1] != args.detectron2.resolve():
        print(f"warning: detectron2 imported from {detectron2.__file__}", file=sys.stderr)
    names = [n for n in args.models.split(",") if n]
    t0 = time.time()
    if not args.check:
        generate(args.out, args.detectron2, names, args.explore)
        print(f"wrote {args.out} in {time.time() - t0:.1f} s")
        return 0
    with tempfile.TemporaryDirectory(prefix="d2goldens-check-") as tmp:
        generate(Path(tmp), args.detectron2, names, args.explore)
        bad = []
        for f in sorted(Path(tmp).iterdir()):
            ref = args.out / f.name
            if not ref.exists() or ref.read_bytes() != f.read_bytes():
                bad.append(f.name)
        print(f"regenerated in {time.time() - t0:.1f} s; differing files: {bad or 'none'}")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
