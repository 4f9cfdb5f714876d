"""roi_align's FPN level assignment inside the Triton kernel (interpreter) against the reference's
fpn_levels, at and around every level boundary, for float32, float64, float16 and bfloat16 RoIs.

The kernel compares q = sqrt(area) / 224 with thresholds (common.level_thresholds) instead of
evaluating log2; the thresholds come from the reference by bisection. The oracle here is the
reference's fpn_levels on the same RoIs, and for float32 also thresholds found by another method
(a scan of float32 neighbours, the research notes' constants).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskrt.kernels as K
from maskrt.kernels.roi_align.common import level_thresholds
from maskrt.kernels.roi_align.reference import fpn_levels, levels_of_ratio

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
SIDE = 608  # image side: every RoI below lies inside, so each level's constant map is sampled in full
BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}


def shifted(value: float, ulps: int, dtype) -> float:
    """value moved by `ulps` representable steps of dtype (value > 0)."""
    bits = torch.tensor([value], dtype=dtype).view(BITS[dtype]).to(torch.int64) + ulps
    return float(bits.to(BITS[dtype]).view(dtype))


def test_float32_thresholds_equal_a_scan_of_neighbours():
    """Scanning +-2^16 float32 neighbours of 2^(k - 4) with the reference expression (the research
    notes' method) found 0x3efffff3, 0x3f7ffff4, 0x3ffffff2 for levels 3, 4, 5 (P2..P5, 224, eps 1e-6)."""
    found = level_thresholds(torch.float32, 2, 5)
    assert [int(np.float32(t).view(np.uint32)) for t in found] == [0x3efffff3, 0x3f7ffff4, 0x3ffffff2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_each_threshold_is_the_first_value_of_its_level(dtype):
    for j, t in enumerate(level_thresholds(dtype, 2, 5), start=1):
        window = torch.tensor([shifted(t, d, dtype) for d in range(-64, 65)], dtype=dtype)
        levels = levels_of_ratio(window, 2, 5).tolist()
        assert levels == sorted(levels) and levels[63] == j - 1 and levels[64] == j, (dtype, j)


def near_boundary_rois(dtype, n_random: int = 4000, ulps: int = 40) -> torch.Tensor:
    """Random RoIs of every level plus, for each threshold t, square RoIs of side ~ q * 224 for q
    within +-ulps of t (and the side's neighbours), inverted and empty ones: Tensor[R, 5] of dtype."""
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(n_random, 2, generator=g) * 100
    wh = torch.rand(n_random, 2, generator=g) ** 3 * 490
    rows = [torch.cat([xy, xy + wh], 1).to(dtype)]
    q_dtype = torch.float64 if dtype == torch.float64 else torch.float32  # box_area upcasts float16, bfloat16
    for t in level_thresholds(q_dtype, 2, 5):
        for d in range(-ulps, ulps + 1, 1 if dtype == q_dtype else 8):
            side = torch.tensor(shifted(t, d, q_dtype), dtype=q_dtype) * 224.0
            for a in (float(side), shifted(float(side), -1, dtype), shifted(float(side), 1, dtype)):
                x0 = torch.tensor(17.0, dtype=dtype)
                rows.append(torch.stack([x0, x0 - 12, x0 + a, x0 - 12 + a]).to(dtype)[None])
    rows.append(torch.tensor([[10.0, 10, 5, 20], [3, 3, 3, 9], [0, 0, 0, 0], [1, 1, 2, 0.5]], dtype=dtype))
    boxes = torch.cat(rows)
    return torch.cat([torch.zeros(len(boxes), 1, dtype=dtype), boxes], 1)


@pytest.mark.parametrize("dtype", list(BITS), ids=str)
def test_kernel_levels_equal_reference_levels(dtype):
    """Level l's map is the constant l + 1, so a RoI pooled (1 x 1, one sample) from it reads l + 1;
    a RoI of negative area (level -1) reads 0."""
    rois = near_boundary_rois(dtype)
    assert float(rois[:, 1:].max()) < SIDE and float(rois[:, 1:].min()) > -1
    feats = [torch.full((1, 1, SIDE >> (2 + k), SIDE >> (2 + k)), float(k + 1), dtype=dtype) for k in range(4)]
    pooled = K.roi_align(feats, rois, SCALES, 1, 1, False, impl="triton")
    got = pooled.double().round().to(torch.int64).reshape(-1) - 1
    want = fpn_levels(rois[:, 1:], 2, 5)
    assert sorted(set(want.tolist())) == [-1, 0, 1, 2, 3]
    assert torch.equal(got, want)
