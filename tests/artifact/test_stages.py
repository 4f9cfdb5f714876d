"""Stage files that disagree with the manifest, table-driven over every way they can (issue 22,
item 8: stage files swapped or truncated, with the manifest's hashes updated to match, passed
`maskrt info` and made `maskrt run` die in an OpenVINO traceback). Each bad engine is refused in
one EngineError line naming the stage, by `maskrt.load`, `maskrt info` and `maskrt run`.

The oracle for what a stage must take and give is written out here from the small model's
architecture (64 FPN channels, 5 classes, 7x7 box and 14x14 mask pools); bad stage files are
the engine's own, swapped or cut, or the engine's own graphs changed with OpenVINO's API (a
renamed, missing or extra port, another rank, another element type, another model's width).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from PIL import Image

import maskrt
from maskrt.artifact.stages import Port, stage_ports
from maskrt.errors import EngineError
from maskrt.hashing import sha256_file
from tests.artifact.test_manifest import engine, linked_copy  # noqa: F401 - the module fixture
from tests.cli_runner import run_in_process


def test_the_declared_ports_of_the_small_model(engine):  # noqa: F811
    from maskrt.artifact import read_manifest

    config = read_manifest(engine).config
    ins, outs = stage_ports("box", config)
    assert [str(p) for p in ins + outs] == ["box_features [?,64,7,7] f32", "class_logits [?,5] f32",
                                            "box_deltas [?,20] f32"]
    ins, outs = stage_ports("mask", config)
    assert [str(p) for p in ins + outs] == ["mask_features [?,64,14,14] f32", "mask_logits [?,5,28,28] f32"]
    ins, outs = stage_ports("dense", config)
    assert str(ins[0]) == "images [?,3,?,?] f32" and len(outs) == 4 + 5 + 5
    assert [str(p) for p in outs if p.name in ("p5", "objectness4", "deltas0")] == [
        "p5 [?,64,?,?] f32", "objectness4 [?,3,?,?] f32", "deltas0 [?,12,?,?] f32"]


def test_class_agnostic_heads_declare_one_box_and_one_mask(engine):  # noqa: F811
    """A class-agnostic box regression gives 4 deltas per RoI, a class-agnostic mask head one mask
    (detectron2's CLS_AGNOSTIC_BBOX / CLS_AGNOSTIC_MASK models)."""
    import dataclasses

    from maskrt.artifact import read_manifest

    config = dataclasses.replace(read_manifest(engine).config, box_agnostic=True, mask_agnostic=True)
    assert [str(p) for p in stage_ports("box", config)[1]] == ["class_logits [?,5] f32", "box_deltas [?,4] f32"]
    assert [str(p) for p in stage_ports("mask", config)[1]] == ["mask_logits [?,1,28,28] f32"]


def _swap(a: str, b: str):
    def change(folder: Path) -> None:
        for ext in (".xml", ".bin"):
            (folder / f"{a}{ext}").rename(folder / "tmp")
            (folder / f"{b}{ext}").rename(folder / f"{a}{ext}")
            (folder / "tmp").rename(folder / f"{b}{ext}")
    return change


def _cut(name: str, keep: float):
    def change(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).unlink()  # a hard link to the cached engine: never written through
        (folder / name).write_bytes(data[: int(len(data) * keep)])
    return change


def _graph(stage: str, edit):
    """Replace a stage by its own graph changed by edit(model) -> openvino.Model."""
    def change(folder: Path) -> None:
        model = ov.Core().read_model(str(folder / f"{stage}.xml"))
        new = edit(model)
        for ext in (".xml", ".bin"):
            (folder / f"{stage}{ext}").unlink()
        ov.save_model(new, str(folder / f"{stage}.xml"), compress_to_fp16=False)
    return change


def _rename_output(model):
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def _drop_output(model):
    return ov.Model([model.outputs[0]], model.get_parameters(), "box")


def _extra_input(model):
    extra = ov.opset13.parameter([-1, 4], ov.Type.f32, name="rois")
    extra.output(0).get_tensor().set_names({"rois"})
    return ov.Model(model.outputs, [*model.get_parameters(), extra], "mask")


def _f16_input(model):
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input("images").tensor().set_element_type(ov.Type.f16)
    return ppp.build()


def _flat_input(model):
    """mask_features as [?, 64, 196] (rank 3), reshaped inside to what the graph computes on."""
    flat = ov.opset13.parameter([-1, 64, 196], ov.Type.f32, name="mask_features")
    flat.output(0).get_tensor().set_names({"mask_features"})
    shaped = ov.opset13.reshape(flat, ov.opset13.constant(np.array([-1, 64, 14, 14], np.int64)), False)
    old = model.get_parameters()[0]
    for target in list(old.output(0).get_target_inputs()):
        target.replace_source_output(shaped.output(0))
    return ov.Model(model.outputs, [flat], "mask")


def _seven_classes(model):
    """A box head of another model: 7 classes (its logits and deltas [?, 7] and [?, 28])."""
    x = ov.opset13.parameter([-1, 64, 7, 7], ov.Type.f32, name="box_features")
    x.output(0).get_tensor().set_names({"box_features"})
    flat = ov.opset13.reshape(x, ov.opset13.constant(np.array([-1, 64 * 49], np.int64)), False)
    outs = []
    for name, width in (("class_logits", 7), ("box_deltas", 28)):
        node = ov.opset13.matmul(flat, ov.opset13.constant(np.zeros((64 * 49, width), np.float32)), False, False)
        node.output(0).get_tensor().set_names({name})
        outs.append(node.output(0))
    return ov.Model(outs, [x], "box")


# (case, change to the engine folder, the stage named, words of the one-line error)
DISAGREEMENTS = [
    ("dense and box swapped", _swap("dense", "box"), "dense", "has inputs box_features"),
    ("box and mask swapped", _swap("box", "mask"), "box", "has inputs mask_features"),
    ("dense and mask swapped", _swap("dense", "mask"), "dense", "has inputs mask_features"),
    ("output renamed", _graph("box", _rename_output), "box", "has outputs logits, box_deltas"),
    ("output missing", _graph("box", _drop_output), "box", "has outputs class_logits; the manifest's box stage"),
    ("extra input", _graph("mask", _extra_input), "mask", "has inputs mask_features, rois"),
    ("another element type", _graph("dense", _f16_input), "dense", "has input images [?,3,?,?] f16"),
    ("another rank", _graph("mask", _flat_input), "mask", "has input mask_features [?,64,196] f32"),
    ("another model's head", _graph("box", _seven_classes), "box",
     "has output class_logits [?,7] f32; the manifest's model needs class_logits [?,5] f32"),
    ("xml truncated", _cut("dense.xml", 0.5), "dense", " at offset "),  # pugixml: where parsing stopped
    ("xml empty", _cut("mask.xml", 0.0), "mask", "cannot be loaded by OpenVINO: Unable to read the model"),
    ("bin truncated", _cut("box.bin", 0.5), "box", "cannot be loaded by OpenVINO: Incorrect weights in bin file"),
]


def disagreeing_engine(engine: Path, folder: Path, change) -> Path:
    """A linked copy of `engine` with `change` applied and every hash in its manifest updated."""
    dst = linked_copy(engine, folder / "bad.maskrt")
    change(dst)
    data = json.loads((dst / "manifest.json").read_text())
    data["files"] = {name: sha256_file(dst / name) for name in data["files"]}
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize("case, change, stage, words", DISAGREEMENTS, ids=[d[0] for d in DISAGREEMENTS])
def test_a_stage_that_disagrees_is_refused_in_one_line(engine, tmp_path, case, change, stage, words):  # noqa: F811
    bad = disagreeing_engine(engine, tmp_path, change)
    with pytest.raises(EngineError) as info:
        maskrt.load(bad)
    message = str(info.value)
    assert f"stage {stage}" in message and words in message and "\n" not in message, message
    assert "Exception from" not in message and "failed at src/" not in message, message  # OpenVINO's reason, not where
    result = run_in_process("info", str(bad))
    assert result.returncode == 2 and result.stderr == f"maskrt: error: {message}\n", result
    assert result.stdout == ""


def test_maskrt_run_refuses_it_before_any_output(engine, tmp_path):  # noqa: F811
    bad = disagreeing_engine(engine, tmp_path, _swap("box", "mask"))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    result = run_in_process("run", str(tmp_path / "a.png"), "--model", str(bad), "--json", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert result.stderr.startswith("maskrt: error: ") and "stage box" in result.stderr
    assert not list(tmp_path.glob("o.jsonl*"))


def test_an_intact_engine_passes_and_info_says_its_stages_were_checked(engine):  # noqa: F811
    result = run_in_process("info", str(engine))
    assert result.returncode == 0, result
    assert "stages:       dense, box, mask: inputs and outputs as the manifest declares" in result.stdout or \
        "inputs and outputs as the manifest declares" in result.stdout


def test_port_text():
    assert str(Port("x", (None, 3, 7), "f16")) == "x [?,3,7] f16"
