"""Deterministic detectron2-layout weights and synthetic images for the detectron2 goldens.

stdlib + numpy only: maskrt's tests import this without detectron2 (and so does
tools/detectron2_goldens.py, which runs detectron2 in a side environment to write the goldens).

A weights spec (``<model>.spec.json`` next to this file) holds the model's state-dict layout
(key, shape, dtype, in detectron2's ``model.state_dict()`` order) and the init rules. Every tensor
is drawn from ``np.random.RandomState([seed, crc32(key)])`` (the legacy generator: its streams
are frozen by NumPy's compatibility policy), so a tensor depends only on (seed, key, shape) and
never on the other keys or their order.

Base distribution by role (chosen from the key):

    conv weight (4-D)               N(0, 1) * sqrt(2 / fan_in), fan_in = shape[1] * kh * kw
    ConvTranspose2d weight ("deconv")  (in, out, kh, kw): one N(0, 1) * sqrt(2 / in) value per
                                    (in, out) shared by the kh*kw taps, plus 10 % per-tap noise
                                    (no checkerboard in the 28x28 masks)
    linear weight (2-D)             N(0, 1) * sqrt(2 / shape[1])
    conv / linear bias              N(0, 1) * 0.05
    FrozenBN weight                 U(0.5, 1.5)
    FrozenBN bias                   N(0, 1) * 0.1
    FrozenBN running_mean           N(0, 1) * 0.1
    FrozenBN running_var            U(0.5, 1.5)

then, from the first init rule whose regex matches the key (``re.search``), if any: "values"
replaces the draw with the listed numbers (used for the calibrated class/mask biases); otherwise,
with "center": true the draw's mean over all but the first (output) dimension is subtracted, then
``value * scale + shift`` ("scale" 1 and "shift" 0 when absent). The spec's rules tame the
random ResNet (small last-BN gain in each residual branch, a stem scaled to 0..255 inputs) and
scale the heads so that detections are distinct: see tools/detectron2_goldens.py.
"""

from __future__ import annotations

import json
import pickle
import re
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

HERE = Path(__file__).resolve().parent

# The synthetic test images: (name, seed, height, width); uint8 RGB from synthetic_image().
IMAGES: tuple[tuple[str, int, int, int], ...] = (
    ("landscape_480x640", 101, 480, 640),  # upscaled to 800 x 1067
    ("portrait_600x400", 102, 600, 400),  # upscaled to 1200 x 800
    ("wide_333x777", 103, 333, 777),  # long side clamped: 571 x 1333
    ("large_1000x1400", 104, 1000, 1400),  # downscaled (PIL bilinear with its antialiasing support)
    ("tiny_150x200", 105, 150, 200),  # smaller than every stride-64 cell: 800 x 1067
)


def _rng(seed: int, key: str) -> np.random.RandomState:
    return np.random.RandomState([seed & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])


def _base(key: str, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
    n = len(shape)
    if key.endswith(".norm.weight") and n == 1:
        return rng.uniform(0.5, 1.5, size=shape)
    if key.endswith(".norm.bias") and n == 1:
        return rng.standard_normal(shape) * 0.1
    if key.endswith(".running_mean") and n == 1:
        return rng.standard_normal(shape) * 0.1
    if key.endswith(".running_var") and n == 1:
        return rng.uniform(0.5, 1.5, size=shape)
    if key.endswith(".bias") and n == 1:
        return rng.standard_normal(shape) * 0.05
    if key.endswith(".weight") and n == 4 and ".deconv." in key:
        cin, cout, kh, kw = shape
        shared = rng.standard_normal((cin, cout, 1, 1))
        taps = rng.standard_normal(shape)
        return (shared + 0.1 * taps) * np.sqrt(2.0 / cin)
    if key.endswith(".weight") and n == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if key.endswith(".weight") and n == 2:
        return rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])
    raise ValueError(f"no init role for state-dict key {key!r} of shape {shape}")


def _apply(rule: dict[str, Any], key: str, shape: tuple[int, ...], value: np.ndarray) -> np.ndarray:
    if "values" in rule:  # explicit (small, calibrated) tensors
        values = np.asarray(rule["values"], dtype=np.float64)
        if values.size != value.size:
            raise ValueError(f"{key}: {values.size} values for shape {shape}")
        return values.reshape(shape)
    if rule.get("center", False):  # zero mean over everything but the output dimension
        value = value - value.mean(axis=tuple(range(1, value.ndim)), keepdims=True)
    return value * float(rule.get("scale", 1.0)) + float(rule.get("shift", 0.0))


def weights_from_spec(spec: dict[str, Any] | Iterable, seed: int | None = None) -> dict[str, np.ndarray]:
    """{key: float32 array} in spec order.

    ``spec`` is a loaded ``<model>.spec.json`` (a dict with "tensors", "init" and "seed") or a bare
    list of [key, shape, dtype] entries (base distributions only). ``seed`` defaults to spec["seed"].
    """
    if isinstance(spec, dict):
        tensors = spec["tensors"]
        rules = [(re.compile(r["match"]), r) for r in spec.get("init", [])]
        if seed is None:
            seed = int(spec["seed"])
    else:
        tensors, rules = list(spec), []
    if seed is None:
        raise ValueError("weights_from_spec: no seed given and none in the spec")
    out: dict[str, np.ndarray] = {}
    for key, shape, dtype in tensors:
        if dtype != "float32":
            raise ValueError(f"{key}: only float32 tensors are generated, got {dtype}")
        shape = tuple(int(s) for s in shape)
        value = _base(key, shape, _rng(seed, key))
        for pattern, rule in rules:
            if pattern.search(key):
                value = _apply(rule, key, shape, value)
                break
        out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def load_spec(name_or_path: str | Path) -> dict[str, Any]:
    """A weights spec by model name ("r50_fpn_coco") or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = HERE / f"{name_or_path}.spec.json"
    return json.loads(path.read_text())


def save_model_zoo_pkl(
    weights: dict[str, np.ndarray],
    path: str | Path,
    author: str = "maskrt detectron2 goldens",
    matching_heuristics: bool | None = None,
) -> None:
    """Write ``{"model": {key: ndarray}, "__author__": author}`` the way detectron2's model zoo does.

    With both "model" and "__author__", DetectionCheckpointer takes the dict as detectron2-named
    (no Caffe2 renaming); "matching_heuristics": True would make it match keys by suffix instead of
    exactly (only added when asked).
    """
    data: dict[str, Any] = {"model": {k: np.asarray(v) for k, v in weights.items()}, "__author__": author}
    if matching_heuristics is not None:
        data["matching_heuristics"] = bool(matching_heuristics)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def synthetic_image(seed: int, height: int, width: int) -> np.ndarray:
    """A uint8 RGB image (H, W, 3): a two-colour gradient, 5-9 flat rectangles and ellipses, mild noise."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    c0, c1 = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(int(rng.randint(5, 10))):
        color = rng.uniform(0, 255, size=3)
        h = rng.uniform(0.1, 0.5) * height
        w = rng.uniform(0.1, 0.5) * width
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        if rng.uniform() < 0.5:
            inside = (np.abs(yy - cy) < h / 2) & (np.abs(xx - cx) < w / 2)
        else:
            inside = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 < 1.0
        img[inside] = color
    img = img + rng.standard_normal(img.shape) * 4.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def image(name: str) -> np.ndarray:
    """One of IMAGES by name, as uint8 RGB."""
    for n, seed, h, w in IMAGES:
        if n == name:
            return synthetic_image(seed, h, w)
    raise KeyError(name)


def load_goldens(model: str, directory: str | Path = HERE) -> dict[str, Any]:
    """One model's goldens: {"meta": <model>.json, "images": [per-image dict, in IMAGES order]}.

    Per image (all coordinates in pixels, x1 y1 x2 y2):
      meta                  that image's entry of <model>.json (sizes, sha256 of the resized input, FPN stats)
      proposal_boxes (P,4)  RPN proposals in resized-input coordinates, best first (P <= 1000)
      proposal_logits (P,)  their objectness logits (not sigmoided)
      roi_boxes (R,4)       ROI-head detections before detector_postprocess (resized-input coordinates)
      roi_scores, roi_classes (R,)  classes 0-based, background excluded
      roi_mask_probs (k,28,28)  sigmoid mask probabilities of the first k = min(R, 16) detections,
                            float32 decoded from uint16 (p = u / 65535, |error| <= 7.7e-6)
      boxes (D,4), scores, classes (D,)  DefaultPredictor's output, original-image coordinates
      final_to_roi (D,)     index into the roi_* arrays of each final detection (D <= R: empty
                            boxes after rescaling are dropped)
      masks_rle             D COCO RLEs {"size": [H, W], "counts": bytes} of the pasted bool masks
                            (decode with decode_mask)
    """
    directory = Path(directory)
    meta = json.loads((directory / f"{model}.json").read_text())
    images = []
    with np.load(directory / f"{model}.npz", allow_pickle=False) as z:
        for im in meta["images"]:
            p = im["name"] + "."
            offsets = z[p + "masks_rle_offsets"]
            blob = z[p + "masks_rle"].tobytes()
            size = [im["height"], im["width"]]
            item = {k[len(p):]: z[k] for k in z.files if k.startswith(p)}
            item["roi_mask_probs"] = (item.pop("roi_mask_probs_u16").astype(np.float64) / 65535.0).astype(np.float32)
            item["masks_rle"] = [{"size": size, "counts": blob[a:b]} for a, b in zip(offsets[:-1], offsets[1:])]
            del item["masks_rle_offsets"]
            item["meta"] = im
            images.append(item)
    return {"meta": meta, "images": images}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """(H, W) bool from one COCO RLE (needs pycocotools, a maskrt dependency)."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"]}).astype(bool)
