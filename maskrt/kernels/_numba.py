"""numba-compiled CPU loops, compiled on first use, one way for every kernel.

`compiled_on_first_use(fn)` returns a callable giving `fn` compiled by numba: imported and
compiled (or loaded from numba's on-disk cache) the first time it is needed, so importing
maskrt never imports numba. Every kernel is compiled alike:
- no fastmath: every float operation rounds as torch's (and no FMA contraction), the kernels'
  bit-exactness claims rest on it;
- error_model="numpy": IEEE division (0/0 is NaN, x/0 is inf), no exception;
- nogil: the glue's threads and the streaming pipeline's others run meanwhile;
- boundscheck off, cache=True.
The compiled kernel is dropped at exit while numba is whole: released later, with the modules
being torn down, its code's finalizer finds numba's globals gone and prints a traceback (seen
after Ctrl-C or SIGTERM, once in a few runs).

numba compiles each kernel for the argument types of its first call (array dtypes, dimensions and
layouts): a CPU engine's load runs every kernel once on inputs laid out as a frame's
(`kernels.warmup.warm_up_cpu`, `model.transform.warm_up`), so no frame waits for a compile (~4.8 s
for all of them with numba's cache empty, ~0.6 s loading them from it, numba's import included). `compiled_signatures()`
lists what has been compiled, for the test that checks a frame compiles nothing more.
"""

from __future__ import annotations

import atexit
import functools
from collections.abc import Callable


_KERNELS: list[Callable[[], Callable]] = []  # every compiled_on_first_use kernel, in definition order


def compiled_on_first_use(fn: Callable) -> Callable[[], Callable]:
    """A callable returning `fn` compiled by numba (on first call; the same object afterwards)."""

    @functools.cache
    def compiled() -> Callable:
        import numba

        return numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")(fn)

    compiled.py_func = fn
    atexit.register(compiled.cache_clear)
    _KERNELS.append(compiled)
    return compiled


def compiled_signatures() -> dict[str, int]:
    """{module.function: number of argument-type signatures compiled so far} for every kernel of the
    imported modules (0: not compiled yet; this does not compile or import numba)."""
    counts = {}
    for compiled in _KERNELS:
        name = f"{compiled.py_func.__module__}.{compiled.py_func.__name__}"
        counts[name] = len(compiled().signatures) if compiled.cache_info().currsize else 0
    return counts
