"""paste, mode "detectron2": the reference against detectron2's paste written out in float64, and
cpu / triton (interpreter) against the reference.

detectron2 (layers/mask_ops.py) samples each 28x28 mask at every pixel centre of its float box
with F.grid_sample (bilinear, zero padding, align_corners=False) and keeps pixels >= 0.5. The
float64 oracle below computes the same bilinear value without float32 rounding, so it agrees
with the float32 reference except for pixels whose probability lies within float32 rounding of
the threshold: 1e-5 is far above that rounding (a few ulp of values <= 1, ~1e-7) and far below
the spacing of sampled probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskrt.kernels as K
from maskrt.kernels.paste.common import detectron2_probs, detectron2_regions
from maskrt.kernels.paste.reference import paste as reference
from tests.kernels.conftest import IMPLS
from tests.kernels.test_paste import random_instances

MODE = "detectron2"


def float64_probs(mask: np.ndarray, box, height: int, width: int) -> np.ndarray:
    """detectron2's pasted probability of every pixel, in float64: pixel centre (x + 0.5) sits at
    mask coordinate u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5; bilinear over the M x M mask with 0
    outside it."""
    m = mask.shape[0]
    x1, y1, x2, y2 = (float(v) for v in box)
    u = (np.arange(width) + 0.5 - x1) / (x2 - x1) * m - 0.5
    v = (np.arange(height) + 0.5 - y1) / (y2 - y1) * m - 0.5
    padded = np.zeros((m + 2, m + 2))
    padded[1:-1, 1:-1] = mask

    def taps(c):
        lo = np.floor(c)
        idx = np.clip(lo.astype(np.int64) + 1, 0, m + 1), np.clip(lo.astype(np.int64) + 2, 0, m + 1)
        far = (c < -1) | (c >= m)
        return idx, c - lo, far

    (y0, y1_), fy, fary = taps(v)
    (x0, x1_), fx, farx = taps(u)
    wy, wx = ((1 - fy, fy), (1 - fx, fx))
    val = sum(wy[a][:, None] * wx[b][None, :] * padded[ry][:, rx]
              for a, ry in enumerate((y0, y1_)) for b, rx in enumerate((x0, x1_)))
    val[fary, :] = 0.0
    val[:, farx] = 0.0
    return val


def test_reference_is_detectron2s_paste():
    masks, boxes, _ = random_instances(12, 90, 120, seed=21, min_size=1.5, max_size=110, margin=20)
    out = reference(masks, boxes, 90, 120, 0.5, mode=MODE)
    for i in range(len(masks)):
        p = float64_probs(masks[i].double().numpy(), boxes[i], 90, 120)
        clear = np.abs(p - 0.5) > 1e-5
        assert np.array_equal(out[i].numpy()[clear], (p >= 0.5)[clear])
    assert out.any() and not out.all()


def test_threshold_is_inclusive():
    """The pixel whose centre is the box centre samples exactly 0.5 from a mask of 0.5s (g = 0,
    u = M / 2 - 0.5: four taps weighted 1/4, all exact): >= 0.5 keeps it, a threshold one step
    above 0.5 does not."""
    masks = torch.full((1, 28, 28), 0.5)
    boxes = torch.tensor([[4.5, 6.5, 32.5, 34.5]])  # centre (18.5, 20.5): pixel (x 18, y 20)
    assert float(detectron2_probs(masks[0], boxes[0], torch.tensor([20]), torch.tensor([18]))) == 0.5
    assert reference(masks, boxes, 40, 40, 0.5, mode=MODE)[0, 20, 18]
    assert not reference(masks, boxes, 40, 40, float(np.nextafter(np.float32(0.5), 1)), mode=MODE)[0, 20, 18]


def assert_same(impl, out, ref, masks, boxes, threshold=0.5):
    """cpu: bit-identical (the same grid_sample per pixel). triton: bit-identical wherever the
    probability is not within a few float32 ulp of the threshold (torch's CPU grid_sample rounds as
    the kernel emulates it on x86 builds: measured identical; another build may differ by an ulp)."""
    assert out.shape == ref.shape and out.dtype == torch.bool
    if impl == "cpu":
        assert torch.equal(out, ref)
        return
    h, w = ref.shape[1:]
    for i in range(len(masks)):
        probs = detectron2_probs(masks[i], boxes[i], torch.arange(h), torch.arange(w)) if boxes[i, 2] > boxes[i, 0] \
            and boxes[i, 3] > boxes[i, 1] else torch.zeros(h, w)
        clear = (probs - threshold).abs() > 1e-6
        assert torch.equal(out[i][clear], ref[i][clear])
    assert (out != ref).float().mean() <= 1e-4


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_random_instances_match_reference(impl, threshold):
    masks, boxes, _ = random_instances(10 if impl == "triton" else 40, 100, 130, seed=22, min_size=1.0)
    out = K.paste(masks, boxes, 100, 130, threshold, mode=MODE, impl=impl)
    assert_same(impl, out, reference(masks, boxes, 100, 130, threshold, mode=MODE), masks, boxes, threshold)


@pytest.mark.parametrize("impl", IMPLS)
def test_degenerate_boxes_give_empty_masks(impl):
    boxes = torch.tensor([
        [10.0, 10.0, 10.0, 40.0],  # zero width: detectron2 drops it before pasting
        [10.0, 10.0, 40.0, 10.0],  # zero height
        [50.0, 60.0, 30.0, 40.0],  # inverted
        [float("nan"), 1.0, 20.0, 20.0],
        [1.0, 1.0, float("inf"), 20.0],
        [-80.0, -60.0, -10.0, -5.0],  # entirely above-left of the image
        [200.0, 100.0, 260.0, 150.0],  # entirely past the bottom-right
        [-0.4, -0.6, 0.3, 0.2],  # a sub-pixel box at the corner
        [20.0, 20.0, 20.25, 60.0],  # a quarter-pixel-wide box
    ])
    masks = torch.rand(len(boxes), 28, 28, generator=torch.Generator().manual_seed(23)) * 0.5 + 0.5
    ref = reference(masks, boxes, 64, 80, 0.5, mode=MODE)
    assert not ref[:7].any()
    assert_same(impl, K.paste(masks, boxes, 64, 80, 0.5, mode=MODE, impl=impl), ref, masks, boxes)


def test_regions_bound_every_foreground_pixel():
    """Pixels outside floor(x1) - 1 .. ceil(x2) + 1 are background even for a mask of ones."""
    boxes = torch.tensor([[3.3, 5.7, 40.2, 22.0], [0.5, 0.5, 300.0, 200.0]])
    masks = torch.ones(2, 28, 28)
    region = detectron2_regions(boxes, 50, 60)
    assert region.tolist() == [[2, 4, 42, 23], [0, 0, 60, 50]]
    ref = reference(masks, boxes, 50, 60, 0.01, mode=MODE)
    inside = torch.zeros_like(ref)
    for i, (x0, y0, x1, y1) in enumerate(region.tolist()):
        inside[i, y0:y1, x0:x1] = True
    assert not (ref & ~inside).any() and ref[0, 6:22, 4:40].all()


@pytest.mark.parametrize("impl", IMPLS)
def test_id_map_and_crops(impl):
    masks, boxes, scores = random_instances(9, 80, 100, seed=24, min_size=15, max_size=70, margin=10)
    full = reference(masks, boxes, 80, 100, 0.5, mode=MODE)
    res = K.paste_id_map(masks, boxes, 80, 100, 0.5, scores=scores, mode=MODE, impl=impl)
    assert torch.equal(res.regions.cpu(), detectron2_regions(boxes, 80, 100))
    assert_same(impl, res.full_masks(), full, masks, boxes)
    priority = scores[:, None, None].expand_as(full).clone()
    priority[~res.full_masks()] = -1
    want = torch.where(res.full_masks().any(0), torch.argmax(priority, 0), -1)
    assert torch.equal(res.id_map, want.to(torch.int32))


@pytest.mark.parametrize("impl", ["reference", *IMPLS])
def test_bad_mode_or_threshold_raises(impl):
    masks, boxes, _ = random_instances(2, 20, 20, seed=25)
    with pytest.raises(ValueError, match="paste mode"):
        K.paste(masks, boxes, 20, 20, 0.5, mode="detectron", impl=impl)
    with pytest.raises(ValueError, match="threshold > 0"):
        K.paste(masks, boxes, 20, 20, 0.0, mode=MODE, impl=impl)


def test_custom_op_opcheck():
    masks, boxes, scores = random_instances(3, 30, 40, seed=26, margin=0)
    torch.library.opcheck(torch.ops.maskrt.paste.default, (masks, boxes, 30, 40, 0.5, MODE))
    torch.library.opcheck(torch.ops.maskrt.paste_id_map.default, (masks, boxes, 30, 40, 0.5, scores, MODE))
    assert torch.equal(torch.ops.maskrt.paste(masks, boxes, 30, 40, 0.5, MODE),
                       reference(masks, boxes, 30, 40, 0.5, mode=MODE))


def test_triton_host_code_on_fake_cuda():
    """The detectron2 mode's host code runs on the device (maskrt.gpu_verify.fake_cuda, as
    test_gpu_host.py for torchvision's): its own kernel, no host read for the plain paste, one (the
    packed length) for the fused one."""
    import importlib

    from maskrt.gpu_verify.fake_cuda import fake_cuda
    from maskrt.kernels.model_sizes import random_boxes

    paste_triton = importlib.import_module("maskrt.kernels.paste.triton")
    with fake_cuda() as run:
        masks, boxes, scores = torch.rand(6, 28, 28, device="cuda"), random_boxes(6, 90, 120, "cuda"), \
            torch.rand(6, device="cuda")
        out = paste_triton.paste(masks, boxes, 90, 120, 0.5, MODE)
        res = paste_triton.paste_id_map(masks, boxes, 90, 120, 0.5, scores, MODE)
    assert out.device.type == "cuda" and {t.device.type for t in (res.id_map, res.regions, res.packed)} == {"cuda"}
    assert run.kernels() == ["d2_paste_kernel", "d2_paste_kernel"]
    assert [what for what, _ in run.host_reads] == ["packed crop length"]
