"""INT8 CPU engines: NNCF post-training quantization of the three OpenVINO IR stages.

What is quantized is the OpenVINO IR after `convert_model` (BatchNorm already folded into the
convolutions), not the ONNX: `nncf.quantize` inserts FakeQuantize nodes (weights per output
channel, activations per tensor, symmetric: NNCF's "performance" preset for the CPU), which
OpenVINO's CPU plugin turns into u8 x i8 convolutions and matrix products (VNNI or AMX where the
CPU has them, AVX2's vpmaddubsw elsewhere), accumulating in int32.

Calibration inputs (statistics: per-sample min/max of each activation, averaged over samples;
then NNCF's fast bias correction):
- dense: each calibration image through maskrt's own preprocessing (normalise, resize by the
  input policy, zero-pad to 32), one image per sample at its natural size: the dense stage's
  dynamic height and width are calibrated on the shapes it runs on;
- box / mask: the real pooled RoI features of those images, captured by running the fp32 engine
  (compiled from the same IR) on them, before any row padding: one sample per image, all its
  proposals (box) or detections (mask, at the checkpoint's score threshold). They are recomputed
  on each pass rather than held (1000 RoIs x 256 x 7 x 7 floats are 50 MB per ResNet-50 image).

Which layers stay in float is decided by measurement (see FLOAT_LAYERS and the README's INT8
section) and recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Iterator

import numpy as np

from ..progress import progress_bar
from .calibration import CalibrationSet

# Layer groups kept in float (NNCF ignored scope), by measurement on the bundled model's
# 500 validation images (benchmarks/results/avx2/INT8.md: the gate passes with none kept): see float_layer_names().
FLOAT_LAYERS: tuple[str, ...] = ()
LAYER_GROUPS = ("stem", "rpn_predictor", "box_predictor", "mask_predictor")
COMPUTE_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")


class _Captured(Exception):
    """Raised by a stage hook to stop the fp32 engine once it has that stage's input."""

    def __init__(self, array: np.ndarray):
        super().__init__("captured")
        self.array = array


def _raise_captured(x):
    raise _Captured(np.array(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32, copy=True))


class StageInputs:
    """Iterable over one stage's calibration inputs, recomputed with the fp32 engine on each pass.

    backend: an OpenVINOBackend compiled from the fp32 stages. Yields np.ndarray float32:
    dense [1, 3, H, W] (preprocessed, padded to 32), box [R, C, 7, 7] (all proposals of one image),
    mask [N, C, 14, 14] (its detections; images without any are skipped). A progress bar counts
    the images while NNCF pulls samples (statistics collection)."""

    def __init__(self, backend, stage: str, calibration: CalibrationSet, progress: bool = True):
        self.backend, self.stage, self.calibration, self.progress = backend, stage, calibration, progress
        self.count = 0  # samples yielded by the last pass

    def __iter__(self) -> Iterator[np.ndarray]:
        detector = self.backend.detector
        heads = detector.heads
        saved = detector.dense, heads.box_fn, heads.mask_fn
        bar = progress_bar(total=self.calibration.size, desc=f"calibrating {self.stage}", unit="img",
                           disable=not self.progress, leave=False)
        self.count = 0
        try:
            for image in self.calibration.images():
                detector.dense, heads.box_fn, heads.mask_fn = saved
                if self.stage == "dense":
                    detector.dense = _raise_captured
                else:
                    setattr(heads, f"{self.stage}_fn", _raise_captured)
                bar.update(1)
                try:
                    self.backend.infer([image])
                except _Captured as captured:
                    self.count += 1
                    yield captured.array
        finally:
            detector.dense, heads.box_fn, heads.mask_fn = saved
            bar.close()


def float_layer_names(stage: str, model, groups: tuple[str, ...]) -> list[str]:
    """Friendly names of the compute layers of `model` (one stage's openvino.Model) in the
    float groups: "stem" (the first convolution, on the normalised image), "rpn_predictor" (the
    RPN head's objectness and box-delta convolutions), "box_predictor" (the class-score and
    box-delta matrix products), "mask_predictor" (the 2x upsampling deconvolution and the 1x1
    mask-logit convolution). Names come from the stage modules' attribute names (maskrt.model)."""
    unknown = set(groups) - set(LAYER_GROUPS)
    if unknown:
        raise ValueError(f"unknown layer groups {sorted(unknown)}; choose from {LAYER_GROUPS}")
    names = []
    for op in model.get_ordered_ops():
        kind, name = op.get_type_name(), op.get_friendly_name()
        if kind not in COMPUTE_TYPES:
            continue
        if stage == "dense":
            feeds_on_image = op.input_value(0).get_node().get_type_name() == "Parameter"
            if ("stem" in groups and feeds_on_image) or ("rpn_predictor" in groups and (
                    name.startswith("/rpn_head/cls_logits") or name.startswith("/rpn_head/bbox_pred"))):
                names.append(name)
        elif stage == "box" and "box_predictor" in groups and name.startswith("/box_predictor/"):
            names.append(name)
        elif stage == "mask" and "mask_predictor" in groups and (
                name.startswith("/mask_predictor/") or kind == "ConvolutionBackpropData"):
            names.append(name)
    return names


def split_k_sums(model) -> list[str]:
    """Friendly names of the Add nodes of a box stage's openvino.Model that sum two products (the
    halves of box_forms' split_k form; the stage has no other Add of two computed tensors).
    quantize_stage leaves them out (nncf.IgnoredScope): NNCF would otherwise quantize each half's
    partial sums to 8 bits before adding them, an error the whole layer does not have."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Add"
            and all(v.get_node().get_type_name() != "Constant" for v in op.input_values())]


def quantize_stage(stage: str, model, samples: StageInputs, size: int, float_layers: list[str]):
    """nncf.quantize of one stage's openvino.Model on `samples` (at most `size` of them)."""
    import logging

    import nncf

    left_out = float_layers + (split_k_sums(model) if stage == "box" else [])
    ignored = nncf.IgnoredScope(names=left_out) if left_out else None
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)  # its INFO lines list every layer it leaves in float
    # NNCF draws its own (rich) progress bars on stdout; ours (StageInputs) is on stderr.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(model, nncf.Dataset(samples), preset=nncf.QuantizationPreset.PERFORMANCE,
                                 target_device=nncf.TargetDevice.CPU, subset_size=size, ignored_scope=ignored)
    finally:
        logger.setLevel(level)


def quantize_stages(models: dict, backend, calibration: CalibrationSet, say=None, progress: bool = True,
                    groups: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Quantize each stage's openvino.Model; returns ({stage: quantized model}, manifest record).

    backend: the fp32 engine compiled from `models` (OpenVINOBackend(..., models=models)); say:
    a callable printing one build step. A stage without a single calibration sample (a mask head
    that saw no detection) stays fp32, and the record says so."""
    import nncf

    groups = FLOAT_LAYERS if groups is None else groups
    quantized, record = {}, {"float_layers": {}, "samples": {}, "stages": {}}
    for stage, model in models.items():
        if say is not None:
            say(f"calibrating and quantizing the {stage} stage ({calibration.size} images)...")
        samples = StageInputs(backend, stage, calibration, progress)
        names = float_layer_names(stage, model, groups)
        try:
            quantized[stage] = quantize_stage(stage, model, samples, calibration.size, names)
            record["stages"][stage] = "int8"
        except nncf.ValidationError:
            if samples.count:
                raise
            quantized[stage], record["stages"][stage] = model, "fp32 (no detections in the calibration set)"
        record["float_layers"][stage], record["samples"][stage] = names, samples.count
    record.update(nncf=nncf.__version__, preset="performance", float_groups=list(groups),
                  calibration={"source": calibration.source, "size": calibration.size,
                               "sha256": calibration.sha256()})
    return quantized, record


def runtime_precisions(compiled) -> Counter:
    """Counter of (layer type, runtime precision) over the compute layers of a compiled model's
    runtime (execution) graph, e.g. {("Convolution", "u8"): 43}: what the CPU plugin really runs,
    after its low-precision transformations ("u8"/"i8" = integer kernels)."""
    counts = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = str(info["layerType"].astype(str))
        if layer in ("Convolution", "Deconvolution", "FullyConnected", "MatMul"):
            counts[(layer, str(info["runtimePrecision"].astype(str)))] += 1
    return counts


def build_int8_ir(tmp, onnx_paths: dict, manifest, calibration: CalibrationSet, say=None,
                  progress: bool = True) -> None:
    """ONNX stages -> OpenVINO IR -> NNCF int8 -> tmp/{stage}.xml/.bin; fills manifest.stages,
    .files, .quantization and .versions["nncf"]. The fp32 engine that captures the calibration
    inputs is compiled from the same in-memory IR (no fp32 files are written)."""
    import openvino as ov

    from ..engine.backends.openvino_backend import OpenVINOBackend

    models = {stage: ov.convert_model(str(path)) for stage, path in onnx_paths.items()}
    fp32 = OpenVINOBackend(tmp, manifest, models=models)
    quantized, record = quantize_stages(models, fp32, calibration, say, progress)
    del fp32
    for stage, model in quantized.items():
        xml = tmp / f"{stage}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        manifest.stages[stage] = xml.name
        manifest.files.update({xml.name: "", xml.with_suffix(".bin").name: ""})
    manifest.quantization = record
    manifest.versions["nncf"] = record["nncf"]
