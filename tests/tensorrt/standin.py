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


def check_aot_signature(fn, schema):
    """tensorrt.plugin's _validate_aot_impl rules: (inputs, attributes, outputs, tactic) ->
    tuple[str | bytes, str | bytes, KernelLaunchParams, SymIntExprs]; TensorRT calls it with every
    attribute (the subset rule notwithstanding: _TemplateAOTPlugin passes all of them)."""
    sig = inspect.signature(fn)
    assert list(sig.parameters) == [*[i.name for i in schema.inputs], *schema.attr_names, "outputs", "tactic"]
    name, code, launch, extra = typing.get_args(sig.return_annotation)
    assert typing.get_args(name) == (str, bytes) and typing.get_args(code) == (str, bytes)
    return launch, extra


