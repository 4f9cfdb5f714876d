"""detectron2's own CPU inference vs maskrt on the same model-zoo .pkl, in one run, group
"detectron2 r50-fpn 800x1333":

- detectron2 DefaultPredictor (the baseline) on mask_rcnn_R_50_FPN_3x.yaml, in this process;
- maskrt torch backend and maskrt CPU engine (fp32, fp16), `maskrt.load(pkl)` (the model zoo's
  settings, detectron2's numerics).

The model: the R50-FPN golden spec (tests/model/detectron2: 80 classes, weights calibrated so
that detections are distinct, 100 of them on this image), saved as a model-zoo .pkl. The image:
800 x 1333 (ResizeShortestEdge keeps it: no resize), RGB for maskrt, BGR for detectron2. Every
call returns full-size masks (detectron2's pred_masks; maskrt's Detections.masks), torch and
OpenVINO on THREADS threads.

detectron2 runs from a source checkout, never installed into maskrt's environment:
MASKRT_DETECTRON2=<checkout> (its configs/ and the detectron2 package) and
MASKRT_DETECTRON2_SITE=<site-packages of a side environment holding its pure-Python
dependencies: fvcore, iopath, omegaconf, yacs, termcolor, portalocker> (tests/model/detectron2/
README.md sets one up). Without them the detectron2 benchmark is skipped and says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import maskrt
from benchmarks.conftest import THREADS, bench_image
from tests.model.detectron2 import weights as W

GROUP = "detectron2 r50-fpn 800x1333"
ROUNDS = 5


@pytest.fixture(scope="module")
def pkl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("d2") / "model_final.pkl"
    W.save_model_zoo_pkl(W.weights_from_spec(W.load_spec("r50_fpn_coco")), path)
    return path


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return bench_image(800, 1333)


def detectron2_predictor(pkl: Path):
    """DefaultPredictor from the checkout named by MASKRT_DETECTRON2 (skip without it)."""
    checkout, site = os.environ.get("MASKRT_DETECTRON2"), os.environ.get("MASKRT_DETECTRON2_SITE")
    if not checkout or not site:
        pytest.skip("detectron2 not given: set MASKRT_DETECTRON2 (source checkout) and MASKRT_DETECTRON2_SITE "
                    "(its dependencies' site-packages)")
    sys.path.insert(0, checkout)
    sys.path.append(site)  # after maskrt's own: torch, numpy and Pillow stay maskrt's
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.merge_from_file(str(Path(checkout) / "configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
    cfg.MODEL.DEVICE, cfg.MODEL.WEIGHTS = "cpu", str(pkl)
    return DefaultPredictor(cfg)


def test_detectron2_default_predictor(benchmark, pkl, image):
    predictor = detectron2_predictor(pkl)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    count = len(predictor(bgr)["instances"])
    benchmark.group = GROUP
    benchmark.extra_info.update(baseline=True, detections=count)
    benchmark.pedantic(lambda: predictor(bgr)["instances"].pred_masks, rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("backend,precision", [("torch", None), ("openvino", "fp32"), ("openvino", "fp16")])
def test_maskrt(benchmark, pkl, image, backend, precision):
    seg = maskrt.load(pkl, backend=backend, precision=precision, num_threads=THREADS, progress=False)
    benchmark.group = GROUP
    benchmark.extra_info["detections"] = len(seg(image))
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)
