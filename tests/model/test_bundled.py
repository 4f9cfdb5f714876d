"""The bundled shapes model: small enough to ship, self-describing, and really segmenting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import maskrt
from maskrt.data import CLASS_NAMES, make_scene
from maskrt.model import load_checkpoint

BUNDLED = Path(maskrt.__file__).resolve().parent / "assets" / "shapes_r18fpn64.safetensors"


def test_bundled_checkpoint_is_small_and_carries_its_metadata():
    assert BUNDLED.stat().st_size <= 25_000_000
    ckpt = load_checkpoint(BUNDLED)
    assert ckpt.classes == CLASS_NAMES
    assert (ckpt.metadata["min_size"], ckpt.metadata["max_size"]) == (320, 320)


def test_bundled_model_loads_from_its_path_alone_and_finds_the_shapes():
    seg = maskrt.load(BUNDLED)
    assert seg.classes == ["__background__", *CLASS_NAMES]
    scene = make_scene(987_654, 0, size=(320, 320))  # a seed never used in training (1000..2999)
    dets = seg(scene.image).above(0.5)
    assert len(dets) > 0
    # every ground-truth object of a fair size is found with the right class and a good mask
    for gt_mask, gt_label in zip(scene.masks, scene.labels):
        if gt_mask.sum() < 400:
            continue
        inter = (dets.masks & gt_mask).reshape(len(dets), -1).sum(1)
        union = (dets.masks | gt_mask).reshape(len(dets), -1).sum(1)
        best = int(np.argmax(inter / union))
        assert inter[best] / union[best] >= 0.7 and dets.labels[best] == gt_label
