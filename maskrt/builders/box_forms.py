"""The box stage's fully connected layers in the form this CPU runs fastest.

The box head (TwoMLPHead's fc6 / fc7, or the fc after FastRCNNConvFCHead's convolutions) and the
predictor (class scores, box deltas) are matrix products over the RoIs: OpenVINO's CPU plugin
runs them as FullyConnected layers. The same products can be written as 1x1 convolutions on
Tensor[R, F, 1, 1] (form "conv1x1"), which the plugin runs with its convolution kernels: on AVX2
without VNNI its u8 FullyConnected reached 107 GOP/s while a u8 1x1 convolution of the same
product ran 1.8x faster (benchmarks/results/avx2/MACHINE.md). Which form is faster depends on
the CPU and the precision, so the builder measures both on the machine it runs on
(`choose_form`: each form compiled, int8 forms quantized on a few random RoIs just for the
timing, median of a few calls on `rows` RoIs) and keeps the faster; the manifest records the form,
both timings and the machine (`box_form`).

Numerics: the same products and biases with the sums in another order: float rounding only
(~sqrt(K) * 2^-24 relative; tests/builders/test_box_forms.py).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead

FORMS = ("matmul", "conv1x1")
MARGIN = 0.05  # conv1x1 is kept only when it is this much faster (else the exported form stays)


def conv1x1(linear: nn.Linear) -> nn.Conv2d:
    """nn.Linear(F, O) as nn.Conv2d(F, O, 1) with the same weights and bias."""
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


class Conv1x1BoxStage(nn.Module):
    """A BoxStage (maskrt.model.network) with every fully connected layer as a 1x1 convolution.

    Tensor[R, C, S, S] -> (class logits Tensor[R, K], box deltas Tensor[R, 4K]), as the BoxStage:
    the head's convolutions (v2) run as they are, their output is flattened to Tensor[R, F, 1, 1],
    then each fc + ReLU, the class-score and box-delta layers are 1x1 convolutions."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        head, predictor = stage.box_head, stage.box_predictor
        if isinstance(head, TwoMLPHead):
            convs, linears = [], [head.fc6, head.fc7]
        else:  # FastRCNNConvFCHead: conv blocks, Flatten, (Linear, ReLU) pairs
            convs = [m for m in head if not isinstance(m, (nn.Flatten, nn.Linear, nn.ReLU))]
            linears = [m for m in head if isinstance(m, nn.Linear)]
        self.convs = nn.Sequential(*convs)
        self.fcs = nn.ModuleList(conv1x1(fc) for fc in linears)
        self.cls_score, self.bbox_pred = conv1x1(predictor.cls_score), conv1x1(predictor.bbox_pred)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        x = self.convs(pooled).flatten(1)[:, :, None, None]
        for fc in self.fcs:
            x = F.relu(fc(x))
        return self.cls_score(x).flatten(1), self.bbox_pred(x).flatten(1)


def box_module(stage: nn.Module, form: str) -> nn.Module:
    """The box stage module to export in `form` ("matmul": the stage itself)."""
    if form not in FORMS:
        raise ValueError(f"unknown box form {form!r}; choose from {', '.join(FORMS)}")
    return stage if form == "matmul" else Conv1x1BoxStage(stage).eval()


def time_compiled(compiled, example, calls: int = 5) -> float:
    """Median seconds of `calls` inferences of one compiled model on `example` (after one warm-up)."""
    request = compiled.create_infer_request()
    request.infer([example])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        request.infer([example])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def choose_form(models: dict, rows: int, int8: bool, threads: int | None = None) -> dict:
    """Time each form's box stage (openvino.Model per form, float) on `rows` random RoIs, int8
    forms quantized first on 4 random samples (their speed, not their accuracy, is measured);
    returns the manifest record {"form", "chosen_by", "ms": {form: median ms}, "rows",
    "precision"}: conv1x1 when it is at least MARGIN faster, else matmul."""
    import numpy as np
    import openvino as ov

    from ..engine.backends.openvino_backend import shared_core

    core = shared_core()
    shape = [rows] + [d.get_length() for d in list(models["matmul"].input(0).get_partial_shape())[1:]]
    example = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    ms = {}
    for form, model in models.items():
        if int8:
            model = _quick_int8(model, shape)
        ms[form] = round(1e3 * time_compiled(core.compile_model(model, "CPU", config), example), 3)
    form = "conv1x1" if ms["conv1x1"] < (1 - MARGIN) * ms["matmul"] else "matmul"
    del ov
    return {"form": form, "chosen_by": "measured at build", "ms": ms, "rows": rows,
            "precision": "int8" if int8 else "float"}


def _quick_int8(model, shape):
    """NNCF int8 of one box-stage form on 4 random inputs of `shape` (for timing only)."""
    import contextlib
    import io
    import logging

    import nncf
    import numpy as np

    rng = np.random.default_rng(1)
    samples = [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(4)]
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(model, nncf.Dataset(samples), preset=nncf.QuantizationPreset.PERFORMANCE,
                                 target_device=nncf.TargetDevice.CPU, subset_size=4, fast_bias_correction=True)
    finally:
        logger.setLevel(level)


def export_box(model, path, form: str):
    """Write the box stage of `model` (a MaskRCNN) alone in `form` to the ONNX file `path`."""
    from .onnx_export import _export, stage_io

    io = stage_io(model)["box"]
    _export(box_module(model.box, form), io["example"], path, io)
    return path


def pick_box_form(model, onnx_paths: dict, int8: bool, rows: int) -> dict:
    """Export the box stage's conv1x1 form beside onnx_paths["box"] (the matmul form), time both
    (choose_form) and leave the chosen one at onnx_paths["box"]; returns choose_form's record."""
    import openvino as ov

    matmul = onnx_paths["box"]
    conv = export_box(model, matmul.with_name("box_conv1x1.onnx"), "conv1x1")
    try:
        record = choose_form({"matmul": ov.convert_model(str(matmul)), "conv1x1": ov.convert_model(str(conv))},
                             rows, int8)
        if record["form"] == "conv1x1":
            conv.replace(matmul)
    finally:
        conv.unlink(missing_ok=True)
    return record
