"""ONNX -> TensorRT plans (`tensorrt` target). UNVERIFIED HERE: no machine of this project has
TensorRT's libraries or a GPU; CI checks the ONNX it parses (tests/tensorrt/test_onnx_graph.py),
and drives this module with a stand-in tensorrt (tests/tensorrt/test_build.py): the plugin layers
the parser creates, the profile, the one-line errors.

Two plans, both standing alone (every plugin ahead of time, maskrt.tensorrt.aot: no Python, torch
or maskrt needed to run them - trtexec, Triton Inference Server, DeepStream):
- `model.plan` from `model.onnx` (maskrt.tensorrt.graph: the whole detector for one image, RoIAlign
  and NMS as plugin nodes), one optimisation profile for the padded image size;
- `paste.plan` from `paste.onnx` (boxes to the original image and PasteMasks), one profile for the
  detection count and the original image size.
Strongly typed networks (TensorRT 11 has no FP16 flag: an fp16 engine is an fp16 ONNX). Before
serialising, every plugin layer of the parsed network is checked to be an ahead-of-time one
(`plugin_layers`): a JIT plugin would make the plan need Python at run time.
"""

from __future__ import annotations

from pathlib import Path

from ..artifact import Manifest
from ..errors import MaskrtError

PLAN_NAME = "model.plan"
PASTE_PLAN_NAME = "paste.plan"
MAX_DETECTIONS = 1000  # paste.plan's profile: at most this many detections per call


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


def build_plans(engine_dir: Path, onnx_path: Path, manifest: Manifest, trt=None) -> None:
    """Build engine_dir/model.plan from the detector ONNX (and paste.plan from paste.onnx beside it)
    and record them in the manifest. trt: the tensorrt module (default: imported, GPU checked)."""
    trt = trt or require_tensorrt()
    from .plugins import register_plugins

    register_plugins()
    logger = trt.Logger(trt.Logger.WARNING)
    plans = {"model": (PLAN_NAME, onnx_path, {"images": image_profile(manifest)})}
    if (engine_dir / "paste.onnx").is_file():
        plans["paste"] = (PASTE_PLAN_NAME, engine_dir / "paste.onnx", paste_profile(manifest))
    for stage, (name, source, profile) in plans.items():
        (engine_dir / name).write_bytes(build_plan(trt, logger, source, profile))
        manifest.stages[stage] = name
        manifest.files[name] = ""


def build_plan(trt, logger, onnx_path: Path, profile_shapes: dict) -> bytes:
    """One plan from one plugin-node ONNX; profile_shapes: input name -> (min, opt, max) shapes."""
    creation = trt.NetworkDefinitionCreationFlag
    flags = 0
    for flag in ("STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS"):  # the first is always on from TensorRT 11
        if hasattr(creation, flag):
            flags |= 1 << int(getattr(creation, flag))
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise MaskrtError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    plugin_layers(trt, network, onnx_path.name)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, shapes in profile_shapes.items():
        profile.set_shape(name, *shapes)
    if config.add_optimization_profile(profile) < 0:
        raise MaskrtError(f"TensorRT rejected the optimisation profile of {onnx_path.name} {profile_shapes} "
                          "(see the TensorRT log above)")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise MaskrtError(f"TensorRT failed to build {onnx_path.name} (see the TensorRT log above)")
    return bytes(plan)


def plugin_layers(trt, network, what: str = "the network") -> list[tuple[str, str]]:
    """[(layer name, plugin id)] of the network's plugin layers, each checked to be an ahead-of-time
    plugin: tensorrt.plugin's AOT plugin class implements IPluginV3QuickAOTBuild (and returns itself
    as its build capability), a JIT one IPluginV3QuickRuntime and needs Python at run time; a V2 or
    C++ plugin needs its library. MaskrtError naming the first layer that is not AOT.
    (pybind11 hands back the Python object a Python plugin was made as: UNVERIFIED with TensorRT.)"""
    aot = getattr(trt, "IPluginV3QuickAOTBuild", None)
    v3 = getattr(trt.LayerType, "PLUGIN_V3", None)
    found = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type not in {getattr(trt.LayerType, n, None) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN")} - {None}:
            continue
        plugin = None
        if layer.type == v3:
            layer.__class__ = trt.IPluginV3Layer  # TensorRT's Python API: ILayer -> its subclass
            plugin = layer.get_plugin()
        build = plugin.get_capability_interface(trt.PluginCapabilityType.BUILD) if plugin is not None else None
        plugin_id = f"{getattr(plugin, 'plugin_namespace', '?')}::{getattr(plugin, 'plugin_name', '?')}"
        if aot is None or not (isinstance(plugin, aot) or isinstance(build, aot)):
            raise MaskrtError(f"{what}: plugin layer {layer.name!r} ({plugin_id}) is not an ahead-of-time plugin: "
                              "the plan would need Python at run time (TensorRT >= 10.9 with tensorrt.plugin's "
                              "aot_impl is needed)")
        found.append((layer.name, plugin_id))
    return found


def image_profile(manifest: Manifest) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of the `images` input: batch 1, any padded size up to max_size."""
    side = ((manifest.input_policy["max_size"] + 31) // 32) * 32
    short = ((manifest.input_policy["min_size"] + 31) // 32) * 32
    return (1, 3, 32, 32), (1, 3, short, side), (1, 3, side, side)


def paste_profile(manifest: Manifest, mask_size: int = 28, max_side: int = 8192) -> dict:
    """paste.plan's profile: 0..MAX_DETECTIONS detections, an original image up to max_side px a side."""
    n_opt = min(100, MAX_DETECTIONS)
    (_, _, short, side) = image_profile(manifest)[1]
    return {"mask_probs": ((0, mask_size, mask_size), (n_opt, mask_size, mask_size),
                           (MAX_DETECTIONS, mask_size, mask_size)),
            "boxes": ((0, 4), (n_opt, 4), (MAX_DETECTIONS, 4)),
            "image": ((1, 1, 3), (short, side, 3), (max_side, max_side, 3))}
