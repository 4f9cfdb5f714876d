"""paste: cpu and triton (interpreter) against the reference (torchvision's paste_masks_in_image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import expand_boxes

import maskrt.kernels as K
from maskrt.kernels.paste.reference import paste as reference
from tests.kernels.conftest import IMPLS


def random_instances(n, height, width, seed=0, min_size=2.0, max_size=150.0, m=28, margin=30.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([width + 2 * margin, height + 2 * margin]) - margin
    wh = min_size + torch.rand(n, 2, generator=g) * (max_size - min_size)
    masks = torch.sigmoid(torch.randn(n, m, m, generator=g) * 3)
    return masks, torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def safe_oracle(masks, boxes, height, width, threshold=0.5):
    """torchvision's paste, box by box, with the copy window clipped properly: torchvision itself
    raises (negative slice ends) for boxes entirely left of / above the image, where the right
    answer is an empty mask. Identical to torchvision wherever torchvision succeeds."""
    m = masks.shape[-1]
    padded = F.pad(masks.float(), (1, 1, 1, 1))
    ib = expand_boxes(boxes.float(), float(m + 2) / m).to(torch.int64)
    out = torch.zeros((len(masks), height, width))
    for i, (x1, y1, x2, y2) in enumerate(ib.tolist()):
        x0c, y0c, x1c, y1c = max(x1, 0), max(y1, 0), min(x2 + 1, width), min(y2 + 1, height)
        if x1c <= x0c or y1c <= y0c:
            continue
        h, w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        res = F.interpolate(padded[i][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        out[i, y0c:y1c, x0c:x1c] = res[y0c - y1 : y1c - y1, x0c - x1 : x1c - x1]
    return out > threshold


def assert_pasted_equal(impl, out, ref, masks, boxes):
    """cpu: bit-identical. triton: identical for boxes whose resized mask has h + w > 128; smaller
    ones may flip a pixel whose probability is within one float32 ulp of the threshold."""
    assert out.shape == ref.shape and out.dtype == torch.bool
    if impl == "cpu":
        assert torch.equal(out, ref)
        return
    m = masks.shape[-1]
    ib = expand_boxes(boxes.float(), float(m + 2) / m).to(torch.int64)
    large = ((ib[:, 3] - ib[:, 1] + 1).clamp(min=1) + (ib[:, 2] - ib[:, 0] + 1).clamp(min=1)) > 128
    assert torch.equal(out[large], ref[large])
    assert (out != ref).float().mean() <= 1e-4


# Triton at threshold 0.2 (4 s on the interpreter) runs in make test-slow; make test keeps it at 0.5.
@pytest.mark.parametrize("threshold,impl", [
    pytest.param(threshold, impl, marks=pytest.mark.slow if (threshold, impl) == (0.2, "triton") else ())
    for impl in IMPLS for threshold in [0.5, 0.2]])
def test_random_instances_match_reference(impl, threshold):
    masks, boxes, _ = random_instances(12 if impl == "triton" else 60, 120, 160, seed=1)
    out = K.paste(masks, boxes, 120, 160, threshold, impl=impl)
    assert_pasted_equal(impl, out, safe_oracle(masks, boxes, 120, 160, threshold), masks, boxes)
    # torchvision itself raises on some boxes lying entirely outside: compare on the others
    inside = (boxes[:, 0] < 150) & (boxes[:, 1] < 110) & (boxes[:, 2] > 10) & (boxes[:, 3] > 10)
    ref = reference(masks[inside], boxes[inside], 120, 160, threshold)
    assert_pasted_equal(impl, out[inside], ref, masks[inside], boxes[inside])


@pytest.mark.parametrize("impl", IMPLS)
def test_large_boxes_bit_identical(impl):
    masks, boxes, _ = random_instances(6, 200, 240, seed=2, min_size=90, max_size=260, margin=0)
    out = K.paste(masks, boxes, 200, 240, 0.5, impl=impl)
    assert torch.equal(out, reference(masks, boxes, 200, 240, 0.5))


def test_large_boxes_go_through_the_compiled_rows_and_small_ones_through_interpolate(monkeypatch):
    """cpu: a large box (h + w > 128), wholly visible or mostly outside the image, is resized by
    resize_rows (its visible rows and columns only, thresholded inside); a small one (torch's other
    interpolation path) by F.interpolate itself. All bit-identical to the reference."""
    from maskrt.kernels.paste import cpu

    inside = torch.tensor([[20.0, 30.0, 180.0, 150.0]])  # h + w > 128, wholly visible
    mostly_out = torch.tensor([[-150.0, -100.0, 40.0, 60.0]])  # visible share ~0.06
    small = torch.tensor([[100.0, 100.0, 140.0, 130.0]])  # h + w <= 128
    masks = torch.sigmoid(torch.randn(3, 28, 28, generator=torch.Generator().manual_seed(3)) * 3)
    assert cpu.emulation_matches_torch()  # its one-time probe calls resize_rows: before the spy
    calls = []
    real = cpu.resize_rows
    monkeypatch.setattr(cpu, "resize_rows", lambda *args: calls.append(args[1:3]) or real(*args))
    boxes = torch.cat([inside, mostly_out, small])
    for paste in (lambda: K.paste(masks, boxes, 200, 240, 0.5, impl="cpu"),
                  lambda: K.paste_id_map(masks, boxes, 200, 240, 0.5, impl="cpu").full_masks()):
        calls.clear()
        assert torch.equal(paste(), safe_oracle(masks, boxes, 200, 240))
        assert sorted(calls) == sorted([(h, w) for h, w in cpu.geometry(masks, boxes, 200, 240).out_hw.tolist()
                                        if h + w > cpu.SMALL_PATH_LIMIT]) and len(calls) == 2


@pytest.mark.parametrize("size", [(200, 173), (64, 70), (1, 300), (300, 2), (257, 511)])
def test_compiled_rows_are_interpolate_s_values_bit_for_bit(size):
    """resize_rows (float32 values, and thresholded) against F.interpolate itself on whole outputs and
    on crops of them (the visible part of a box), for h + w > 128."""
    from maskrt.kernels.paste import cpu

    h, w = size
    mask = torch.rand(30, 30, generator=torch.Generator().manual_seed(h * w))
    full = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    for rows, cols in (((0, h), (0, w)), ((h // 3, h), (w // 4, w // 2 + 1))):
        want = full[rows[0]:rows[1], cols[0]:cols[1]]
        assert np.array_equal(cpu.resize_rows(mask.numpy(), h, w, rows, cols), want)
        for threshold in (0.5, 0.25):
            got = cpu.resize_rows(mask.numpy(), h, w, rows, cols, np.float32(threshold))
            assert got.dtype == np.bool_ and np.array_equal(got, want > np.float32(threshold))
    assert cpu.resize_rows(mask.numpy(), h, w, (5, 5), (0, w)).shape == (0, w)
    assert cpu.resize_rows(mask.numpy(), h, w, (0, h), (3, 3), np.float32(0.5)).shape == (h, 0)


def test_crops_on_the_glue_threads_are_the_oracles(monkeypatch):
    """cpu: with the crops dealt to the glue's two threads (no size floor), paste is still
    bit-identical to the oracle and its crops did run on those threads; the fused id map keeps
    its crops on the calling thread (no gain from two) and is bit-identical too."""
    import threading

    from maskrt.kernels import glue_threads
    from maskrt.kernels.paste import cpu

    monkeypatch.setattr(glue_threads, "WORKERS", 2)
    monkeypatch.setattr(cpu, "THREADED_PIXELS", 0)
    monkeypatch.setattr(cpu, "THREADED_CROP_PIXELS", 0)
    assert cpu.emulation_matches_torch()  # its one-time probe runs resize_rows on this thread: before the spy
    names = set()
    real = cpu.resize_rows
    monkeypatch.setattr(cpu, "resize_rows", lambda *a: names.add(threading.current_thread().name) or real(*a))
    masks, boxes, scores = random_instances(40, 150, 200, seed=4, min_size=20, max_size=260)
    want = safe_oracle(masks, boxes, 150, 200)
    assert torch.equal(K.paste(masks, boxes, 150, 200, 0.5, impl="cpu"), want)
    assert names and all(name.startswith("maskrt.glue") for name in names)
    names.clear()
    assert torch.equal(K.paste_id_map(masks, boxes, 150, 200, 0.5, scores=scores, impl="cpu").full_masks(), want)
    assert names == {threading.current_thread().name}


def test_full_masks_placed_on_the_glue_threads_are_the_oracles(monkeypatch):
    """PastedInstances.full_masks places large crops on the glue's threads: the same stack as the
    oracle's paste, every instance's crop in its own plane, zeros elsewhere."""
    from maskrt.kernels import glue_threads
    from maskrt.kernels.paste import common

    monkeypatch.setattr(glue_threads, "WORKERS", 2)
    monkeypatch.setattr(common, "THREADED_PLACE_PIXELS", 0)
    used = []
    real = glue_threads._executor
    monkeypatch.setattr(glue_threads, "_executor", lambda workers: used.append(workers) or real(workers))
    masks, boxes, scores = random_instances(40, 150, 200, seed=5, min_size=20, max_size=260)
    instances = K.paste_id_map(masks, boxes, 150, 200, 0.5, scores=scores, impl="cpu")
    assert torch.equal(instances.full_masks(), safe_oracle(masks, boxes, 150, 200))
    assert used == [2]


@pytest.mark.parametrize("crop_floor, threaded", [(10**9, False), (0, True)])
def test_small_crops_stay_on_the_calling_thread(monkeypatch, crop_floor, threaded):
    """Crops whose mean visible area is below THREADED_CROP_PIXELS are made on the calling thread
    even when their total is above THREADED_PIXELS (small crops only take turns on the GIL); above
    it they go to the glue's threads. Bit-identical to the oracle either way."""
    import threading

    from maskrt.kernels import glue_threads
    from maskrt.kernels.paste import cpu

    monkeypatch.setattr(glue_threads, "WORKERS", 2)
    monkeypatch.setattr(cpu, "THREADED_PIXELS", 0)
    monkeypatch.setattr(cpu, "THREADED_CROP_PIXELS", crop_floor)
    assert cpu.emulation_matches_torch()
    names = set()
    real = cpu.resize_rows
    monkeypatch.setattr(cpu, "resize_rows", lambda *a: names.add(threading.current_thread().name) or real(*a))
    masks, boxes, _ = random_instances(40, 150, 200, seed=4, min_size=20, max_size=260)
    assert torch.equal(K.paste(masks, boxes, 150, 200, 0.5, impl="cpu"), safe_oracle(masks, boxes, 150, 200))
    assert names
    assert all(name.startswith("maskrt.glue") for name in names) if threaded else \
        names == {threading.current_thread().name}


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_instances(impl):
    out = K.paste(torch.zeros(0, 28, 28), torch.zeros(0, 4), 50, 60, 0.5, impl=impl)
    assert out.shape == (0, 50, 60) and out.dtype == torch.bool


@pytest.mark.parametrize("impl", IMPLS)
def test_degenerate_boxes(impl):
    boxes = torch.tensor([
        [10.0, 10.0, 10.0, 40.0],  # zero width
        [10.0, 10.0, 40.0, 10.0],  # zero height
        [30.0, 30.0, 30.0, 30.0],  # a point
        [50.0, 40.0, 20.0, 10.0],  # inverted
        [-80.0, -60.0, -10.0, -5.0],  # entirely above-left (torchvision raises here)
        [-80.0, 10.0, -30.0, 50.0],  # entirely left
        [200.0, 150.0, 400.0, 300.0],  # entirely past the bottom-right border
        [-30.0, -20.0, 50.0, 70.0],  # negative start
        [100.0, 70.0, 190.0, 130.0],  # past the border
        [-0.4, -0.6, 159.6, 119.4],  # fractional, truncation toward zero matters
        [-2000.0, -1500.0, 2500.0, 2000.0],  # much larger than the image
    ])
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(len(boxes), 28, 28, generator=g)
    out = K.paste(masks, boxes, 120, 160, 0.5, impl=impl)
    assert_pasted_equal(impl, out, safe_oracle(masks, boxes, 120, 160), masks, boxes)
    assert not out[4:7].any()


@pytest.mark.parametrize("impl", IMPLS)
def test_non_finite_boxes_give_empty_masks(impl):
    masks, boxes, _ = random_instances(5, 60, 80, seed=4, margin=0)
    boxes[1, 0] = float("nan")
    boxes[2, 3] = float("inf")
    boxes[3, 1] = -float("inf")
    out = K.paste(masks, boxes, 60, 80, 0.5, impl=impl)
    assert not out[1:4].any()
    ok = [0, 4]
    assert_pasted_equal(impl, out[ok], reference(masks[ok], boxes[ok], 60, 80), masks[ok], boxes[ok])


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_probabilities_are_background(impl):
    masks, boxes, _ = random_instances(4, 60, 80, seed=5, margin=0)
    masks[0, 10:14, 10:14] = float("nan")
    masks[1] = float("nan")
    out = K.paste(masks, boxes, 60, 80, 0.5, impl=impl)
    assert not out[1].any()
    assert_pasted_equal(impl, out, reference(masks, boxes, 60, 80), masks, boxes)


@pytest.mark.parametrize("impl", IMPLS)
def test_negative_threshold_fills_background_like_reference(impl):
    masks, boxes, _ = random_instances(3, 40, 50, seed=6, margin=0)
    out = K.paste(masks, boxes, 40, 50, -0.1, impl=impl)
    assert out.all()
    assert torch.equal(out, reference(masks, boxes, 40, 50, -0.1))


@pytest.mark.parametrize("impl", IMPLS)
def test_many_small_instances(impl):
    n = 60 if impl == "triton" else 1000
    masks, boxes, _ = random_instances(n, 64, 64, seed=7, min_size=1, max_size=20, margin=0, m=14)
    out = K.paste(masks, boxes, 64, 64, 0.5, impl=impl)
    assert_pasted_equal(impl, out, reference(masks, boxes, 64, 64), masks, boxes)


@pytest.mark.parametrize("impl", IMPLS)
def test_fp16_and_non_contiguous(impl):
    masks, boxes, _ = random_instances(6, 80, 100, seed=8, margin=0)
    stacked = torch.stack([masks, 1 - masks], 1)[:, 0]  # a strided view
    cols = torch.cat([boxes, boxes], 1)[:, :4]
    assert not stacked.is_contiguous() and not cols.is_contiguous()
    assert_pasted_equal(impl, K.paste(stacked, cols, 80, 100, 0.5, impl=impl), reference(masks, boxes, 80, 100),
                        masks, boxes)
    half = masks.half()
    assert_pasted_equal(impl, K.paste(half, boxes, 80, 100, 0.5, impl=impl), reference(half, boxes, 80, 100),
                        masks, boxes)


@pytest.mark.parametrize("impl", IMPLS)
def test_id_map_and_crops(impl):
    masks, boxes, scores = random_instances(10, 90, 120, seed=9, min_size=20, max_size=90, margin=10)
    scores[3] = scores[4]  # a tie: the lower index wins
    full = safe_oracle(masks, boxes, 90, 120)
    res = K.paste_id_map(masks, boxes, 90, 120, 0.5, scores=scores, impl=impl)
    assert res.id_map.shape == (90, 120) and res.id_map.dtype == torch.int32
    assert_pasted_equal(impl, res.full_masks(), full, masks, boxes)
    for i, crop in enumerate(res.crops):
        x0, y0, x1, y1 = res.regions[i].tolist()
        assert crop.shape == (max(y1 - y0, 0), max(x1 - x0, 0))
    # Owner of each pixel: the covering instance with the highest score, ties to the lower index.
    priority = scores[:, None, None].expand_as(full).clone()
    priority[~res.full_masks()] = -1
    best = torch.argmax(priority - 1e-6 * torch.arange(10)[:, None, None], 0)
    want = torch.where(res.full_masks().any(0), best, -1)
    assert torch.equal(res.id_map, want.to(torch.int32))


def test_id_map_cpu_and_triton_agree():
    masks, boxes, scores = random_instances(8, 70, 90, seed=10, min_size=20, max_size=80, margin=10)
    a = K.paste_id_map(masks, boxes, 70, 90, 0.5, scores=scores, impl="cpu")
    b = K.paste_id_map(masks, boxes, 70, 90, 0.5, scores=scores, impl="triton")
    assert torch.equal(a.regions, b.regions) and torch.equal(a.offsets, b.offsets)
    assert (a.id_map != b.id_map).float().mean() <= 1e-4 and (a.packed != b.packed).float().mean() <= 1e-4


def test_id_map_rejects_negative_threshold():
    masks, boxes, _ = random_instances(2, 20, 20, seed=11)
    with pytest.raises(ValueError, match="threshold"):
        K.paste_id_map(masks, boxes, 20, 20, -0.5)


def test_custom_op_opcheck():
    masks, boxes, scores = random_instances(3, 30, 40, seed=12, margin=0)
    torch.library.opcheck(torch.ops.maskrt.paste.default, (masks, boxes, 30, 40, 0.5))
    torch.library.opcheck(torch.ops.maskrt.paste_id_map.default, (masks, boxes, 30, 40, 0.5, scores))
    assert torch.equal(torch.ops.maskrt.paste(masks, boxes, 30, 40, 0.5), reference(masks, boxes, 30, 40))


@pytest.mark.parametrize("impl", IMPLS)
def test_other_dtypes_are_rounded_to_float32(impl):
    """float64 / bfloat16 masks and float64 boxes: rounded to float32 first, as the reference does (README)."""
    masks, boxes, _ = random_instances(5, 60, 80, seed=13, margin=0)
    want = reference(masks, boxes, 60, 80)
    assert_pasted_equal(impl, K.paste(masks.double(), boxes.double(), 60, 80, 0.5, impl=impl), want, masks, boxes)
    bf16 = masks.bfloat16()
    assert_pasted_equal(impl, K.paste(bf16, boxes, 60, 80, 0.5, impl=impl), reference(bf16.float(), boxes, 60, 80),
                        masks, boxes)


@pytest.mark.parametrize("impl", IMPLS)
def test_autocast_changes_nothing(impl):
    masks, boxes, _ = random_instances(5, 60, 80, seed=14, margin=0)
    with torch.autocast("cpu"):
        out = K.paste(masks, boxes, 60, 80, 0.5, impl=impl)
    assert torch.equal(out, K.paste(masks, boxes, 60, 80, 0.5, impl=impl))


def _mapping_flags(address: int) -> set[str]:
    """The VmFlags of the memory mapping of this process that holds `address` (Linux smaps)."""
    current = None
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(v, 16) for v in head.split("-"))
            current = start <= address < end
        elif head == "VmFlags:" and current:
            return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/smaps"), reason="Linux smaps only")
def test_full_size_masks_are_never_advised_as_huge_pages():
    """A full-size mask stack (here 100 x 1080 x 1920, 207 MB) is written only inside the boxes.
    numpy advises arrays of 4 MiB or more as huge pages (VmFlags 'hg'), and a huge-page fault may
    compact memory synchronously: rounds of 440-480 ms against a 40 ms median. Both full-size
    paths (cpu.paste and PastedInstances.full_masks) must allocate without that advice, zeros."""
    from maskrt.kernels.paste import cpu

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(100, 2, generator=g) * torch.tensor([1900.0, 1060.0])
    boxes = torch.cat([xy, xy + 20 + torch.rand(100, 2, generator=g) * 380], 1)
    masks = torch.rand(100, 28, 28, generator=g)
    for out in (cpu.paste(masks, boxes, 1080, 1920), cpu.paste_id_map(masks, boxes, 1080, 1920).full_masks()):
        assert "hg" not in _mapping_flags(out.data_ptr())
        assert "hg" not in _mapping_flags(out.data_ptr() + out.numel() - 1)
        assert torch.equal(out, reference(masks, boxes, 1080, 1920, 0.5))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork only")
def test_a_forked_child_does_not_write_into_its_parent_s_masks():
    """The full-size stacks' mapping is private: a child forked while masks exist (a worker pool,
    a subprocess) gets its own copy of the pages it writes, as with any numpy array."""
    import os

    from maskrt.kernels.paste.common import lazy_zeros

    masks = lazy_zeros((8, 1080, 1920))
    pid = os.fork()
    if pid == 0:  # the child: write everywhere, leave at once
        masks[:] = True
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not masks.any()
