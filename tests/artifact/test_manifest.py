"""Engine integrity (issue 16, items 14-15): every manifest field validated in one EngineError
line (table-driven), payload names confined to the engine folder, every loaded file listed and
hashed, and --min-size/--max-size applied to engine folders (checked against the torch backend).

Engines are hard-linked copies of the small model's cached CPU engine (only manifest.json is a
real copy), so each case costs a directory of links, not 50 MB.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import maskrt
from tests.conftest import cached_engine_dir
from maskrt.artifact import read_manifest
from maskrt.cli import main
from maskrt.errors import EngineError
from tests.builders.test_build import assert_close_detections
from tests.conftest import random_image


@pytest.fixture(scope="module")
def engine(small_checkpoint) -> Path:
    return cached_engine_dir(small_checkpoint)


@pytest.fixture(scope="module")
def manifest(engine) -> dict:
    return json.loads((engine / "manifest.json").read_text())


def linked_copy(engine: Path, dst: Path, data: dict | None = None) -> Path:
    """dst: the engine's payload hard-linked, manifest.json written from `data` (or copied)."""
    shutil.copytree(engine, dst, copy_function=os.link, ignore=shutil.ignore_patterns("manifest.json"))
    text = json.dumps(data) if data is not None else (engine / "manifest.json").read_text()
    (dst / "manifest.json").write_text(text)
    return dst


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()
# (field to change, new value, what the one-line error says)
MALFORMED = [
    ("config", [1, 2], "config must be an object"),
    ("config.depth", 19, "config.depth must be one of"),
    ("config.num_classes", "5", "config.num_classes must be a positive integer"),
    ("config.mask_layers", "64", "config.mask_layers must be a list of positive integers"),
    ("config.box_head", "transformer", "config.box_head must be one of"),
    ("config.fpn_norm", 1, "config.fpn_norm must be true or false"),
    ("config.depth", _DELETE, "config.depth is missing"),
    ("config.numerics", "caffe2", "config.numerics must be one of torchvision, detectron2"),
    ("config.stride_in_1x1", "yes", "config.stride_in_1x1 must be true or false"),
    ("config.groups", 0, "config.groups must be a positive integer"),
    ("config.mask_agnostic", None, "config.mask_agnostic must be true or false"),
    ("files", ["dense.xml"], "files must be an object"),
    ("files", {}, "files is empty"),
    ("files", _DELETE, "files is missing"),
    ("stages.mask", _DELETE, "stages lacks stage 'mask'"),
    ("stages.extra", "box.xml", "stages has unknown stages"),
    ("thresholds.detection", _DELETE, "thresholds.detection is missing"),
    ("thresholds.detection.score_thresh", _DELETE, "thresholds.detection.score_thresh is missing"),
    ("thresholds.detection.detections_per_img", 0, "detections_per_img must be a positive integer"),
    ("thresholds.rpn.nms_thresh", 2.0, "thresholds.rpn.nms_thresh must be a number in [0, 1]"),
    ("thresholds.rpn.pre_nms_top_n", "many", "pre_nms_top_n must be a positive integer"),
    ("thresholds", "strict", "thresholds must be an object"),
    ("input_policy.min_size", 0, "input_policy.min_size must be a positive integer"),
    ("input_policy.min_size", -5, "input_policy.min_size must be a positive integer"),
    ("input_policy.max_size", 1.5, "input_policy.max_size must be a positive integer"),
    ("input_policy.max_size", True, "input_policy.max_size must be a positive integer"),
    ("input_policy.mean", [0.5, 0.5], "input_policy.mean must be a list of 3 numbers"),
    ("input_policy.std", [0.2, 0.0, 0.2], "input_policy.std must be positive"),
    ("classes", [0, 1, 2, 3, 4], "classes must be a list of class names"),
    ("classes", ["a", "b"], "classes has 2 names for a 5-class model"),
    ("target", "gpu", "target must be one of"),
    ("precision", "int3", "precision must be one of"),
    ("source", ["x"], "source must be an object"),
    ("source.format", "caffe2", "source.format must be one of torchvision, detectron2"),
    ("source.config", 3, "source.config must be a string"),
    ("source.assumed", ["INPUT.FORMAT"], "source.assumed must be an object"),
    ("source.assumed", {"INPUT.FORMAT": {"x": 1}}, "source.assumed.INPUT.FORMAT must be a config value"),
    ("source.surprise", 1, "source has an unknown key 'surprise'"),
    ("input_policy.channels", "GBR", "input_policy.channels must be one of RGB, BGR"),
    ("input_policy.resize", "cv2", "input_policy.resize must be one of torchvision, detectron2"),
    ("versions", {"maskrt": 1}, "versions.maskrt must be a string"),
    ("surprise", 1, "surprise is not a manifest field"),
    ("files./etc/passwd", "0" * 64, "not a plain path inside the engine folder"),
    ("files.../../../../etc/passwd", "0" * 64, "not a plain path inside the engine folder"),
    ("files.box.bin", "not-a-digest", "has no sha256"),
    ("stages.dense", "/tmp/elsewhere/dense.xml", "not a plain path inside the engine folder"),
    ("stages.dense", "dense.onnx.xml", "which files does not list"),
    ("box_form", "conv1x1", "box_form must be an object"),
    ("box_form.form", "fft", "box_form.form must be one of matmul, conv1x1"),
    ("box_form.form", _DELETE, "box_form.form must be one of"),
    ("box_form.rows", 0, "box_form.rows must be a positive integer"),
    ("box_form.ms", {"matmul": 1.0}, "box_form.ms must give a positive time for each of matmul, conv1x1"),
    ("box_form.ms.conv1x1", -2.0, "box_form.ms must give a positive time"),
    ("box_form.form", "split_k", "box_form.ms must give a positive time for each of matmul, conv1x1 and the form"),
    ("box_form.ms.fft", 1.0, "box_form.ms must give a positive time"),
    ("box_form.chosen_by", 3, "box_form.chosen_by must be a string"),
    ("box_form.guess", True, "box_form has an unknown key 'guess'"),
]


@pytest.mark.parametrize("field,value,message", MALFORMED, ids=[f"{f}={str(v)[:12]}" for f, v, _ in MALFORMED])
def test_malformed_field_is_one_line(engine, manifest, tmp_path, capsys, field, value, message):
    data = copy.deepcopy(manifest)
    if field.startswith("files.") and value != "not-a-digest":
        data["files"][field[len("files."):]] = value  # a name with dots and slashes: not a path of keys
    elif field == "files.box.bin":
        data["files"]["box.bin"] = value
    else:
        _set(data, field, value)
    eng = linked_copy(engine, tmp_path / "e.maskrt", data)
    with pytest.raises(EngineError) as info:
        maskrt.load(eng)
    text = str(info.value)
    assert message in text and "\n" not in text and "manifest.json field" in text, text
    assert main(["info", str(eng)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maskrt: error: ") and message in err, err


def test_a_stage_on_an_unlisted_file_with_altered_weights_is_refused(engine, manifest, tmp_path):
    """Issue 16, item 14: a stage pointed at a copy with altered weights that `files` does not
    list loaded with exit 0; every file a stage loads must be listed, hence hashed."""
    eng = linked_copy(engine, tmp_path / "e.maskrt")
    shutil.copy(engine / "box.xml", eng / "evil.xml")
    weights = bytearray((engine / "box.bin").read_bytes())
    weights[100:104] = b"\x00\x01\x02\x03"
    (eng / "evil.bin").write_bytes(bytes(weights))
    data = copy.deepcopy(manifest)
    data["stages"]["box"] = "evil.xml"
    (eng / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match="stages.box loads evil.xml, which files does not list"):
        maskrt.load(eng)
    data["files"]["evil.xml"] = data["files"]["box.xml"]  # listed now, but with box.xml's hash
    data["files"]["evil.bin"] = data["files"]["box.bin"]
    (eng / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match="evil.bin does not match its sha256"):
        maskrt.load(eng)


def test_a_payload_symlink_leading_out_of_the_engine_is_refused(engine, tmp_path):
    eng = linked_copy(engine, tmp_path / "e.maskrt")
    outside = tmp_path / "outside.bin"
    shutil.copy(engine / "box.bin", outside)  # same bytes, so only the confinement can refuse it
    (eng / "box.bin").unlink()
    (eng / "box.bin").symlink_to(outside)
    with pytest.raises(EngineError, match="box.bin leads outside the engine folder"):
        read_manifest(eng)


def test_every_loaded_file_is_listed_in_a_built_engine(engine, manifest):
    """The builder's own output passes: each stage's .xml and .bin are in files."""
    for name in manifest["stages"].values():
        assert name in manifest["files"] and name[:-4] + ".bin" in manifest["files"]
    assert read_manifest(engine).stages == manifest["stages"]


def test_min_and_max_size_apply_to_engine_folders(engine, small_checkpoint):
    """Issue 16, item 15: the sizes were ignored for engine folders. The engine with 128/192
    must match the torch backend run with 128/192 (tests/builders/test_build.py's ENGINE_TOLERANCE,
    argued there: OpenVINO f32 vs torch differ by float rounding only), and differ from the
    engine at its own 320/512."""
    image = random_image(np.random.default_rng(15), 240, 300)
    small = maskrt.load(engine, min_size=128, max_size=192, score_threshold=0.01)
    oracle = maskrt.load(small_checkpoint, backend="torch", min_size=128, max_size=192, score_threshold=0.01)
    assert_close_detections(small, oracle, image)
    default = maskrt.load(engine, score_threshold=0.01)(image)
    assert small.backend.detector.policy.min_size == 128
    assert len(default) != len(small(image)) or not np.allclose(default.boxes, small(image).boxes, atol=0.5)


def test_sizes_on_a_tensorrt_engine_are_refused_in_one_line(engine, manifest, tmp_path):
    data = copy.deepcopy(manifest)
    data["target"], data["stages"] = "tensorrt", {"model": "onnx/dense.onnx"}
    eng = linked_copy(engine, tmp_path / "t.maskrt", data)
    with pytest.raises(EngineError, match="built for min_size 320; rebuild it with `maskrt build --min-size 128`"):
        maskrt.load(eng, min_size=128)
