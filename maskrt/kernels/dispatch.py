"""One switch for all three ops: `reference`, `cpu` or `triton`.

The model calls `maskrt.kernels.roi_align / nms / paste`; which implementation runs is chosen
per call (`impl=`) or process-wide with `set_implementation` / the `use` context manager.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from . import nms as _nms
from . import paste as _paste
from . import roi_align as _roi_align

OPS = ("roi_align", "nms", "paste")
_REGISTRY: dict[str, dict[str, Callable]] = {
    "reference": {
        "roi_align": _roi_align.reference,
        "nms": _nms.reference,
        "paste": _paste.reference,
    },
}
_current = os.environ.get("MASKRT_KERNELS", "reference")


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
