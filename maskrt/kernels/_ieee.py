"""Correctly rounded division and square root for the Triton kernels, on every supported triton.

The kernels claim bit-exactness against torch's CPU arithmetic, so a division or square root must
round to nearest (IEEE 754), whatever triton compiles them with (pyproject: triton 3.6 to 3.8):
- float32 `a / b` lowers to div.full.f32 (approximate, up to 2 ulp), and `tl.sqrt` to an
  approximate square root;
- `tl.math.fdiv(a, b, ieee_rounding=True)` is not portable: triton 3.6 ignores the flag (its
  semantic.fdiv always emits the plain division: div.full.f32), triton 3.8 honours it for float32
  but fails to compile it for float64 ("llvm.nvvm.div.rn.f actually returns float");
- libdevice's div_rn is linked with __CUDA_FTZ=1 (div.rn.ftz.f32: subnormals flushed).
So: float32 -> tl.math.div_rn / tl.sqrt_rn (div.rn.f32, sqrt.rn.f32, no .ftz), float64 -> `/` and
`tl.sqrt` (div.rn.f64, sqrt.rn.f64: the only float64 forms), float16 / bfloat16 -> computed in
float32 (rounding that to the narrow type is the correctly rounded narrow result: 24 >= 2 * 11 + 2
bits). The interpreter computes all of them exactly in numpy. tests/gpu_verify/test_ptx.py holds the
compiled kernels to it under the pinned triton and triton 3.6 (make test-triton36).
"""

import triton
import triton.language as tl


@triton.jit
def ieee_div(a, b):
    """a / b rounded to nearest even; a and b of one float type. float64 -> float64, else float32."""
    if a.dtype == tl.float64:
        return a / b
    else:
        return tl.math.div_rn(a.to(tl.float32), b.to(tl.float32))


@triton.jit
def ieee_sqrt(x):
    """sqrt(x) rounded to nearest even. float64 -> float64, else float32."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x.to(tl.float32))
