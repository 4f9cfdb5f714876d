"""ONNX -> TensorRT plan (`tensorrt` target). UNVERIFIED HERE: no machine of this project has
TensorRT's libraries or a GPU; CI checks the ONNX it parses (tests/tensorrt/test_onnx_graph.py)
and the one-line report of what is missing.

The plan is built from `model.onnx` (maskrt.tensorrt.graph: the whole detector for one
image, RoIAlign and NMS as maskrt plugin nodes registered by maskrt.tensorrt.plugins), as a
strongly typed network (TensorRT 11 has no FP16 flag: an fp16 engine is an fp16 ONNX) with one
optimization profile for the dynamic image size. Kept thin on purpose: everything it calls
before `tensorrt` (export, schemas, plugin table) is tested on CPU.
"""

from __future__ import annotations

from pathlib import Path

from ..artifact import Manifest
from ..errors import MaskrtError

PLAN_NAME = "model.plan"


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


def build_plans(engine_dir: Path, onnx_path: Path, manifest: Manifest) -> None:
    """Build engine_dir/model.plan from the plugin-node ONNX and record it in the manifest."""
    trt = require_tensorrt()
    from .plugins import register_plugins

    register_plugins()
    logger = trt.Logger(trt.Logger.WARNING)
    plan = _build_plan(trt, logger, onnx_path, manifest)
    (engine_dir / PLAN_NAME).write_bytes(plan)
    manifest.stages["model"] = PLAN_NAME
    manifest.files[PLAN_NAME] = ""


def _build_plan(trt, logger, onnx_path: Path, manifest: Manifest) -> bytes:
    creation = trt.NetworkDefinitionCreationFlag
    flags = 1 << int(creation.STRONGLY_TYPED)
    if hasattr(creation, "PREFER_AOT_PYTHON_PLUGINS"):  # plugins with both implementations take the AOT one
        flags |= 1 << int(creation.PREFER_AOT_PYTHON_PLUGINS)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise MaskrtError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *image_profile(manifest))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise MaskrtError("TensorRT failed to build the engine (see the TensorRT log above)")
    return bytes(plan)


def image_profile(manifest: Manifest) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of the `images` input: batch 1, any padded size up to max_size."""
    side = ((manifest.input_policy["max_size"] + 31) // 32) * 32
    short = ((manifest.input_policy["min_size"] + 31) // 32) * 32
    return (1, 3, 32, 32), (1, 3, short, side), (1, 3, side, side)
