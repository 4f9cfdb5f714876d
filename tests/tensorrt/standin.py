"""Stand-ins for tensorrt and tensorrt.plugin that apply TensorRT's rules (no TensorRT on any machine
of this project): the plugin registrations' signatures (tensorrt.plugin's _validate.py), shape
expressions as integers, the AOT launch parameters. Shared by the tests of maskrt/tensorrt/."""

from __future__ import annotations

import inspect
import types
import typing

import numpy as np


class Desc:
    """Stand-in tensorrt.plugin.TensorDesc with integer shapes."""

    def __init__(self, shape_expr=(), dtype=None):
        self.shape_expr, self.dtype = tuple(shape_expr), dtype


class SizeTensor(Desc):
    def __init__(self, opt, upper_bound):
        super().__init__((), "INT32")
        self.opt, self.upper_bound = opt, upper_bound

    def expr(self):
        return ("size_tensor", self.upper_bound)


def fake_tensorrt(registry: dict):
    """tensorrt + tensorrt.plugin stand-ins that record the registrations and check their
    signatures with tensorrt.plugin's rules (annotated classes, tensors first, no defaults,
    autotune args = inputs, outputs; aot_impl as _check_aot_signature)."""
    trt = types.ModuleType("tensorrt")
    trt.int64, trt.int32, trt.bool = "INT64", "INT32", "BOOL"
    trtp = types.ModuleType("tensorrt.plugin")
    trtp.TensorDesc, trtp.Tensor = Desc, type("Tensor", (), {})
    trtp.AutoTuneCombination = lambda s: ("combination", s)
    trtp.from_shape_expr = lambda shape, dtype: Desc(shape, dtype)
    trtp.size_tensor = SizeTensor
    trtp.min, trtp.max, trtp.cdiv = min, max, lambda a, b: -(-a // b)

    def check_register(fn):
        params = list(inspect.signature(fn).parameters.values())
        assert all(p.default is inspect.Parameter.empty and inspect.isclass(typing.get_origin(p.annotation) or
                                                                            p.annotation) for p in params)
        kinds = [issubclass(p.annotation, Desc) if inspect.isclass(p.annotation) else False for p in params]
        assert kinds == sorted(kinds, reverse=True), "TensorDescs first, then attributes"
        for p, is_tensor in zip(params, kinds):
            ok_attr = p.annotation in (int, float, str) or typing.get_origin(p.annotation) is np.ndarray
            assert is_tensor or ok_attr, f"unsupported attribute type {p.annotation}"
        returns = typing.get_args(inspect.signature(fn).return_annotation)
        assert returns and all(r is Desc for r in returns)

    def decorator(kind):
        def for_id(plugin_id):
            def record(fn):
                if kind == "register":
                    check_register(fn)
                registry.setdefault(plugin_id, {})[kind] = fn
                return fn
            return record
        return for_id

    trtp.register, trtp.autotune, trtp.impl = decorator("register"), decorator("autotune"), decorator("impl")
    trtp.aot_impl = decorator("aot_impl")
    trtp.KernelLaunchParams = type("KernelLaunchParams", (), {})
    trtp.SymExprs = type("SymExprs", (tuple,), {})
    trtp.SymIntExprs = type("SymIntExprs", (trtp.SymExprs,), {"from_tuple": classmethod(lambda cls, t: cls(t))})
    trtp.SymInt32 = lambda value: ("int32", value)
    trt.plugin = trtp
    return trt, trtp


def registered(monkeypatch, builder_calls: list | None = None, profile_ok: bool = True):
    """maskrt's plugins registered with the stand-ins (installed as `tensorrt` for the test):
    (registry plugin id -> {kind: function}, trt, trtp); with builder_calls, the stand-in builder too."""
    import sys

    from maskrt.tensorrt import plugins as trt_plugins

    registry = {}
    trt, trtp = fake_tensorrt(registry)
    trt.float32, trt.float16 = "FLOAT", "HALF"
    if builder_calls is not None:
        fake_builder(trt, registry, builder_calls, profile_ok)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.setattr(trt_plugins, "_registered", False)
    trt_plugins.register_plugins()
    return registry, trt, trtp


def check_aot_signature(fn, schema):
    """tensorrt.plugin's _validate_aot_impl rules: (inputs, attributes, outputs, tactic) ->
    tuple[str | bytes, str | bytes, KernelLaunchParams, SymIntExprs]; TensorRT calls it with every
    attribute (the subset rule notwithstanding: _TemplateAOTPlugin passes all of them)."""
    sig = inspect.signature(fn)
    assert list(sig.parameters) == [*[i.name for i in schema.inputs], *schema.attr_names, "outputs", "tactic"]
    name, code, launch, extra = typing.get_args(sig.return_annotation)
    assert typing.get_args(name) == (str, bytes) and typing.get_args(code) == (str, bytes)
    return launch, extra




def fake_builder(trt, registry: dict, calls: list, profile_ok: bool = True):
    """Adds to the stand-in `trt` what maskrt.tensorrt.build uses: Builder, OnnxParser, network, config,
    profile. The parser follows TensorRT's rules for a quickly deployable plugin node (onnx-tensorrt
    importerUtils.cpp createPlugin, kV3QUICK; tensorrt.plugin _lib.py create_plugin): the plugin is
    looked up by op_type and plugin_namespace; node attribute aot=1 -> strict AOT (needs an
    aot_impl), aot=0 -> strict JIT (needs an impl), absent -> the network's preference flag, and
    with one implementation registered that one. `calls` records the builder's steps."""
    import onnx

    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0, PREFER_AOT_PYTHON_PLUGINS=3)
    trt.LayerType = types.SimpleNamespace(PLUGIN_V3="PLUGIN_V3", CONVOLUTION="CONVOLUTION")
    trt.PluginCapabilityType = types.SimpleNamespace(CORE=0, BUILD=1, RUNTIME=2)
    trt.IPluginV3QuickAOTBuild = type("IPluginV3QuickAOTBuild", (), {})
    trt.IPluginV3QuickRuntime = type("IPluginV3QuickRuntime", (), {})

    class Plugin:
        def __init__(self, namespace, name):
            self.plugin_namespace, self.plugin_name = namespace, name

        def get_capability_interface(self, kind):
            return self

    aot_plugin = type("AOTPlugin", (Plugin, trt.IPluginV3QuickAOTBuild), {})
    jit_plugin = type("JITPlugin", (Plugin, trt.IPluginV3QuickRuntime), {})

    class Layer:
        def __init__(self, name, kind, plugin=None):
            self.name, self.type, self._plugin = name, kind, plugin

    class IPluginV3Layer(Layer):
        def get_plugin(self):
            return self._plugin

    trt.IPluginV3Layer = IPluginV3Layer

    class Network:
        def __init__(self, flags):
            self.flags, self.layers = flags, []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):  # the base class, as TensorRT's Python API returns it
            layer = self.layers[i]
            return Layer(layer.name, layer.type, layer._plugin)

    def create(node, flags):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        namespace = attrs.get("plugin_namespace", b"").decode()
        kinds = registry.get(f"{namespace}::{node.op_type}")
        if kinds is None:
            raise RuntimeError(f"no plugin creator for {namespace}::{node.op_type}")
        prefer_aot = bool(flags & (1 << trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS))
        want = {1: "aot", 0: "jit"}.get(attrs.get("aot"), "aot" if prefer_aot else None)
        has = {"aot": "aot_impl" in kinds, "jit": "impl" in kinds}
        if want is None or not has[want]:
            if "aot" in attrs or (has["aot"] and has["jit"]) or not any(has.values()):
                raise ValueError(f"{node.op_type}: no {want} implementation (or no preference between two)")
            want = "aot" if has["aot"] else "jit"
        return (aot_plugin if want == "aot" else jit_plugin)(namespace, node.op_type)

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            for node in onnx.load(path).graph.node:
                if node.domain:
                    plugin = create(node, self.network.flags)
                    self.network.layers.append(IPluginV3Layer(node.name, trt.LayerType.PLUGIN_V3, plugin))
                else:
                    self.network.layers.append(Layer(node.name, trt.LayerType.CONVOLUTION))
            calls.append(("parsed", path))
            return True

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            assert len(lo) == len(opt) == len(hi) and all(a <= b <= c for a, b, c in zip(lo, opt, hi)), (name, lo)
            self.shapes[name] = (lo, opt, hi)

    class Config:
        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))
            return 0 if profile_ok else -1

    class Builder:
        def __init__(self, logger):
            pass

        create_network = staticmethod(Network)
        create_builder_config = staticmethod(Config)
        create_optimization_profile = staticmethod(Profile)

        def build_serialized_network(self, network, config):
            calls.append(("serialized", [layer.name for layer in network.layers]))
            return b"plan:" + ",".join(layer.name for layer in network.layers).encode()

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt
