"""One switch for all three ops: `auto` (the default), `reference`, `cpu` or `triton`.

`auto` runs the `triton` kernels on CUDA tensors and the fast `cpu` ones on CPU tensors;
`reference` (torchvision) is the ground truth the tests compare the others with.

The model calls `maskrt.kernels.roi_align / nms / paste`; which implementation runs is chosen
per call (`impl=`) or process-wide with `set_implementation` / the `use` context manager (or
the MASKRT_KERNELS environment variable at import). `triton` imports triton on first use only;
its kernels run on the tensors' device (CUDA, or CPU tensors under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from .registry import OPS as _OPS

OPS = tuple(_OPS)  # op names, in registry order


def _lazy(target: str) -> Callable:
    """A function that imports `maskrt.kernels.<module>` (and with it triton) on its first call;
    target: "module:function"."""
    module, name = target.split(":")

    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module.replace('.', '_')}_{name}"
    call.__doc__ = f"Lazily imported `maskrt.kernels.{module}.{name}`."
    return call


_REGISTRY: dict[str, dict[str, Callable]] = {
    "reference": {name: op.reference for name, op in _OPS.items()},
    "cpu": {name: op.cpu for name, op in _OPS.items()},
    "triton": {name: _lazy(op.triton) for name, op in _OPS.items()},
}


def _device_impl(args: tuple, kwargs: dict) -> str:
    """`auto`'s choice for a call: "triton" when its first tensor argument (or the first tensor
    of a first list argument, e.g. the feature levels) is on CUDA, else "cpu"."""
    first = args[0] if args else next(iter(kwargs.values()))
    tensor = first[0] if isinstance(first, (list, tuple)) else first
    return "triton" if tensor.is_cuda else "cpu"


def _by_device(op: str) -> Callable:
    """`auto`: the `triton` implementation for CUDA tensors, the `cpu` one otherwise."""

    def call(*args, **kwargs):
        return _REGISTRY[_device_impl(args, kwargs)][op](*args, **kwargs)

    call.__name__ = call.__qualname__ = f"auto_{op}"
    return call


_REGISTRY["auto"] = {op: _by_device(op) for op in OPS}
_current = os.environ.get("MASKRT_KERNELS", "auto")


def available() -> list[str]:
    """Names of the registered implementations."""
    return sorted(_REGISTRY)


def register(impl: str, op: str, fn: Callable) -> None:
    """Add `fn` as implementation `impl` of `op`."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; ops are {', '.join(OPS)}")
    _REGISTRY.setdefault(impl, {})[op] = fn


def set_implementation(impl: str) -> None:
    """Select the implementation every op uses from now on."""
    global _current
    _check(impl)
    _current = impl


def current() -> str:
    return _current


@contextlib.contextmanager
def use(impl: str) -> Iterator[None]:
    """Run a block with `impl` selected, restoring the previous choice afterwards."""
    previous = _current
    set_implementation(impl)
    try:
        yield
    finally:
        set_implementation(previous)


def resolve(op: str, impl: str | None, args: tuple, kwargs: dict) -> Callable:
    """The implementation of `op` that a call with these arguments runs: `get(op, impl)`, with
    `auto` resolved by the arguments' device (so callers can tell which kernel they reach)."""
    impl = impl or _current
    return get(op, _device_impl(args, kwargs) if impl == "auto" else impl)


def get(op: str, impl: str | None = None) -> Callable:
    """The function implementing `op` under `impl` (default: the current selection)."""
    impl = impl or _current
    _check(impl)
    try:
        return _REGISTRY[impl][op]
    except KeyError:
        raise ValueError(f"implementation {impl!r} has no {op!r} op") from None


def _check(impl: str) -> None:
    if impl not in _REGISTRY:
        raise ValueError(f"unknown kernel implementation {impl!r}; choose from {', '.join(available())}")
