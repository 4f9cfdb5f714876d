"""Engine folders of the tensorrt target for the tests of maskrt/tensorrt/: the ONNX one (what a
machine without TensorRT builds) and one with plans built by the stand-in TensorRT builder."""

from __future__ import annotations

import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def trt_onnx_engine(small_checkpoint, tmp_path_factory):
    from maskrt.builders import build_engine

    return build_engine(small_checkpoint, tmp_path_factory.mktemp("trt") / "onnx.maskrt", target="tensorrt",
                        onnx_only=True, progress=False)


@pytest.fixture(scope="session")
def trt_plan_engine(trt_onnx_engine, tmp_path_factory):
    """The ONNX engine with model.plan and paste.plan built by tests.tensorrt.standin's builder (the
    plans are placeholders: b"plan:" + the network's layer names)."""
    from maskrt.artifact import read_manifest, write_manifest
    from maskrt.tensorrt import build as trt_build
    from maskrt.tensorrt import plugins as trt_plugins
    from tests.tensorrt.standin import fake_builder, fake_tensorrt

    out = tmp_path_factory.mktemp("trt") / "plans.maskrt"
    shutil.copytree(trt_onnx_engine, out)
    registry, calls = {}, []
    trt, trtp = fake_tensorrt(registry)
    fake_builder(trt, registry, calls)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "tensorrt", trt)
        mp.setitem(sys.modules, "tensorrt.plugin", trtp)
        mp.setattr(trt_plugins, "_registered", False)
        manifest = read_manifest(out)
        trt_build.build_plans(out, out / "model.onnx", manifest, trt=trt)
        write_manifest(out, manifest)
    return out
