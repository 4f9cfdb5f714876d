"""detectron2 YAML configs (maskrt.model.detectron2.config): _BASE_ chains, yacs value decoding,
detectron2's defaults for what a chain leaves out, the model zoo's values without a config, the
settings applied to the model, class names from the test dataset, and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maskrt.errors import CheckpointError
from maskrt.model import load_model
from maskrt.model.detectron2 import class_names, read_config
from maskrt.model.detectron2.config import SETTINGS
from tests.cli_runner import run_in_process
from tests.model.detectron2 import weights as W
from tests.model.detectron2.conftest import random_state_dict

BASE = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE: {NAME: "build_resnet_fpn_backbone"}
  RESNETS: {OUT_FEATURES: ["res2", "res3", "res4", "res5"]}
  FPN: {IN_FEATURES: ["res2", "res3", "res4", "res5"]}
  ANCHOR_GENERATOR: {SIZES: [[32], [64], [128], [256], [512]], ASPECT_RATIOS: [[0.5, 1.0, 2.0]]}
  RPN: {IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"], PRE_NMS_TOPK_TEST: 1000, POST_NMS_TOPK_TEST: 1000}
  ROI_HEADS: {NAME: "StandardROIHeads", IN_FEATURES: ["p2", "p3", "p4", "p5"]}
  ROI_BOX_HEAD: {NAME: "FastRCNNConvFCHead", NUM_FC: 2, POOLER_RESOLUTION: 7}
  ROI_MASK_HEAD: {NAME: "MaskRCNNConvUpsampleHead", NUM_CONV: 4, POOLER_RESOLUTION: 14}
DATASETS:
  TEST: ("coco_2017_val",)
"""
# the R18 golden model's architecture, on top of BASE (as mask_rcnn_*.yaml sit on Base-RCNN-FPN.yaml)
R18 = """
_BASE_: "../base/Base-RCNN-FPN.yaml"
MODEL:
  MASK_ON: True
  RESNETS: {DEPTH: 18, RES2_OUT_CHANNELS: 64}
  FPN: {OUT_CHANNELS: 64}
  ROI_HEADS: {NUM_CLASSES: 7}
  ROI_BOX_HEAD: {FC_DIM: 256}
  ROI_MASK_HEAD: {CONV_DIM: 128, CLS_AGNOSTIC_MASK: True}
"""


def write_chain(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "Base-RCNN-FPN.yaml").write_text(BASE)
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "r18.yaml").write_text(R18)
    path = tmp_path / "models" / "mine.yaml"
    path.write_text('_BASE_: "r18.yaml"\n' + extra)
    return path


@pytest.fixture
def r18_pkl(tmp_path, r18_weights) -> Path:
    W.save_model_zoo_pkl(r18_weights, tmp_path / "model_final.pkl")
    return tmp_path / "model_final.pkl"


def test_base_chains_merge_and_decode(tmp_path):
    cfg = read_config(write_chain(tmp_path, "MODEL:\n  RPN: {POST_NMS_TOPK_TEST: 500}\nINPUT: {FORMAT: RGB}\n"))
    assert [Path(p).name for p in cfg.chain] == ["mine.yaml", "r18.yaml", "Base-RCNN-FPN.yaml"]
    v = cfg.values
    assert v["MODEL.RPN.POST_NMS_TOPK_TEST"] == 500 and v["MODEL.RPN.PRE_NMS_TOPK_TEST"] == 1000  # child wins
    assert v["MODEL.RESNETS.DEPTH"] == 18 and v["DATASETS.TEST"] == ("coco_2017_val",)  # yacs literal decoding
    assert cfg.get("INPUT.FORMAT") == "RGB" and cfg.get("INPUT.MIN_SIZE_TEST") == 800  # detectron2's default
    assert cfg.assumed() == {}


def test_without_a_config_the_model_zoo_values_are_assumed():
    cfg = read_config(None)
    assert cfg.get("MODEL.RPN.PRE_NMS_TOPK_TEST") == 1000  # Base-RCNN-FPN's, not defaults.py's 6000
    assert cfg.assumed() == {k: zoo for k, (_, zoo) in SETTINGS.items()}
    assert cfg.assumed()["MODEL.RESNETS.STRIDE_IN_1X1"] is True and cfg.assumed()["INPUT.FORMAT"] == "BGR"


def test_resnext_weights_assume_the_model_zoos_resnext_settings(tmp_path):
    """Without a config, grouped weights get what every model-zoo ResNeXt Mask R-CNN sets
    (mask_rcnn_X_101_32x8d_FPN_3x.yaml): the stride in the 3x3 convolution and PIXEL_STD; the X50
    golden (built from those values) then needs no config."""
    from maskrt.model.detectron2 import build

    weights = {k: torch.from_numpy(v) for k, v in random_state_dict("x50g8_fpn128_c3_agnostic_box").items()}
    parts = build(weights, "x50")
    assert parts.config.groups == 8 and parts.config.stride_in_1x1 is False
    assert parts.policy.std == (57.375, 57.120, 58.395)
    assert parts.provenance["assumed"]["MODEL.RESNETS.STRIDE_IN_1X1"] is False


def test_a_chain_without_the_fpn_base_gets_detectron2s_defaults(tmp_path):
    """A config that does not set PRE_NMS_TOPK_TEST takes detectron2's 6000 (defaults.py), as
    detectron2 would run it; one without Base-RCNN-FPN is a C4 model by detectron2's defaults."""
    path = write_chain(tmp_path)
    assert read_config(path).get("MODEL.RPN.PRE_NMS_TOPK_TEST") == 1000
    lone = tmp_path / "lone.yaml"
    lone.write_text("MODEL: {MASK_ON: True}\n")
    assert read_config(lone).get("MODEL.RPN.PRE_NMS_TOPK_TEST") == 6000


def test_settings_reach_the_model(tmp_path, r18_pkl):
    extra = """
INPUT: {FORMAT: RGB, MIN_SIZE_TEST: 600, MAX_SIZE_TEST: 1000}
MODEL:
  PIXEL_MEAN: [1.0, 2.0, 3.0]
  PIXEL_STD: [4.0, 5.0, 6.0]
  RPN: {PRE_NMS_TOPK_TEST: 300, POST_NMS_TOPK_TEST: 200, NMS_THRESH: 0.6}
  PROPOSAL_GENERATOR: {MIN_SIZE: 2}
  ROI_HEADS: {SCORE_THRESH_TEST: 0.3, NMS_THRESH_TEST: 0.4}
  ROI_BOX_HEAD: {POOLER_SAMPLING_RATIO: 2}
  ROI_MASK_HEAD: {POOLER_SAMPLING_RATIO: 2}
TEST: {DETECTIONS_PER_IMAGE: 50}
DATASETS:
  TEST: ("cityscapes_fine_instance_seg_val",)
"""
    loaded = load_model(r18_pkl, config=write_chain(tmp_path, extra))
    det = loaded.model.detector
    p = det.policy
    assert (p.min_size, p.max_size, p.mean, p.std, p.channels, p.resize) == (600, 1000, (1.0, 2.0, 3.0),
                                                                             (4.0, 5.0, 6.0), "RGB", "detectron2")
    r, d = det.proposals.params, det.detection_params
    assert (r.pre_nms_top_n, r.post_nms_top_n, r.nms_thresh, r.min_size) == (300, 200, 0.6, 2.0)
    assert (d.score_thresh, d.nms_thresh, d.detections_per_img, d.sampling_ratio) == (0.3, 0.4, 50, 2)
    assert loaded.classes == ["__background__", *("class_%d" % i for i in range(1, 8))]  # 7 classes: not Cityscapes'
    assert loaded.provenance == {"format": "detectron2", "config": str(tmp_path / "models" / "mine.yaml"),
                                 "assumed": {}}


def test_class_names_from_the_test_dataset(tmp_path):
    coco = class_names(read_config(None), 81)
    assert len(coco) == 81 and coco[:3] == ["__background__", "person", "bicycle"] and coco[-1] == "toothbrush"
    assert class_names(read_config(None), 8)[1:] == [f"class_{i}" for i in range(1, 8)]
    city = write_chain(tmp_path, 'DATASETS: {TEST: ["cityscapes_fine_instance_seg_val"]}\n')
    assert class_names(read_config(city), 9)[1:] == ["person", "rider", "car", "truck", "bus", "train", "motorcycle",
                                                     "bicycle"]
    lvis = write_chain(tmp_path, 'DATASETS:\n  TEST: ("lvis_v1_val",)\n')
    assert class_names(read_config(lvis), 1204)[1203] == "class_1203"


@pytest.mark.parametrize("extra,message", [
    ("MODEL: {ROI_BOX_HEAD: {POOLER_TYPE: ROIAlign}}", "MODEL.ROI_BOX_HEAD.POOLER_TYPE is 'ROIAlign'; maskrt builds"),
    ("MODEL: {RESNETS: {DEPTH: 101}}", "MODEL.RESNETS.DEPTH is 101, but the checkpoint's weights have 18"),
    ("MODEL: {ROI_HEADS: {NUM_CLASSES: 80}}", "MODEL.ROI_HEADS.NUM_CLASSES is 80, but the checkpoint's weights have 7"),
    ("MODEL: {KEYPOINT_ON: True}", "MODEL.KEYPOINT_ON is True"),
    ("MODEL: {RESNETS: {NORM: GN}}", "MODEL.RESNETS.NORM is 'GN'"),
    ("MODEL: {ROI_MASK_HEAD: {POOLER_SAMPLING_RATIO: 2}}", "POOLER_SAMPLING_RATIO differ (0, 2)"),
    ("MODEL: {ANCHOR_GENERATOR: {OFFSET: 0.5}}", "MODEL.ANCHOR_GENERATOR.OFFSET is 0.5"),
    ("INPUT: {FORMAT: YUV}", "INPUT.FORMAT 'YUV' is not supported"),
    ("INPUT: {MIN_SIZE_TEST: 0}", "INPUT.MIN_SIZE_TEST must be an integer >= 1, got 0"),
    ("MODEL: {PIXEL_STD: [1.0, 0.0, 1.0]}", "MODEL.PIXEL_STD must be positive"),
    ("MODEL: {ROI_HEADS: {SCORE_THRESH_TEST: 1.5}}", "SCORE_THRESH_TEST must be in [0, 1], got 1.5"),
])
def test_configs_maskrt_cannot_honour_are_refused(tmp_path, r18_pkl, extra, message):
    with pytest.raises(CheckpointError) as info:
        load_model(r18_pkl, config=write_chain(tmp_path, extra + "\n"))
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("text,message", [
    ('_BASE_: "mine.yaml"\n', "_BASE_ chain loops back"),
    ('_BASE_: "nowhere.yaml"\n', "config not found"),
    ('_BASE_: "https://example.com/base.yaml"\n', "URLs are not fetched"),
    ("MODEL: [unclosed\n", "is not valid YAML"),
    ("- a list\n", "is not a detectron2 config"),
])
def test_unreadable_configs_are_one_line(tmp_path, r18_pkl, text, message):
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "mine.yaml"
    path.write_text(text)
    res = run_in_process("info", str(r18_pkl), "--config", str(path))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_info_names_the_config_or_the_assumed_values(tmp_path, r18_pkl):
    res = run_in_process("info", str(r18_pkl))
    assert res.returncode == 0 and "checkpoint:   detectron2" in res.stdout
    assert "assumed:" in res.stdout and "MODEL.RESNETS.STRIDE_IN_1X1 = True" in res.stdout
    path = write_chain(tmp_path)
    res = run_in_process("info", str(r18_pkl), "--config", str(path))
    assert res.returncode == 0 and f"config:       {path}" in res.stdout and "assumed:" not in res.stdout
