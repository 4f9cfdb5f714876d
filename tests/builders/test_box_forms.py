"""The box stage's fully connected layers as 1x1 convolutions or split in two products: same
results (float rounding), chosen by measurement, recorded in the manifest and shown by `maskrt
info`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskrt
from maskrt.artifact import read_manifest
from maskrt.builders import box_forms, build_engine
from maskrt.model import load_model, save_checkpoint
from maskrt.testing import small_torchvision_maskrcnn
from tests.builders.test_build import assert_close_detections
from tests.cli_runner import run_in_process
from tests.conftest import random_image


def v2_checkpoint(tmp_path):
    """A small model with a FastRCNNConvFCHead box head (convs, then one fc): the v2 layout."""
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead

    model = small_torchvision_maskrcnn(num_classes=3, seed=4)
    model.roi_heads.box_head = FastRCNNConvFCHead((64, 7, 7), [32, 32], [128], norm_layer=torch.nn.BatchNorm2d)
    torch.manual_seed(4)
    for m in model.roi_heads.box_head.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return save_checkpoint(tmp_path / "v2.safetensors", model.state_dict())


@pytest.mark.parametrize("layout", ["mlp", "conv"])
def test_conv1x1_form_computes_the_box_stage(small_checkpoint, tmp_path, layout):
    """Same products in another summation order: K <= 3136 terms of float32 products, so the
    outputs differ by <= ~sqrt(K) * 2^-24 of the magnitudes summed (~1e-6 relative here)."""
    source = small_checkpoint if layout == "mlp" else v2_checkpoint(tmp_path)
    model = load_model(source).model
    assert model.config.box_head == layout
    x = torch.randn(37, 64, 7, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.box(x)
        got = box_forms.box_module(model.box, "conv1x1")(x)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5 * float(w.abs().max()))


@pytest.mark.parametrize("layout", ["mlp", "conv"])
def test_split_k_form_computes_the_box_stage(small_checkpoint, tmp_path, layout, monkeypatch):
    """The layers with >= SPLIT_K_MIN inputs (lowered here to split the small models' fc: 3136 and
    1568 inputs) as two products over the halves of their inputs: float rounding only."""
    monkeypatch.setattr(box_forms, "SPLIT_K_MIN", 1024)
    source = small_checkpoint if layout == "mlp" else v2_checkpoint(tmp_path)
    model = load_model(source).model
    assert box_forms.splits_k(model.box)
    x = torch.randn(37, 64, 7, 7, generator=torch.Generator().manual_seed(1))
    split = box_forms.box_module(model.box, "split_k")
    assert sum(isinstance(m, box_forms.SplitKLinear) for m in split.modules()) == 1
    with torch.no_grad():
        want, got = model.box(x), split(x)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5 * float(w.abs().max()))
    monkeypatch.setattr(box_forms, "SPLIT_K_MIN", 8192)
    assert not box_forms.splits_k(model.box)


@pytest.mark.parametrize("ms, form", [
    ({"matmul": 10.0, "conv1x1": 9.0}, "conv1x1"), ({"matmul": 10.0, "conv1x1": 9.6}, "matmul"),
    ({"matmul": 10.0, "conv1x1": 30.0}, "matmul"), ({"matmul": 10.0, "conv1x1": 9.0, "split_k": 8.0}, "split_k"),
    ({"matmul": 10.0, "conv1x1": 11.0, "split_k": 9.7}, "matmul"),
])
def test_another_form_is_kept_only_when_measured_faster_by_the_margin(small_checkpoint, tmp_path, monkeypatch,
                                                                      ms, form):
    import openvino as ov

    times, inputs = iter([t / 1e3 for t in ms.values()]), []

    def fake_time(compiled, example):  # each form timed as the engine runs it: input NHWC
        dims = [d.get_length() for d in list(compiled.input(0).get_partial_shape())[1:]]
        inputs.append((example.shape, example.flags.c_contiguous, dims))
        return next(times)

    monkeypatch.setattr(box_forms, "time_compiled", fake_time)
    model = load_model(small_checkpoint).model
    models = {f: ov.convert_model(str(box_forms.export_box(model, tmp_path / f"{f}.onnx", f))) for f in ms}
    record = box_forms.choose_form(models, 5, int8=False)
    assert record == {"form": form, "chosen_by": "measured at build", "ms": ms, "rows": 5, "precision": "float"}
    assert inputs == [((5, 7, 7, 64), True, [7, 7, 64])] * len(ms)


def test_an_engine_with_the_conv1x1_form_matches_the_torch_backend(small_checkpoint, tmp_path, monkeypatch):
    real = box_forms.choose_form

    def conv_wins(models, rows, int8, threads=None):
        return {**real(models, rows, int8, threads), "form": "conv1x1", "chosen_by": "forced by the test"}

    monkeypatch.setattr(box_forms, "choose_form", conv_wins)
    engine = build_engine(small_checkpoint, tmp_path / "c.maskrt", progress=False)
    manifest = read_manifest(engine)
    assert manifest.box_form["form"] == "conv1x1" and manifest.box_form["rows"] == 1000
    assert set(manifest.box_form["ms"]) == {"matmul", "conv1x1"} and sorted(manifest.files)[0] == "box.bin"
    assert not (engine / "onnx" / "box_conv1x1.onnx").exists()
    seg, reference = maskrt.load(engine), maskrt.load(small_checkpoint, backend="torch")
    for seed in (0, 1):
        assert_close_detections(seg, reference, random_image(np.random.default_rng(seed), 300, 420))
    info = run_in_process("info", str(engine))
    assert "box head:     fully connected layers as conv1x1 (forced by the test: matmul" in info.stdout


def test_an_engine_with_the_split_k_form_matches_the_torch_backend(small_checkpoint, tmp_path, monkeypatch):
    """split_k in an engine (fc6 split, SPLIT_K_MIN lowered): chosen, recorded, shown by info, and
    within the fp32 engine's tolerances of the torch backend."""
    monkeypatch.setattr(box_forms, "SPLIT_K_MIN", 1024)
    real = box_forms.choose_form

    def split_wins(models, rows, int8, threads=None):
        assert set(models) == {"matmul", "conv1x1", "split_k"}
        return {**real(models, rows, int8, threads), "form": "split_k", "chosen_by": "forced by the test"}

    monkeypatch.setattr(box_forms, "choose_form", split_wins)
    engine = build_engine(small_checkpoint, tmp_path / "s.maskrt", progress=False)
    manifest = read_manifest(engine)
    assert manifest.box_form["form"] == "split_k" and set(manifest.box_form["ms"]) == set(box_forms.FORMS)
    assert not any((engine / "onnx" / f"box_{f}.onnx").exists() for f in ("conv1x1", "split_k"))
    seg, reference = maskrt.load(engine), maskrt.load(small_checkpoint, backend="torch")
    for seed in (0, 1):
        assert_close_detections(seg, reference, random_image(np.random.default_rng(seed), 300, 420))
    info = run_in_process("info", str(engine)).stdout.split("box head:")[1].splitlines()[0]
    assert info.startswith("     fully connected layers as split_k (forced by the test: matmul") and "split_k " in info


def test_int8_split_k_quantizes_the_input_once_and_adds_the_halves_in_float(small_checkpoint, tmp_path,
                                                                          monkeypatch):
    """The builder's int8 quantization of the split_k box stage: one activation quantizer before the
    Split (torch.split exports as one Split, which NNCF quantizes before it) and none on the halves'
    partial sums (quantize.split_k_sums is left out), so only the int32 sums are split."""
    import openvino as ov

    from maskrt.builders.quantize import quantize_stage, split_k_sums

    monkeypatch.setattr(box_forms, "SPLIT_K_MIN", 1024)
    model = load_model(small_checkpoint).model
    box = ov.convert_model(str(box_forms.export_box(model, tmp_path / "box.onnx", "split_k")))
    rng = np.random.default_rng(0)
    quantized = quantize_stage("box", box, [np.abs(rng.standard_normal((8, 64, 7, 7))).astype(np.float32)
                                            for _ in range(3)], 3, [])
    ops = {op.get_friendly_name(): op for op in quantized.get_ordered_ops()}
    (split,) = [op for op in ops.values() if op.get_type_name() in ("Split", "VariadicSplit")]
    upstream = split.input_value(0).get_node()
    while upstream.get_type_name() == "Reshape":
        upstream = upstream.input_value(0).get_node()
    assert upstream.get_type_name() == "FakeQuantize"
    (total,) = [ops[name] for name in split_k_sums(box)]
    assert all(v.get_node().get_type_name() != "FakeQuantize" for v in total.input_values())
