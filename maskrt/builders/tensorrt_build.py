"""ONNX -> TensorRT plans (`tensorrt` target). UNVERIFIED HERE: no machine of this project has
TensorRT's libraries or a GPU; CI checks only the ONNX and the one-line report of what is missing.

Kept thin on purpose: everything it calls (the ONNX export and checks) is tested on CPU.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MaskrtError
from .manifest import Manifest


def require_tensorrt():
    """Import tensorrt and check for a CUDA GPU; one MaskrtError line saying what is missing."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError:
        raise MaskrtError("TensorRT is not installed (pip install 'maskrt[tensorrt]' on a machine with an "
                          "NVIDIA GPU); the ONNX was written and checked, use --onnx-only to keep it") from None
    import torch

    if not torch.cuda.is_available():
        raise MaskrtError("no CUDA GPU is available to build TensorRT plans on; use --onnx-only to keep the ONNX")
    return trt


def build_plans(engine_dir: Path, onnx_paths: dict[str, Path], manifest: Manifest) -> None:
    """Build one strongly typed plan per stage with a dynamic-shape optimization profile."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    for stage, onnx_path in onnx_paths.items():
        plan = _build_plan(trt, logger, onnx_path, manifest, stage)
        out = engine_dir / f"{stage}.plan"
        out.write_bytes(plan)
        manifest.stages[stage] = out.name
        manifest.files[out.name] = ""


def _build_plan(trt, logger, onnx_path: Path, manifest: Manifest, stage: str) -> bytes:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise MaskrtError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    lo, opt, hi = _profile_shapes(manifest, stage)
    profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise MaskrtError(f"TensorRT failed to build the {stage} stage")
    return bytes(plan)


def _profile_shapes(manifest: Manifest, stage: str):
    cfg = manifest.config
    c = cfg.fpn_channels
    max_side = ((manifest.input_policy["max_size"] + 31) // 32) * 32
    if stage == "dense":
        return (1, 3, 32, 32), (1, 3, 800, 1088), (4, 3, max_side, max_side)
    pool = cfg.box_pool_size if stage == "box" else cfg.mask_pool_size
    most = 4 * 1000 if stage == "box" else 4 * 100
    return (1, c, pool, pool), (most // 4, c, pool, pool), (most, c, pool, pool)
