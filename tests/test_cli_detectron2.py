"""The command line with a detectron2 model-zoo .pkl: `maskrt build` (an int8 CPU engine: its
calibration runs detectron2's preprocessing), `maskrt info` (a detectron2 checkpoint, the values
assumed), `maskrt run` (JSON lines whose masks are detectron2's paste of the engine's detections),
and --config where it does not apply. Small input sizes keep it cheap (~40 s on 2 cores)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

import maskrt
from tests.cli_runner import run_in_process
from tests.model.detectron2 import weights as W


def test_build_info_run_a_detectron2_pkl(tmp_path):
    pkl = tmp_path / "model_final.pkl"
    W.save_model_zoo_pkl(W.weights_from_spec(W.load_spec("r18_fpn64_c7_agnostic_mask")), pkl)
    engine = tmp_path / "r18.maskrt"
    res = run_in_process("build", str(pkl), "-o", str(engine), "--precision", "int8", "--calibration", "synthetic",
                         "--calibration-size", "2", "--min-size", "192", "--max-size", "256", "--quiet")
    assert res.returncode == 0, res.stderr
    info = run_in_process("info", str(engine)).stdout
    assert "mask_rcnn_R_18_FPN (detectron2)" in info and "target:       cpu (int8)" in info
    assert "checkpoint:   detectron2" in info and "INPUT.FORMAT = BGR" in info and "BGR, detectron2 resize" in info

    folder = tmp_path / "imgs"
    folder.mkdir()
    images = [W.image("tiny_150x200"), W.image("portrait_600x400")]
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img{i}.png")
    out = tmp_path / "out.jsonl"
    res = run_in_process("run", str(folder), "--model", str(engine), "--json", str(out), "--score-threshold", "0.05",
                         "--quiet")
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    seg = maskrt.load(engine)
    assert seg.backend.detector.config.numerics == "detectron2"
    for record, img in zip(records, images):
        dets = seg(img)
        assert len(record["instances"]) == len(dets) > 0
        for inst, box, mask in zip(record["instances"], dets.boxes, dets.masks):
            x, y, w, h = inst["bbox"]
            np.testing.assert_allclose([x, y, x + w, y + h], box, atol=1e-2)
            assert np.array_equal(mask_utils.decode(inst["segmentation"]).astype(bool), mask)

    res = run_in_process("run", str(folder), "--model", str(engine), "--json", str(tmp_path / "x.jsonl"), "--config",
                         str(tmp_path / "model.yaml"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--config applies to detectron2 checkpoints" \
        in res.stderr
