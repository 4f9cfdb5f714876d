"""The box stage's fully connected layers as 1x1 convolutions: same results (float rounding),
chosen by measurement, recorded in the manifest and shown by `maskrt info`."""

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


@pytest.mark.parametrize("matmul_ms, conv_ms, form", [(10.0, 9.0, "conv1x1"), (10.0, 9.6, "matmul"),
                                                        (10.0, 30.0, "matmul")])
def test_conv1x1_is_kept_only_when_measured_faster_by_the_margin(small_checkpoint, tmp_path, monkeypatch,
                                                                  matmul_ms, conv_ms, form):
    import openvino as ov

    times = iter([matmul_ms / 1e3, conv_ms / 1e3])
    monkeypatch.setattr(box_forms, "time_compiled", lambda compiled, example: next(times))
    model = load_model(small_checkpoint).model
    models = {f: ov.convert_model(str(box_forms.export_box(model, tmp_path / f"{f}.onnx", f))) for f in box_forms.FORMS}
    record = box_forms.choose_form(models, 5, int8=False)
    assert record == {"form": form, "chosen_by": "measured at build", "ms": {"matmul": matmul_ms, "conv1x1": conv_ms},
                      "rows": 5, "precision": "float"}


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
