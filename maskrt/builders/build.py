"""checkpoint -> ONNX (per target) -> OpenVINO IR / TensorRT plan, in an engine directory.

OUT is checked before anything is built (an existing file, a folder that is not a maskrt
engine, a place that cannot be written: one line), locked against a second build to the same
OUT, assembled under a unique temporary name beside it and swapped in only when complete, so a
failed or interrupted build (SIGTERM included) never leaves a half-written engine and never
replaces anything but an engine (see maskrt.safeio).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from .._version import __version__
from ..errors import MaskrtError
from ..model import LoadedModel, load_model
from ..safeio import DirectoryOutput
from ..signals import cleanup_on_sigterm
from ..artifact import Manifest, read_manifest, replaceable_reason, write_manifest
from ..hashing import sha256_file
from ..options import PRECISIONS, TARGETS, LoadOptions, choice
from .onnx_export import STAGES, check_onnx, export_stages


def build_engine(weights: str | Path, out: str | Path, target: str = "cpu", precision: str = "fp32",
                 min_size: int | None = None, max_size: int | None = None, onnx_only: bool = False,
                 progress: bool = True, calibration: str | None = None, calibration_size: int | None = None,
                 proposals: int | None = None, *, if_missing: bool = False, config: str | None = None) -> Path:
    """Build an engine directory from a checkpoint (file or torchvision:NAME). Returns its path.

    precision "int8" (target cpu): NNCF post-training quantization on `calibration` (a folder or
    glob of images, or "synthetic"; default: the bundled model's own scenes, an error for other
    checkpoints), `calibration_size` images of it (maskrt.builders.calibration).
    proposals: RPN proposals per image (default: the checkpoint's), recorded in the manifest
    (thresholds.rpn) as the engine's default; int8 box stages are calibrated on that many.

    if_missing: wait for another process building OUT, then build only if OUT is not a valid
    engine by then (the engine cache); otherwise a second build of the same OUT is refused.
    config: a detectron2 checkpoint's YAML config (default: the model zoo's settings)."""
    choice("target", target, TARGETS)
    choice("precision", precision, PRECISIONS)
    LoadOptions(precision=precision, min_size=min_size, max_size=max_size, calibration=calibration,
                calibration_size=calibration_size, proposals=proposals, config=config).checked()
    calibration_set = _int8_calibration(target, weights, calibration, calibration_size) if precision == "int8" else None
    with cleanup_on_sigterm():
        dest = DirectoryOutput(out, "engine folder", replaceable_reason, wait=if_missing)
        try:
            if if_missing and _valid_engine(dest.path):
                return Path(out)
            steps = 3 if onnx_only else 4 + (target == "cpu") + (3 if calibration_set else 0)
            say = _Progress(progress, total=steps)
            loaded = load_model(weights, min_size=min_size, max_size=max_size, config=config)  # before any output
            say(f"loaded {loaded.config.name} from {weights}")
            if proposals is not None:
                loaded.model.detector.set_proposals(proposals)
            tmp = dest.new_dir()
            manifest = _base_manifest(loaded, weights, target, precision)
            if target == "cpu":
                _build_cpu(tmp, loaded, manifest, say, fp16=precision == "fp16", onnx_only=onnx_only,
                           calibration=calibration_set, progress=progress)
            else:
                _build_tensorrt(tmp, loaded, manifest, say, fp16=precision == "fp16", onnx_only=onnx_only)
            say("writing manifest...")
            write_manifest(tmp, manifest)
            dest.commit()
        finally:
            dest.close()
    say.done(Path(out))
    return Path(out)


def _valid_engine(path: Path) -> bool:
    try:
        read_manifest(path)
        return True
    except MaskrtError:
        return False


def _base_manifest(loaded: LoadedModel, weights, target: str, precision: str) -> Manifest:
    import openvino
    import torch

    policy = loaded.model.policy
    detector = loaded.model.detector
    source = {"path": str(weights), **loaded.provenance}
    if Path(str(weights)).is_file():
        source["sha256"] = sha256_file(Path(weights))
    return Manifest(
        target=target,
        precision=precision,
        classes=loaded.classes,
        config=loaded.config,
        input_policy={**asdict(policy), "size_divisible": 32},
        thresholds={"detection": asdict(detector.detection_params), "rpn": asdict(detector.proposals.params)},
        source=source,
        stages={},
        versions={"maskrt": __version__, "torch": torch.__version__, "openvino": openvino.__version__},
    )


def _int8_calibration(target: str, weights, calibration: str | None, size: int | None):
    """The calibration set of an int8 build; one-line errors for what cannot be built."""
    if target == "tensorrt":
        raise MaskrtError("TensorRT INT8 needs explicit Q/DQ quantization (signed, symmetric) and is not built "
                          "yet; use --target cpu --precision int8, or --precision fp16 for TensorRT")
    from .calibration import resolve_calibration

    return resolve_calibration(calibration, weights, size)


def _build_cpu(tmp: Path, loaded: LoadedModel, manifest: Manifest, say, fp16: bool, onnx_only: bool,
               calibration=None, progress: bool = True) -> None:
    """Three stage graphs (standard ONNX ops only) -> OpenVINO IR (int8 with a calibration set);
    maskrt's kernels run between them."""
    say("exporting ONNX (dense, box and mask stages)...")
    onnx_paths = export_stages(loaded.model, tmp / "onnx")
    for path in onnx_paths.values():
        check_onnx(path)
    if not onnx_only:
        from .box_forms import pick_box_form

        say("timing the box stage's fully connected layers in each form (matrix products, 1x1 convolutions, split)...")
        rows = loaded.model.detector.proposals.params.post_nms_top_n
        manifest.box_form = pick_box_form(loaded.model, onnx_paths, calibration is not None, rows)
    manifest.files.update({f"onnx/{p.name}": "" for p in onnx_paths.values()})
    if not onnx_only and calibration is not None:
        from .quantize import build_int8_ir  # imports nncf (only int8 builds need it)

        say("converting to OpenVINO IR and compiling the fp32 engine for calibration...")
        build_int8_ir(tmp, onnx_paths, manifest, calibration, say, progress)
    elif not onnx_only:
        say("converting to OpenVINO IR...")
        _build_openvino(tmp, onnx_paths, manifest, fp16)


def _build_tensorrt(tmp: Path, loaded: LoadedModel, manifest: Manifest, say, fp16: bool, onnx_only: bool) -> None:
    """The whole detector (and paste) as ONNX with maskrt plugin nodes, checked; then the plan."""
    from ..tensorrt.graph import check_trt_onnx, export_paste_onnx, export_trt_onnx

    say("exporting ONNX (detector with RoIAlign/NMS plugin nodes, paste graph)...")
    model_onnx = export_trt_onnx(loaded.model, tmp / "model.onnx", half=fp16)
    for path in (model_onnx, export_paste_onnx(tmp / "paste.onnx", mode=loaded.config.numerics)):
        check_trt_onnx(path)
        manifest.files[path.name] = ""
    if not onnx_only:
        from ..tensorrt.build import build_plans  # imports tensorrt; says in one line what is missing

        say("building the TensorRT plan...")
        build_plans(tmp, model_onnx, manifest)


def _build_openvino(tmp: Path, onnx_paths: dict[str, Path], manifest: Manifest, fp16: bool) -> None:
    from .openvino_build import convert_to_ir

    for stage in STAGES:
        xml = convert_to_ir(onnx_paths[stage], tmp / f"{stage}.xml", fp16_weights=fp16)
        manifest.stages[stage] = xml.name
        manifest.files.update({xml.name: "", xml.with_suffix(".bin").name: ""})


class _Progress:
    """Numbered build steps on stderr."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.step = enabled, total, 0

    def __call__(self, message: str) -> None:
        self.step += 1
        if self.enabled:
            print(f"[{self.step}/{self.total}] {message}", file=sys.stderr, flush=True)

    def done(self, out: Path) -> None:
        if self.enabled:
            print(f"engine written to {out}", file=sys.stderr, flush=True)
