"""roi_align against torchvision's own operator tests (peer suite).

Cases adapted from torchvision's test/test_ops.py (TestRoIAlign, RoIOpTester, TestMultiScaleRoIAlign)
and test/test_onnx.py (test_multi_scale_roi_align, the MultiScaleRoIAlign of the RoI-heads test);
forward values only (no backward, gradcheck, jit, fx or MPS). The oracles are torchvision's: its
test oracle `expected_fn` + `bilinear_interpolate(snap_border=True)` (re-written below in float64,
vectorised over channels), `torchvision.ops.roi_align` and `torchvision.ops.MultiScaleRoIAlign`.
Our roi_align is multi-level: a single-level torchvision case is called with one feature level
(every RoI then pools from it, as MultiScaleRoIAlign with one level does).
Implementations: `cpu`, the custom op (`op`) and `triton` (interpreter).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torchvision import ops
from torchvision.ops.poolers import LevelMapper

import maskrt.kernels as K
from maskrt.kernels.roi_align.reference import roi_align as reference
from tests.kernels.conftest import PEER_IMPLS


def run(impl, features, rois, scales, size, sampling_ratio, aligned=False):
    """Our roi_align under `impl` ("op" = torch.ops.maskrt.roi_align) -> Tensor[R, C, S, S]."""
    if impl == "op":
        return torch.ops.maskrt.roi_align(list(features), rois, list(scales), size, sampling_ratio, aligned, 224, 4)
    return K.roi_align(list(features), rois, list(scales), size, sampling_ratio, aligned, impl=impl)


def _bilinear(data: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision test_ops.bilinear_interpolate(snap_border=True), for all channels of data [C, H, W]."""
    height, width = data.shape[1:]
    if -1 < y <= 0:
        y = 0.0
    elif height - 1 <= y < height:
        y = float(height - 1)
    if -1 < x <= 0:
        x = 0.0
    elif width - 1 <= x < width:
        x = float(width - 1)
    y_low, x_low = math.floor(y), math.floor(x)
    wy, wx = y - y_low, x - x_low
    val = np.zeros(data.shape[0])
    for w_y, yp in ((1 - wy, y_low), (wy, y_low + 1)):
        for w_x, xp in ((1 - wx, x_low), (wx, x_low + 1)):
            if 0 <= yp < height and 0 <= xp < width:
                val += w_x * w_y * data[:, yp, xp]
    return val


def expected_roi_align(x, rois, pool, spatial_scale=1.0, sampling_ratio=-1, aligned=False) -> torch.Tensor:
    """torchvision test_ops.TestRoIAlign.expected_fn in float64 (its sample positions and grid:
    no clamp of the RoI size, grid = ceil(bin) when adaptive). x: Tensor[B, C, H, W] -> Tensor[R, C, pool, pool]."""
    data = x.detach().double().numpy()
    out = np.zeros((rois.shape[0], data.shape[1], pool, pool))
    offset = 0.5 if aligned else 0.0
    for r, roi in enumerate(rois.double().tolist()):
        x1, y1, x2, y2 = (v * spatial_scale - offset for v in roi[1:])
        bin_h, bin_w = (y2 - y1) / pool, (x2 - x1) / pool
        grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(bin_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(bin_w))
        for i in range(pool):
            for j in range(pool):
                val = np.zeros(data.shape[1])
                for iy in range(grid_h):
                    y = y1 + i * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        val += _bilinear(data[int(roi[0])], y, x1 + j * bin_w + (ix + 0.5) * bin_w / grid_w)
                out[r, :, i, j] = val / (grid_h * grid_w)
    return torch.from_numpy(out)


def forward_case(x_dtype, contiguous, seed=0):
    """RoIOpTester.test_forward's inputs: x Tensor[2, 50, 10, 10] uniform in [0, 1), four RoIs."""
    x = torch.rand(2, 50, 10, 10, generator=torch.Generator().manual_seed(seed)).to(x_dtype)
    if not contiguous:
        x = x.permute(0, 1, 3, 2)
    rois = torch.tensor([[0, 0, 0, 9, 9], [0, 0, 5, 4, 9], [0, 5, 5, 9, 9], [1, 0, 0, 9, 9]], dtype=x_dtype)
    return x, rois


# Tolerances, from what rounding can change (values are means of bilinear samples of x in [0, 1)):
# float64 is computed in float64 (a few ulps, ~1e-15); float32 in float32 (~10 roundings of 6e-8
# each, < 1e-6; torchvision's own test allows 1e-5); float16 features are exact in the float64
# oracle, ours accumulate in float32 and round once to float16: half an fp16 ulp below 1 is
# 2^-12 = 2.4e-4 (torchvision's own test allows 4e-3 for its fp16 kernel).
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 3e-4}


class TestRoIAlign:
    """Adapted from torchvision test/test_ops.py: TestRoIAlign (RoIOpTester.test_forward,
    test_autocast, test_boxes_shape, and the random RoIs of _make_rois / test_qroialign)."""

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("aligned", (True, False))
    @pytest.mark.parametrize("contiguous", (True, False))
    @pytest.mark.parametrize("x_dtype", (torch.float16, torch.float32, torch.float64), ids=str)
    def test_forward(self, impl, aligned, contiguous, x_dtype):
        x, rois = forward_case(x_dtype, contiguous)
        y = run(impl, [x], rois, [1.0], 5, -1, aligned)
        assert y.dtype == x.dtype
        gt = expected_roi_align(x, rois, 5, 1.0, -1, aligned)
        tol = TOL[x_dtype]
        torch.testing.assert_close(y.double(), gt, rtol=0, atol=tol)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("aligned", (True, False))
    def test_autocast(self, impl, aligned):
        """torchvision runs test_forward under CUDA autocast; here under CPU autocast (bfloat16),
        which must change nothing: float32 in, float32 computed and out (TOL: as outside)."""
        x, rois = forward_case(torch.float32, contiguous=False)
        with torch.autocast("cpu"):
            y = run(impl, [x], rois, [1.0], 5, -1, aligned)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y.double(), expected_roi_align(x, rois, 5, 1.0, -1, aligned), rtol=0, atol=1e-5)

    @pytest.mark.parametrize("impl", ("cpu", "op"))
    def test_autocast_large_grid(self, impl):
        """More than 36 samples per bin (the cpu kernel's separable path, an einsum that CPU
        autocast would run in bfloat16: errors ~1e-3). Oracle torchvision roi_align, float32; the
        bins average 81 samples of values in [0, 1): float32 rounding stays below 1e-5.
        (triton has no such path and no torch op inside its kernel: test_autocast covers it.)"""
        x = torch.rand(1, 8, 64, 64, generator=torch.Generator().manual_seed(1))
        rois = torch.tensor([[0, 0.0, 0.0, 60.0, 60.0], [0, 3.0, 1.0, 63.0, 58.0]])  # bins ~8.6 px: 9 x 9 grid
        gt = ops.roi_align(x, rois, 7, 1.0, -1, False)
        with torch.autocast("cpu"):
            y = run(impl, [x], rois, [1.0], 7, -1)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, gt, rtol=0, atol=1e-5)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    def test_boxes_shape(self, impl):
        """RoIs must be Tensor[N, 5] (torchvision asserts; we raise ValueError)."""
        a = torch.linspace(1, 8 * 8, 8 * 8).reshape(1, 1, 8, 8)
        with pytest.raises(ValueError, match="rois must be"):
            run(impl, [a], torch.tensor([[0, 0, 3, 3]], dtype=a.dtype), [1.0], 2, -1)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("aligned", (True, False))
    def test_random_rois(self, impl, aligned):
        """_make_rois: integer RoIs of up to 5 px on a 10 x 10 map (some of zero width or height),
        x in [50, 100); oracle torchvision roi_align. float32 rounding: ~10 roundings of half an
        ulp (3.8e-6 near 100) per value, < 1e-4."""
        g = torch.Generator().manual_seed(2)
        n = 32 if impl == "triton" else 1000
        x = torch.randint(50, 100, size=(2, 2, 10, 10), generator=g).float()
        rois = torch.randint(0, 5, size=(n, 5), generator=g).float()
        rois[:, 0] = torch.randint(0, 2, size=(n,), generator=g)
        rois[:, 3:] += rois[:, 1:3]
        gt = ops.roi_align(x, rois, 5, 1.0, -1, aligned)
        torch.testing.assert_close(run(impl, [x], rois, [1.0], 5, -1, aligned), gt, rtol=0, atol=1e-4)


def tv_multiscale(features, rois, scales, size, sampling_ratio, aligned):
    """torchvision's MultiScaleRoIAlign computation (_multiscale_roi_align: LevelMapper, then
    roi_align per level, unmapped RoIs left at zero), with roi_align's `aligned` passed through."""
    if len(features) == 1:
        return ops.roi_align(features[0], rois, size, scales[0], sampling_ratio, aligned)
    k_min, k_max = int(-math.log2(scales[0])), int(-math.log2(scales[-1]))
    levels = LevelMapper(k_min, k_max)([rois[:, 1:]])
    out = torch.zeros(rois.shape[0], features[0].shape[1], size, size, dtype=features[0].dtype)
    for level, (feature, scale) in enumerate(zip(features, scales)):
        idx = torch.where(levels == level)[0]
        out[idx] = ops.roi_align(feature, rois[idx], size, scale, sampling_ratio, aligned)
    return out


def pyramid(batch, channels, height, width, levels=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, channels, height >> (2 + i), width >> (2 + i), generator=g) for i in range(levels)]


SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
DEGENERATE = torch.tensor([
    [0, 50.0, 10.0, 30.0, 40.0],  # x2 < x1: negative area, NaN FPN level
    [0, 10.0, 50.0, 40.0, 30.0],  # y2 < y1
    [1, 90.0, 80.0, 20.0, 30.0],  # both inverted: positive area, an ordinary level
    [0, 4.0, 4.0, 4.0, 4.0],  # zero size
    [1, 20.0, 30.0, 20.0, 90.0],  # zero width
    [0, 10.0, 12.0, 100.0, 90.0],  # an ordinary RoI
    [1, -20.0, -10.0, 100.0, 60.0],  # across the border
])


class TestMultiScaleRoIAlign:
    """Adapted from torchvision test/test_ops.py TestMultiScaleRoIAlign (whose forward cases live in
    test/test_onnx.py: test_multi_scale_roi_align and the RoI-heads' MultiScaleRoIAlign)."""

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("seed", (0, 1))
    def test_multi_scale_roi_align(self, impl, seed):
        """test_onnx: levels 'feat1' (64 x 64) and 'feat2' (16 x 16) of a 512 x 512 image (scales
        1/8 and 1/32: not consecutive), 3 x 3 output, sampling 2, six random boxes. Plus a 480 px
        box, level 5, which has no feature map: torchvision leaves it at zero. float32 values in
        [0, 1), a few roundings: 1e-5."""
        g = torch.Generator().manual_seed(seed)
        feats = OrderedDict(feat1=torch.rand(1, 5, 64, 64, generator=g), feat2=torch.rand(1, 5, 16, 16, generator=g))
        boxes = torch.rand(6, 4, generator=g) * 256
        boxes[:, 2:] += boxes[:, :2]
        boxes = torch.cat([boxes, torch.tensor([[10.0, 20.0, 490.0, 500.0]])])
        gt = ops.MultiScaleRoIAlign(["feat1", "feat2"], 3, 2)(feats, [boxes], [(512, 512)])
        assert not gt[-1].any()
        rois = torch.cat([torch.zeros(7, 1), boxes], 1)
        out = run(impl, list(feats.values()), rois, [1 / 8, 1 / 32], 3, 2)
        torch.testing.assert_close(out, gt, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(reference(list(feats.values()), rois, [1 / 8, 1 / 32], 3, 2), gt)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    def test_roi_heads_pooler(self, impl):
        """test_onnx's RoI heads: MultiScaleRoIAlign(['0', '1', '2', '3'], 7, 2) over FPN features
        of two 600 x 600 images (strides 4..32; 256 channels there, 16 here), random proposals of
        every level (the RPN's there). float32, 1e-5 as above."""
        n = 24 if impl == "triton" else 300
        g = torch.Generator().manual_seed(3)
        feats = pyramid(2, 16, 600, 600, seed=3)
        xy = torch.rand(n, 2, generator=g) * 560
        wh = torch.exp(torch.rand(n, 2, generator=g) * math.log(600.0))
        boxes = torch.cat([xy, xy + wh], 1).clamp(max=600.0)
        image = torch.randint(0, 2, (n,), generator=g)
        pooler = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
        named = OrderedDict((str(i), f) for i, f in enumerate(feats))
        gt = pooler(named, [boxes[image == 0], boxes[image == 1]], [(600, 600), (600, 600)])
        order = torch.cat([torch.where(image == 0)[0], torch.where(image == 1)[0]])  # torchvision's RoI order
        rois = torch.cat([image[order, None].float(), boxes[order]], 1)
        torch.testing.assert_close(run(impl, feats, rois, SCALES, 7, 2), gt, rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("sampling_ratio", (2, -1))
    def test_degenerate_rois_several_levels(self, impl, sampling_ratio):
        """Inverted (one axis) RoIs have a NaN level: MultiScaleRoIAlign returns zeros for them."""
        feats = pyramid(2, 4, 128, 160, seed=4)
        named = OrderedDict((str(i), f) for i, f in enumerate(feats))
        boxes = [DEGENERATE[DEGENERATE[:, 0] == b, 1:] for b in (0, 1)]
        rois = torch.cat([DEGENERATE[DEGENERATE[:, 0] == b] for b in (0, 1)])
        gt = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio)(named, boxes, [(128, 160)] * 2)
        assert not gt[:2].any() and gt[2:].any()
        out = run(impl, feats, rois, SCALES, 7, sampling_ratio)
        torch.testing.assert_close(out, gt, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(reference(feats, rois, SCALES, 7, sampling_ratio), gt)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("aligned", (True, False))
    @pytest.mark.parametrize("sampling_ratio", (2, -1))
    def test_degenerate_rois_one_level(self, impl, aligned, sampling_ratio):
        """One level (test_ops' make_obj default, featmap_names=['0']): every RoI is pooled by
        roi_align, inverted ones included (they get values, not zeros)."""
        feat = pyramid(2, 4, 128, 160, levels=1, seed=5)
        gt = ops.roi_align(feat[0], DEGENERATE, 7, 0.25, sampling_ratio, aligned)
        if not aligned:
            named = OrderedDict([("0", feat[0])])
            boxes = [DEGENERATE[DEGENERATE[:, 0] == b, 1:] for b in (0, 1)]
            order = torch.cat([torch.where(DEGENERATE[:, 0] == b)[0] for b in (0, 1)])
            msra = ops.MultiScaleRoIAlign(["0"], 7, sampling_ratio)(named, boxes, [(128, 160)] * 2)
            torch.testing.assert_close(msra, gt[order])
        assert gt[:2].any() or (aligned and sampling_ratio <= 0)  # aligned + adaptive: empty grids, 0
        torch.testing.assert_close(run(impl, feat, DEGENERATE, [0.25], 7, sampling_ratio, aligned), gt,
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(reference(feat, DEGENERATE, [0.25], 7, sampling_ratio, aligned), gt)

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("sampling_ratio", (0, -1))
    @pytest.mark.parametrize("levels", (1, 4))
    def test_aligned_empty_adaptive_grids(self, impl, sampling_ratio, levels):
        """aligned=True, adaptive grid, every RoI of the call with an empty grid (ceil(size / S) <= 0):
        torchvision's roi_align returns 0."""
        feats = pyramid(2, 4, 128, 160, levels=levels, seed=6)
        for rois in (DEGENERATE[3:4], DEGENERATE[2:4], DEGENERATE[:4]):
            gt = tv_multiscale(feats, rois, SCALES[:levels], 7, sampling_ratio, True)
            assert not gt.any()
            assert torch.equal(run(impl, feats, rois, SCALES[:levels], 7, sampling_ratio, True), gt)

    def test_tv_multiscale_oracle_is_torchvision(self):
        """The aligned-capable oracle above computes what MultiScaleRoIAlign computes."""
        feats = pyramid(2, 4, 128, 160, seed=7)
        named = OrderedDict((str(i), f) for i, f in enumerate(feats))
        boxes = [DEGENERATE[DEGENERATE[:, 0] == b, 1:] for b in (0, 1)]
        rois = torch.cat([DEGENERATE[DEGENERATE[:, 0] == b] for b in (0, 1)])
        gt = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(named, boxes, [(128, 160)] * 2)
        assert torch.equal(tv_multiscale(feats, rois, SCALES, 7, 2, False), gt)
