"""maskrt/tensorrt/build.py against a stand-in TensorRT builder and ONNX parser (no TensorRT here).

The parser stand-in creates plugin layers by TensorRT's rules for quickly deployable plugins (node
attribute aot, the network's preference, the implementations registered), from maskrt's own
registrations (register_plugins with the stand-in tensorrt.plugin) and the real exported ONNX.
So: every plugin layer of both plans is ahead of time, checked before serialisation; a JIT one is
refused before anything is serialised; a rejected profile is a one-line error.
"""

from __future__ import annotations


import onnx
import pytest

from maskrt.artifact import read_manifest
from maskrt.errors import MaskrtError
from maskrt.tensorrt import build as trt_build
from tests.tensorrt.standin import registered


@pytest.fixture(scope="module")
def onnx_engine(trt_onnx_engine):
    return trt_onnx_engine


@pytest.fixture
def standin(monkeypatch):
    def make(profile_ok=True, jit_too=False):
        calls = []
        registry, trt, _ = registered(monkeypatch, calls, profile_ok)
        if jit_too:  # a JIT implementation as well (what maskrt registered before: Python at run time)
            for kinds in registry.values():
                kinds["impl"] = lambda *a: None
        return trt, calls

    return make


def test_onnx_only_build_writes_both_checked_graphs(onnx_engine):
    from maskrt.tensorrt.graph import check_trt_onnx

    manifest = read_manifest(onnx_engine)
    assert set(manifest.files) == {"model.onnx", "paste.onnx"} and manifest.stages == {}
    assert [n.op_type for n in check_trt_onnx(onnx_engine / "paste.onnx")] == ["PasteMasks"]


def test_both_plans_hold_only_ahead_of_time_plugins(onnx_engine, standin, tmp_path):
    trt, calls = standin()
    manifest = read_manifest(onnx_engine)
    for name in ("model.onnx", "paste.onnx"):
        (tmp_path / name).write_bytes((onnx_engine / name).read_bytes())
    trt_build.build_plans(tmp_path, tmp_path / "model.onnx", manifest, trt=trt)
    assert manifest.stages == {"model": "model.plan", "paste": "paste.plan"}
    assert (tmp_path / "model.plan").read_bytes().startswith(b"plan:") and (tmp_path / "paste.plan").is_file()
    assert [c[0] for c in calls] == ["parsed", "profile", "serialized"] * 2
    profiles = [c[1] for c in calls if c[0] == "profile"]
    assert set(profiles[0]) == {"images"} and set(profiles[1]) == {"mask_probs", "boxes", "image"}


def test_plugin_layers_are_listed_and_ahead_of_time(onnx_engine, standin):
    trt, _ = standin()
    for name, expected in (("model.onnx", {"MultiLevelRoIAlign": 2, "BatchedNMS": 2}), ("paste.onnx",
                                                                                     {"PasteMasks": 1})):
        network = trt.Builder(None).create_network(1 << 3)
        trt.OnnxParser(network, None).parse_from_file(str(onnx_engine / name))
        found = trt_build.plugin_layers(trt, network)
        kinds = {}
        for _, plugin_id in found:
            kinds[plugin_id.split("::")[1]] = kinds.get(plugin_id.split("::")[1], 0) + 1
        assert kinds == expected and all(pid.startswith("maskrt::") for _, pid in found)


def test_a_jit_plugin_is_refused_before_serialising(onnx_engine, standin, tmp_path):
    """With both implementations registered, a node without aot=1 would get the JIT one under a
    JIT preference: the plan would need Python. build_plan refuses it, nothing is serialised."""
    trt, calls = standin(jit_too=True)
    model = onnx.load(str(onnx_engine / "model.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "BatchedNMS")
    next(a for a in node.attribute if a.name == "aot").i = 0  # strict JIT
    onnx.save(model, str(tmp_path / "jit.onnx"))
    with pytest.raises(MaskrtError, match="not an ahead-of-time plugin: the plan would need Python"):
        trt_build.build_plan(trt, None, tmp_path / "jit.onnx", {"images": ((1, 3, 32, 32),) * 3})
    assert "serialized" not in [c[0] for c in calls]


def test_a_rejected_profile_is_a_one_line_error(onnx_engine, standin):
    trt, calls = standin(profile_ok=False)
    with pytest.raises(MaskrtError, match="rejected the optimisation profile"):
        trt_build.build_plan(trt, None, onnx_engine / "model.onnx", {"images": ((1, 3, 32, 32),) * 3})
    assert "serialized" not in [c[0] for c in calls]
