"""The box stage's fully connected layers in the form this CPU runs fastest.

The box head (TwoMLPHead's fc6 / fc7, or the fc after FastRCNNConvFCHead's convolutions) and the
predictor (class scores, box deltas) are matrix products over the RoIs: OpenVINO's CPU plugin
runs them as FullyConnected layers. The same products can be written as 1x1 convolutions on
Tensor[R, F, 1, 1] (form "conv1x1"), which the plugin runs with its convolution kernels: on AVX2
without VNNI its u8 FullyConnected reached 107 GOP/s while a u8 1x1 convolution of the same
product ran 1.8x faster (benchmarks/results/avx2/MACHINE.md). Or a layer with many inputs (R50's
fc6: 12544) as two products over the halves of its inputs, summed (form "split_k"): on an
AVX-512 VNNI Zen 4 OpenVINO's u8 x i8 FullyConnected ran 1000 x 12544 x 1024 at 592 GOP/s whole
and 752 GOP/s in halves (the int8 R50 box stage at build 70.6 -> 52.4 ms; in the engine 49.0 /
62.6 -> 40.5 / 42.1 ms). Which form is faster depends on the CPU and the precision, so the
builder measures them on the machine it runs on (`choose_form`: each form compiled, int8 forms
quantized on a few random RoIs just for the timing, median of a few calls on `rows` RoIs given
NHWC as the engine gives them) and keeps the fastest; the manifest records the form, every
timing and the machine (`box_form`).

Numerics: the same products and biases with the sums in another order: float rounding only
(~sqrt(K) * 2^-24 relative; tests/builders/test_box_forms.py). In int8, split_k's halves share
the one activation quantizer of the whole input (torch.split exports as one Split, which NNCF
quantizes before it), so only the int32 sums are split.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead

FORMS = ("matmul", "conv1x1", "split_k")
MARGIN = 0.05  # another form is kept only when it is this much faster than matmul (the exported form)
SPLIT_K_MIN = 8192  # split_k splits the fully connected layers with at least this many inputs


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


class SplitKLinear(nn.Module):
    """nn.Linear(F, O) as two products over the halves of its inputs, summed:
    Tensor[R, F] -> x[:, :F//2] W[:, :F//2]^T + x[:, F//2:] W[:, F//2:]^T + b, Tensor[R, O]."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.sizes = [linear.in_features // 2, linear.in_features - linear.in_features // 2]
        self.low = nn.Linear(self.sizes[0], linear.out_features, bias=False)
        self.high = nn.Linear(self.sizes[1], linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.low.weight.copy_(linear.weight[:, :self.sizes[0]])
            self.high.weight.copy_(linear.weight[:, self.sizes[0]:])
            if linear.bias is not None:
                self.high.bias.copy_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        low, high = torch.split(x, self.sizes, dim=1)  # one ONNX Split: one quantizer before it
        return self.low(low) + self.high(high)


def _splittable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and module.in_features >= SPLIT_K_MIN


def splits_k(stage: nn.Module) -> bool:
    """Whether the stage has a fully connected layer that form split_k splits."""
    return any(_splittable(m) for m in stage.modules())


def split_k(stage: nn.Module) -> nn.Module:
    """A copy of the box stage whose fully connected layers with >= SPLIT_K_MIN inputs are
    SplitKLinear (the same stage otherwise)."""
    stage = copy.deepcopy(stage)
    for module in list(stage.modules()):
        for name, child in list(module.named_children()):
            if _splittable(child):
                setattr(module, name, SplitKLinear(child))
    return stage


def box_module(stage: nn.Module, form: str) -> nn.Module:
    """The box stage module to export in `form` ("matmul": the stage itself)."""
    if form not in FORMS:
        raise ValueError(f"unknown box form {form!r}; choose from {', '.join(FORMS)}")
    if form == "matmul":
        return stage
    return (Conv1x1BoxStage(stage) if form == "conv1x1" else split_k(stage)).eval()


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
    """Time each form's box stage ({form: openvino.Model, float}, matmul among them) on `rows`
    random RoIs given NHWC as the engine gives them (channels_last_input), int8 forms quantized
    first on 4 random samples (their speed, not their accuracy, is measured); returns the manifest
    record {"form", "chosen_by", "ms": {form: median ms}, "rows", "precision"}: the fastest form
    when it is at least MARGIN faster than matmul, else matmul."""
    import numpy as np

    from ..engine.backends.openvino_backend import channels_last_input, shared_core

    core = shared_core()
    shape = [rows] + [d.get_length() for d in list(models["matmul"].input(0).get_partial_shape())[1:]]
    # Timed as the engine runs the stage: its input given NHWC, as RoIAlign's output lies in memory.
    example = np.random.default_rng(0).standard_normal(shape).astype(np.float32).transpose(0, 2, 3, 1).copy()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    ms = {}
    for form, model in models.items():
        if int8:
            model = _quick_int8(model, shape)
        compiled = core.compile_model(channels_last_input(model), "CPU", config)
        ms[form] = round(1e3 * time_compiled(compiled, example), 3)
    fastest = min(ms, key=ms.get)
    form = fastest if ms[fastest] < (1 - MARGIN) * ms["matmul"] else "matmul"
    return {"form": form, "chosen_by": "measured at build", "ms": ms, "rows": rows,
            "precision": "int8" if int8 else "float"}


def _quick_int8(model, shape):
    """NNCF int8 of one box-stage form on 4 random inputs of `shape` (for timing only), as the
    builder quantizes the box stage (`quantize.quantize_stage`: split_k's sums left out)."""
    import numpy as np

    from .quantize import quantize_stage

    rng = np.random.default_rng(1)
    samples = [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(4)]
    return quantize_stage("box", model, samples, len(samples), [])


def export_box(model, path, form: str):
    """Write the box stage of `model` (a MaskRCNN) alone in `form` to the ONNX file `path`."""
    from .onnx_export import _export, stage_io

    io = stage_io(model)["box"]
    _export(box_module(model.box, form), io["example"], path, io)
    return path


def pick_box_form(model, onnx_paths: dict, int8: bool, rows: int) -> dict:
    """Export the box stage's other forms beside onnx_paths["box"] (the matmul form): conv1x1, and
    split_k when a layer has SPLIT_K_MIN inputs; time them all (choose_form) and leave the chosen
    one at onnx_paths["box"]; returns choose_form's record."""
    import openvino as ov

    matmul = onnx_paths["box"]
    forms = ["conv1x1"] + (["split_k"] if splits_k(model.box) else [])
    others = {form: export_box(model, matmul.with_name(f"box_{form}.onnx"), form) for form in forms}
    try:
        models = {"matmul": ov.convert_model(str(matmul)), **{f: ov.convert_model(str(p)) for f, p in others.items()}}
        record = choose_form(models, rows, int8)
        if record["form"] != "matmul":
            others[record["form"]].replace(matmul)
    finally:
        for path in others.values():
            path.unlink(missing_ok=True)
    return record
