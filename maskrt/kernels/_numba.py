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
"""

from __future__ import annotations

import atexit
import functools
from collections.abc import Callable


def compiled_on_first_use(fn: Callable) -> Callable[[], Callable]:
    """A callable returning `fn` compiled by numba (on first call; the same object afterwards)."""

    @functools.cache
    def compiled() -> Callable:
        import numba

        return numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")(fn)

    atexit.register(compiled.cache_clear)
    return compiled
