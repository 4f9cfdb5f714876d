"""`maskrt.load`: one entry point for engine directories, checkpoints and torchvision model names."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from .artifact import is_engine_dir, read_manifest
from .engine import Segmenter
from .errors import EngineError, MaskrtError
from .hashing import sha256_file
from .model.loader import is_torchvision_name
from .options import LoadOptions


def load(path_or_name: str | Path, device: str = "cpu", backend: str = "auto", *,
         score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
         min_size: int | None = None, max_size: int | None = None, batch_size: int = 1,
         num_threads: int | None = None, progress: bool = True, precision: str | None = None,
         calibration: str | None = None, calibration_size: int | None = None,
         config: str | None = None, proposals: int | None = None, requests: int = 1) -> Segmenter:
    """Load a model for inference.

    path_or_name: an engine directory (NAME.maskrt/, backend from its manifest), a checkpoint
    (.pth/.pt/.safetensors, or a detectron2 model-zoo .pkl / DetectionCheckpointer .pth) or
    "torchvision:maskrcnn_resnet50_fpn[_v2]". config: a detectron2 checkpoint's YAML config
    (default: the model zoo's Mask R-CNN FPN settings, as DefaultPredictor has them). With backend="auto" a
    checkpoint is compiled once into a CPU (OpenVINO) engine, cached under $MASKRT_CACHE_DIR
    (default ~/.cache/maskrt/engines); backend="torch" runs it in eager PyTorch instead.
    score_threshold: detections scoring at or below it are dropped (torchvision's box_score_thresh).
    min_size / max_size: override the input-size policy of the checkpoint or CPU engine (default
    800 / 1333; a CPU engine's dense stage takes any size). TensorRT engines keep the sizes
    they were built for (their optimisation profile): an override is refused.
    num_threads: inference threads (default: all cores). progress: show the first-use build's steps.
    proposals: RPN proposals per image sent through the box head (post-NMS top-N, pre-NMS per level
    scaled with it: RPNParams.with_proposals); default: the engine's (its manifest) or the
    checkpoint's (its metadata "proposals", else torchvision's 1000). Fewer is faster (the box
    head and its RoIAlign scale with it); the bundled model's default was chosen from its AP curve.
    requests: frames a CPU engine holds at once (OpenVINOBackend): 1 for the fastest single call;
    2 overlaps two frames' stages (a stream of a file runs that many infer workers).
    precision: for a checkpoint, the CPU engine's ("fp32" default, "fp16", "int8"; each cached
    separately); int8 calibrates on `calibration` (a folder or glob of images, or "synthetic";
    default: the bundled model's own scenes, an error for other checkpoints), `calibration_size`
    images of it. For an engine directory, a precision other than the engine's is an error.
    A Segmenter may be shared by threads: calls into one backend run one at a time.
    The options are one `maskrt.options.LoadOptions` (`load_with` takes that record).
    """
    options = LoadOptions(device=device, backend=backend, precision=precision, score_threshold=score_threshold,
                          nms_threshold=nms_threshold, max_detections=max_detections, min_size=min_size,
                          max_size=max_size, batch_size=batch_size, num_threads=num_threads,
                          calibration=calibration, calibration_size=calibration_size, progress=progress,
                          config=config, proposals=proposals, requests=requests)
    return load_with(path_or_name, options)


def load_with(path_or_name: str | Path, options: LoadOptions) -> Segmenter:
    """`load` with its options as one record (what run, batch workers, serve replicas and
    streams carry). Every option is checked first (one MaskrtError line)."""
    if path_or_name is None or not isinstance(path_or_name, (str, os.PathLike)):
        raise MaskrtError(f"load() wants an engine folder, a checkpoint path or torchvision:NAME, got "
                          f"{type(path_or_name).__name__}")
    o = options.checked()
    sizes = (o.min_size, o.max_size)
    if o.config is not None and is_engine_dir(path_or_name):
        raise MaskrtError(f"--config applies to detectron2 checkpoints; {path_or_name} is an engine, built with its "
                          "config already")
    if is_engine_dir(path_or_name):
        backend_obj, classes = _engine_backend(Path(path_or_name), o.backend, o.num_threads, sizes, o.precision,
                                               o.requests)
    elif o.backend == "torch" or o.device != "cpu":
        if o.precision not in (None, "fp32"):
            raise MaskrtError(f"--precision {o.precision} builds a CPU engine; the torch backend runs the checkpoint "
                              "in fp32 (use --backend auto or openvino)")
        backend_obj, classes = _torch_backend(path_or_name, o.device, o.min_size, o.max_size, o.config)
    elif o.backend in ("auto", "openvino"):
        engine_dir = cached_cpu_engine(path_or_name, o.precision or "fp32", o.calibration, o.calibration_size,
                                       progress=o.progress, config=o.config)
        backend_obj, classes = _engine_backend(engine_dir, "openvino", o.num_threads, sizes, requests=o.requests)
    else:
        raise MaskrtError("the tensorrt backend needs an engine built with `maskrt build --target tensorrt`")
    if backend_obj.detector is not None:  # TensorRT plans carry the thresholds they were built with
        backend_obj.detector.detection_params = replace(
            backend_obj.detector.detection_params, score_thresh=o.score_threshold, nms_thresh=o.nms_threshold,
            detections_per_img=o.max_detections)
        if o.proposals is not None:
            backend_obj.detector.set_proposals(o.proposals)
    elif o.proposals is not None and o.proposals != _built_proposals(backend_obj):
        raise MaskrtError(f"{path_or_name} keeps the proposal count it was built with; rebuild it with "
                          f"`maskrt build --proposals {o.proposals}`")
    return Segmenter(backend_obj, classes, str(path_or_name), o.batch_size)


def _built_proposals(backend_obj) -> int | None:
    """The proposal count an engine without a runtime detector (TensorRT plans) was built with."""
    manifest = getattr(backend_obj, "manifest", None)
    return manifest.thresholds["rpn"]["post_nms_top_n"] if manifest is not None else None


def _torch_backend(source, device: str, min_size, max_size, config=None):
    from .engine.backends.torch_backend import TorchBackend
    from .model import load_model

    loaded = load_model(source, min_size=min_size, max_size=max_size, config=config)
    return TorchBackend(loaded.model, device), loaded.classes


def _openvino_backend(engine_dir: Path, manifest, num_threads: int | None, sizes, requests: int = 1):
    from .engine.backends.openvino_backend import OpenVINOBackend

    return OpenVINOBackend(engine_dir, manifest, num_threads, *sizes, requests=requests)


def _tensorrt_backend(engine_dir: Path, manifest, num_threads: int | None, sizes, requests: int = 1):
    pol = manifest.input_policy
    for name, value in zip(("min_size", "max_size"), sizes):
        if value is not None and value != pol[name]:
            raise EngineError(f"{engine_dir} is a TensorRT engine built for {name} {pol[name]}; rebuild it with "
                              f"`maskrt build --{name.replace('_', '-')} {value}` to use {value}")
    from .tensorrt.backend import TensorRTBackend  # GPU only; says what is missing

    return TensorRTBackend(engine_dir, manifest)


# An engine folder's target -> (the backend that runs it, its loader(engine_dir, manifest,
# num_threads, (min_size, max_size), requests) -> engine.backends.Backend; requests: frames the
# backend may hold at once, where it can). A new engine backend is one row.
ENGINE_BACKENDS = {"cpu": ("openvino", _openvino_backend), "tensorrt": ("tensorrt", _tensorrt_backend)}


def _engine_backend(engine_dir: Path, backend: str, num_threads: int | None, sizes=(None, None),
                    precision: str | None = None, requests: int = 1):
    manifest = read_manifest(engine_dir)
    if precision is not None and precision != manifest.precision:
        raise EngineError(f"{engine_dir} was built with --precision {manifest.precision}, not {precision}; "
                          f"build one with `maskrt build --precision {precision}` or pass the checkpoint")
    name, loader = ENGINE_BACKENDS[manifest.target]
    if backend not in ("auto", name):
        raise EngineError(f"{engine_dir} is a {manifest.target!r} engine; it cannot run on the {backend} backend")
    if not manifest.stages:
        raise EngineError(f"{engine_dir} holds only ONNX (built with --onnx-only); build the engine to run it")
    return loader(engine_dir, manifest, num_threads, sizes, requests), manifest.classes


def engine_cache_dir() -> Path:
    return Path(os.environ.get("MASKRT_CACHE_DIR", Path.home() / ".cache" / "maskrt" / "engines"))


def cached_cpu_engine(source: str | Path, precision: str = "fp32", calibration: str | None = None,
                      calibration_size: int | None = None, progress: bool = True, config: str | None = None) -> Path:
    """The CPU engine of `precision` for a checkpoint, built on first use and reused while the
    checkpoint is unchanged (input sizes are applied when it is loaded). The cache key holds the
    checkpoint's sha256, the maskrt version, the precision, a detectron2 config's files (sha256
    of each in its _BASE_ chain) and, for int8, the calibration spec and size as given (a
    folder's images are not rehashed on every load: rebuild with `maskrt build` after changing
    them). Processes needing the same engine at once wait for the one building it."""
    from .builders import build_engine

    if is_torchvision_name(source):
        key = str(source)
    else:
        path = Path(source)
        if not path.is_file():
            from .model import load_checkpoint

            load_checkpoint(path)  # raises the one-line error for a missing/odd path
        key = sha256_file(path)
    from ._version import __version__

    parts = [key, __version__, precision]
    if config is not None:
        from .model.detectron2 import read_config

        parts += [sha256_file(Path(p)) for p in read_config(config).chain]
    if precision == "int8":
        parts += [calibration or "default", calibration_size or "default"]
    tag = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20]
    engine_dir = engine_cache_dir() / f"{Path(str(source)).stem.replace(':', '_')}-{precision}-{tag}.maskrt"
    if is_engine_dir(engine_dir):
        try:
            read_manifest(engine_dir)
            return engine_dir
        except EngineError:
            pass  # stale or corrupt cache entry: rebuild it
    return build_engine(source, engine_dir, "cpu", precision, progress=progress, if_missing=True,
                        calibration=calibration, calibration_size=calibration_size, config=config)
