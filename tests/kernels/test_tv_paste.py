"""paste against torchvision's own test of mask pasting (peer suite).

Adapted from torchvision's test/test_onnx.py (ONNXExporterTester.test_paste_mask_in_image): 26 x 26
masks uniform in [0, 1) pasted into 100 x 100 and 200 x 200 images, random boxes of which about
one in six is inverted (x2 < x1 or y2 < y1). torchvision checks that its eager
`paste_masks_in_image` and the traced (ONNX) variant agree; here both are the oracle, thresholded
as our paste is. Implementations: `cpu`, the custom op (`op`) and `triton` (interpreter).
"""

from __future__ import annotations

import functools

import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

import maskrt.kernels as K
from tests.kernels.conftest import PEER_IMPLS


def run(impl, masks, boxes, height, width, threshold):
    """Our paste under `impl` ("op" = torch.ops.maskrt.paste) -> Tensor[N, H, W] bool."""
    if impl == "op":
        return torch.ops.maskrt.paste(masks, boxes, height, width, threshold)
    return K.paste(masks, boxes, height, width, threshold, impl=impl)


def make_case(n, scale, seed):
    """test_paste_mask_in_image's inputs: masks Tensor[n, 1, 26, 26], boxes Tensor[n, 4] * scale."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, 1, 26, 26, generator=g)
    boxes = torch.rand(n, 4, generator=g)
    boxes[:, 2:] += torch.rand(n, 2, generator=g)
    return masks, boxes * scale


@functools.lru_cache(maxsize=None)
def oracle(seed):
    """Both cases of the test and torchvision's pasted probabilities: eager, and traced on the
    first case then run on the second (the ONNX loop), which must agree as torchvision asserts."""
    first, second = make_case(10, 50, seed), make_case(20, 100, seed + 1)
    sizes = [(100, 100), (200, 200)]
    eager = [paste_masks_in_image(m, b, s) for (m, b), s in zip((first, second), sizes)]
    traced = torch.jit.trace(paste_masks_in_image, (*first, [torch.tensor(100), torch.tensor(100)]))
    for (m, b), s, e in zip((first, second), sizes, eager):
        assert torch.equal(traced(m, b, [torch.tensor(s[0]), torch.tensor(s[1])]), e)
    return [(m[:, 0], b, s, e[:, 0]) for (m, b), s, e in zip((first, second), sizes, eager)]


# Every threshold and seed on cpu and the op; triton (interpreted: ~0.5 s per box of the second
# case) on one of each and the first 5 instances of each case (instances are pasted independently).
PARAMS = [(impl, threshold, seed) for impl in PEER_IMPLS for threshold in (0.5, 0.2) for seed in (0, 2)
          if impl != "triton" or (threshold, seed) == (0.5, 0)]


class TestPasteMaskInImage:
    """Adapted from torchvision test/test_onnx.py ONNXExporterTester.test_paste_mask_in_image."""

    @pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
    @pytest.mark.parametrize("impl,threshold,seed", PARAMS)
    def test_paste_mask_in_image(self, impl, threshold, seed):
        cases = oracle(seed)
        if impl == "triton":
            cases = [(m[:5], b[:5], hw, p[:5]) for m, b, hw, p in cases]
        assert any(bool(((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any()) for _, b, _, _ in cases)  # inverted boxes
        for masks, boxes, (h, w), probs in cases:
            out = run(impl, masks, boxes, h, w, threshold)
            want = probs > threshold
            assert out.shape == want.shape and out.dtype == torch.bool
            if impl != "triton":
                assert torch.equal(out, want)  # cpu (and the op on CPU tensors): bit-identical to torchvision
                continue
            # Triton resizes these small boxes (h + w <= 128) with torch's large-output formula, which
            # rounds differently from torch's small-output path by at most an ulp of the probability:
            # only a pixel within 2 ulps of the threshold (2^-23 covers 2 ulps of values in [0.125, 1))
            # may flip.
            flipped = out != want
            assert bool(((probs[flipped] - threshold).abs() <= 2.0**-23).all())
