"""onnx.reference ops for running whole exported graphs in the tests: the plugin ops
(maskrt.tensorrt.graph.reference_ops) plus a vectorised ConvTranspose for the mask head's
upsampling (kernel 2, stride 2: every output pixel comes from one input pixel). onnx's own
ConvTranspose scatters with a Python loop per output channel and image (col2im_naive_implementation):
~11 of the 17 s of test_onnx_runs_on_cpu_and_matches_torch_backend on 2 cores. Other attributes
(padding, dilation, groups, overlapping kernels) fall back to onnx's implementation, which
test_fast_conv_transpose_is_onnx_s checks this one against."""

from __future__ import annotations

import numpy as np
from onnx.reference.ops.op_conv_transpose import ConvTranspose as OnnxConvTranspose

from maskrt.tensorrt import graph as trt_graph


class ConvTranspose(OnnxConvTranspose):
    """Y[n, o, i*kh + a, j*kw + b] = sum_c X[n, c, i, j] W[c, o, a, b] + B[o] when the kernel tiles
    the output (strides == kernel_shape, no pads, dilations, output padding or groups; float32
    sums over c in BLAS's order, ~1e-7 relative to onnx's)."""

    def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None, kernel_shape=None,
             output_padding=None, output_shape=None, pads=None, strides=None):
        kernel = list(W.shape[2:])
        tiles = (X.ndim == 4 and list(strides or []) == kernel and list(kernel_shape or kernel) == kernel
                 and not any(pads or []) and all(d == 1 for d in dilations or [1])
                 and not any(output_padding or []) and (group or 1) == 1 and output_shape is None
                 and auto_pad in (None, "NOTSET"))
        if not tiles:
            return super()._run(X, W, B, auto_pad=auto_pad, dilations=dilations, group=group,
                                kernel_shape=kernel_shape, output_padding=output_padding,
                                output_shape=output_shape, pads=pads, strides=strides)
        (n, _, h, w), (_, o, kh, kw) = X.shape, W.shape
        y = np.tensordot(X, W, axes=([1], [0]))  # [N, H, W, O, kh, kw]
        y = y.transpose(0, 3, 1, 4, 2, 5).reshape(n, o, h * kh, w * kw)
        if B is not None:
            y = y + B.reshape(1, o, 1, 1)
        return (y.astype(X.dtype, copy=False),)


def graph_ops(plugins: str = "reference") -> list[type]:
    """new_ops for onnx.reference.ReferenceEvaluator on maskrt's exported graphs."""
    return [*trt_graph.reference_ops(plugins), ConvTranspose]
