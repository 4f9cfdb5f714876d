"""roi_align: cpu and triton (interpreter) against the reference (torchvision's roi_align per level)."""

from __future__ import annotations

import pytest
import torch

import maskrt.kernels as K
from maskrt.kernels.roi_align.reference import roi_align as reference
from tests.kernels.conftest import IMPLS

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def pyramid(batch=2, channels=8, height=64, width=80, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, height // 2**i, width // 2**i, generator=g).to(dtype) for i in range(4)]


def random_rois(n, batch=2, height=256, width=320, seed=1, max_size=400.0):
    """RoIs over every FPN level: sizes log-uniform in [2, max_size], some crossing the border."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([width + 40.0, height + 40.0]) - 20
    wh = torch.exp(torch.rand(n, 2, generator=g) * (torch.log(torch.tensor(max_size)) - 0.7) + 0.7)
    b = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([b, xy, xy + wh], 1)


def check(impl, feats, rois, size=7, sampling_ratio=2, aligned=False, atol=1e-5, rtol=1e-5):
    ref = reference(feats, rois, SCALES, size, sampling_ratio, aligned)
    out = K.roi_align(feats, rois, SCALES, size, sampling_ratio, aligned, impl=impl)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, atol=atol, rtol=rtol, equal_nan=True)
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("size", [7, 14])
def test_random_rois_match_reference(impl, aligned, sampling_ratio, size):
    n = 24 if impl == "triton" else 200
    check(impl, pyramid(), random_rois(n), size, sampling_ratio, aligned)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_rois(impl):
    out = K.roi_align(pyramid(), torch.zeros(0, 5), SCALES, 7, 2, False, impl=impl)
    assert out.shape == (0, 8, 7, 7)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_degenerate_rois(impl, aligned, sampling_ratio):
    rois = torch.tensor([
        [0, 10.0, 10.0, 10.0, 40.0],  # zero width
        [1, 10.0, 10.0, 40.0, 10.0],  # zero height
        [0, 20.0, 20.0, 20.0, 20.0],  # a point
        [0, 50.0, 60.0, 30.0, 40.0],  # inverted
        [0, -80.0, -60.0, -10.0, -5.0],  # entirely above-left of the image
        [1, 400.0, 300.0, 700.0, 500.0],  # entirely past the bottom-right border
        [0, -30.0, -20.0, 50.0, 70.0],  # negative start
        [1, 280.0, 200.0, 360.0, 290.0],  # past the border
        [0, 0.0, 0.0, 320.0, 256.0],  # the whole image
        [1, -500.0, -500.0, 1500.0, 1200.0],  # much larger than the image (top level, large grid)
    ])
    check(impl, pyramid(), rois, 7, sampling_ratio, aligned)


@pytest.mark.parametrize("impl", [pytest.param(i, marks=pytest.mark.slow) if i == "triton" else i for i in IMPLS])
def test_huge_adaptive_grid_is_exact(impl):
    """A RoI far larger than the image: the cpu path switches to the separable computation."""
    rois = torch.tensor([[0, -3000.0, -2000.0, 3300.0, 2500.0], [1, 5.0, 5.0, 9000.0, 40.0]])
    check(impl, pyramid(channels=4), rois, 7, -1, False, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("column", [3, 0])
def test_non_finite_rois(impl, bad, column):
    """cpu raises; triton (no host check: it would be a sync per call) pools such a RoI to zero and
    the others as the reference."""
    feats, rois = pyramid(), random_rois(3)
    rois[1, column] = bad
    if impl == "cpu":
        with pytest.raises(ValueError, match="NaN or inf"):
            K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl)
        return
    out = K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl)
    assert not out[1].any()
    assert torch.equal(out[[0, 2]], reference(feats, rois[[0, 2]], SCALES, 7, 2, False))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("index", [2.0, 7.0, -1.0, -0.5])
def test_batch_index_out_of_range(impl, index):
    feats, rois = pyramid(), random_rois(3)
    rois[0, 0] = index
    if impl == "cpu":
        with pytest.raises(ValueError, match="batch index"):
            K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl)
        return
    out = K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl)
    assert not out[0].any()
    assert torch.equal(out[1:], reference(feats, rois[1:], SCALES, 7, 2, False))


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_features_propagate_like_reference(impl):
    feats = pyramid()
    for f in feats:
        f[0, :, f.shape[2] // 2, f.shape[3] // 2] = float("nan")
    rois = random_rois(16 if impl == "triton" else 100, seed=3)
    rois[:, 1:] = rois[:, 1:].clamp(0, 250)  # keep the samples inside: no zero-weight reads at the border
    around_centre = torch.tensor([[0, 160 - s, 128 - s, 160 + s, 128 + s] for s in (10.0, 40.0, 90.0, 127.0)])
    rois = torch.cat([rois, around_centre])  # one RoI per level over the NaN pixel
    out = check(impl, feats, rois)
    assert torch.isnan(out).any() and not torch.isnan(out).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_many_rois(impl):
    n = 300 if impl == "triton" else 5000
    check(impl, pyramid(channels=4), random_rois(n, seed=7))


@pytest.mark.parametrize("impl", IMPLS)
def test_non_contiguous_inputs(impl):
    feats = [f[:, ::2] for f in pyramid(channels=16)]  # every other channel: strided views
    rois = random_rois(20).t().contiguous().t()  # column-major rows
    assert not feats[0].is_contiguous() and not rois.is_contiguous()
    check(impl, feats, rois)
    cl = [f.contiguous(memory_format=torch.channels_last) for f in pyramid()]
    check(impl, cl, random_rois(20))


@pytest.mark.parametrize("impl", IMPLS)
def test_fp16(impl):
    """fp16 features: sampled and accumulated in fp32, rounded once. torchvision's own fp16 kernel
    also computes the sample coordinates in fp16 (errors up to ~0.1 here), so the oracle is the
    fp32 reference on the same fp16 values, to fp16 output precision."""
    feats = pyramid(dtype=torch.float16)
    rois = random_rois(20).half().float()  # exactly representable
    out = K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl)
    assert out.dtype == torch.float16
    ref = reference([f.float() for f in feats], rois, SCALES, 7, 2, False)
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(out, reference(feats, rois, SCALES, 7, 2, False), atol=0.15, rtol=0)


def test_output_is_channels_last_view_with_same_values():
    out = K.roi_align(pyramid(), random_rois(5), SCALES, 7, 2, False, impl="cpu")
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("sampling_ratio", [2, 0])  # fixed grids; adaptive grids, some huge (separable path)
def test_cpu_writes_a_channels_last_out_in_place(sampling_ratio):
    feats, rois = pyramid(), random_rois(40, max_size=2000.0)
    want = reference(feats, rois, SCALES, 7, sampling_ratio, False)
    buffer = torch.full((40, 7, 7, 8), float("nan"))
    out = buffer.permute(0, 3, 1, 2)  # Tensor[R, C, S, S], channels_last: a stage's NHWC input
    got = K.roi_align(feats, rois, SCALES, 7, sampling_ratio, False, impl="cpu", out=out)
    assert got is out and got.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(buffer.permute(0, 3, 1, 2), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["cpu", "reference", "auto"])
def test_any_out_receives_the_result(impl):
    feats, rois = pyramid(), random_rois(12)
    want = reference(feats, rois, SCALES, 7, 2, False)
    out = torch.full((12, 8, 7, 7), float("nan"))  # NCHW: not written in place, copied into
    assert K.roi_align(feats, rois, SCALES, 7, 2, False, impl=impl, out=out) is out
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_a_feature_pyramid_builds_the_cpu_tables_once(monkeypatch):
    """Two RoIAligns over one FeaturePyramid (the box head's, then the mask head's) transpose the
    levels into the kernel's tables once, with the same results as over a plain list."""
    from maskrt.kernels.roi_align import cpu

    feats, rois = pyramid(channels=96), random_rois(20)  # two channel blocks (64 + 32)
    built = []
    real = cpu.PyramidTable
    monkeypatch.setattr(cpu, "PyramidTable", lambda c0, c1, memory: built.append((c0, c1)) or real(c0, c1, memory))
    levels = K.FeaturePyramid(feats)
    for size in (7, 14):
        got = K.roi_align(levels, rois, SCALES, size, 2, False, impl="cpu")
        assert torch.equal(got, K.roi_align(list(feats), rois, SCALES, size, 2, False, impl="cpu"))
    assert sorted(built) == sorted([(0, 64), (64, 96)] * 3)  # 2 blocks for the pyramid, once; 2 x 2 for the lists


def nan_tables(monkeypatch):
    """Tables made of NaN where not copied: a tap reading a row that was never filled gives NaN."""
    import numpy as np

    from maskrt.kernels.roi_align import cpu

    monkeypatch.setattr(cpu, "_uninitialised", lambda shape, dtype: np.full(shape, np.nan, dtype))
    return cpu


@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("aligned", [False, True])
def test_a_table_of_the_rows_the_taps_read_gives_the_whole_tables_values(monkeypatch, sampling_ratio, aligned):
    """With few taps for the pyramid (R50's box RoIs read 20% of its rows) only the rows the taps read
    are copied: the values of the whole-table path bit for bit, and none of the uncopied (NaN) rows read."""
    cpu = nan_tables(monkeypatch)
    feats, rois = pyramid(channels=72), random_rois(40, max_size=2000.0)
    copied = []
    real = cpu.copy_table_rows
    monkeypatch.setattr(cpu, "copy_table_rows", lambda maps, c0, c1, rows, table: copied.append(
        rows.mean()) or real(maps, c0, c1, rows, table))
    monkeypatch.setattr(cpu, "SPARSE_TABLE_TAPS", 1 << 30)  # never sparse: the whole tables
    whole = K.roi_align(feats, rois, SCALES, 7, sampling_ratio, aligned, impl="cpu")
    assert not copied
    monkeypatch.setattr(cpu, "SPARSE_TABLE_TAPS", 0)  # always sparse
    got = K.roi_align(feats, rois, SCALES, 7, sampling_ratio, aligned, impl="cpu")
    assert len(copied) == 2 and all(0 < share < 0.5 for share in copied)  # two channel blocks, a part of the rows
    assert torch.equal(got, whole)
    torch.testing.assert_close(got, reference(feats, rois, SCALES, 7, sampling_ratio, aligned), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("second_whole", [False, True])
def test_a_pyramids_table_fills_the_rows_a_later_roi_align_reads(monkeypatch, second_whole):
    """The mask head's RoIs read rows the box head's did not: a FeaturePyramid's sparse table gets
    them copied on the second call (only those: no row copied twice), or all the rest when the second
    call wants the whole table; the reference's values in both calls."""
    cpu = nan_tables(monkeypatch)
    feats = pyramid(channels=64)
    left = random_rois(30, width=100)  # the left part of the image
    right = random_rois(10, seed=5, width=300) + torch.tensor([0.0, 200.0, 0.0, 200.0, 0.0])
    copies = []
    real = cpu.copy_table_rows
    monkeypatch.setattr(cpu, "copy_table_rows", lambda maps, c0, c1, rows, table: copies.append(
        rows.copy()) or real(maps, c0, c1, rows, table))
    monkeypatch.setattr(cpu, "SPARSE_TABLE_TAPS", 0)  # sparse
    levels = K.FeaturePyramid(feats)
    for rois, size in ((left, 7), (right, 14)):
        if second_whole and size == 14:
            monkeypatch.setattr(cpu, "SPARSE_TABLE_TAPS", 1 << 30)  # whole
        torch.testing.assert_close(K.roi_align(levels, rois, SCALES, size, 2, False, impl="cpu"),
                                   reference(feats, rois, SCALES, size, 2, False), atol=1e-5, rtol=1e-5)
    assert len(copies) == 2 and not (copies[0] & copies[1]).any()
    if second_whole:
        assert (copies[0] | copies[1]).all()
    else:
        assert not (copies[0] | copies[1]).all()


@pytest.mark.parametrize("rois_count", [3, 400])  # few taps: tables of the rows read; many: whole tables
def test_a_table_memory_serves_the_next_pyramids_tables(rois_count):
    """Pyramids made with one TableMemory (a detector's frames) write their tables into the same
    buffers: no new memory for a pyramid of the same or a smaller size, the earlier pyramid's values
    left in the rows a call does not read are never read (each result is the reference's)."""
    from maskrt.kernels.roi_align import cpu

    memory = cpu.TableMemory()
    rois = random_rois(rois_count, seed=4)
    pyramids = [pyramid(seed=0), pyramid(seed=5), pyramid(height=48, width=64, seed=6)]
    addresses = []
    for feats in pyramids:
        levels = K.FeaturePyramid(feats, memory)
        for size in (7, 14):  # the box head's RoIAlign, then the mask head's over the same tables
            torch.testing.assert_close(K.roi_align(levels, rois, SCALES, size, 2, False, impl="cpu"),
                                       reference(feats, rois, SCALES, size, 2, False), atol=1e-5, rtol=1e-5)
        addresses.append({key: buffer.ctypes.data for key, buffer in memory._buffers.items()})
    assert addresses[0] and addresses[0] == addresses[1] == addresses[2]


@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_cpu_channel_blocks_on_the_glue_threads_match_the_reference(monkeypatch, sampling_ratio):
    """The channel blocks dealt to the glue's two threads (no size floor) give the reference's
    values, in place in a channels_last out and in a fresh output alike."""
    import threading

    from maskrt.kernels import glue_threads
    from maskrt.kernels.roi_align import cpu

    monkeypatch.setattr(glue_threads, "WORKERS", 2)
    monkeypatch.setattr(cpu, "THREADED_WORK", 0)
    names = set()
    for name in ("copy_pyramid_table", "copy_table_rows"):  # whole tables or the rows read: on the glue threads
        real = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, real=real: names.add(threading.current_thread().name) or real(*a))
    feats, rois = pyramid(channels=200), random_rois(30, max_size=2000.0)  # blocks of 64, 64, 64, 8 channels
    want = reference(feats, rois, SCALES, 7, sampling_ratio, False)
    torch.testing.assert_close(K.roi_align(feats, rois, SCALES, 7, sampling_ratio, False, impl="cpu"), want,
                               atol=1e-5, rtol=1e-5)
    out = torch.full((30, 7, 7, 200), float("nan")).permute(0, 3, 1, 2)
    K.roi_align(K.FeaturePyramid(feats), rois, SCALES, 7, sampling_ratio, False, impl="cpu", out=out)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    assert names and all(name.startswith("maskrt.glue") for name in names)


@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("channels", [64, 24])
def test_one_channel_block_is_gathered_in_roi_ranges_on_the_glue_threads(monkeypatch, sampling_ratio, channels):
    """Fewer channel blocks than threads (the bundled model's 64 channels): the table is made once and
    the bins are gathered in two ranges, one per glue thread, into the right rows of a channels_last
    out (NaN-filled: every element written) and of a fresh output alike; the reference's values."""
    import threading

    from maskrt.kernels import glue_threads
    from maskrt.kernels.roi_align import cpu

    monkeypatch.setattr(glue_threads, "WORKERS", 2)
    monkeypatch.setattr(cpu, "THREADED_WORK", 0)
    calls = []
    real = cpu._gather_sum
    monkeypatch.setattr(cpu, "_gather_sum", lambda table, pos, offsets, weight, dst: calls.append(
        (threading.current_thread().name, dst.shape[0])) or real(table, pos, offsets, weight, dst))
    feats, rois = pyramid(channels=channels), random_rois(31, max_size=2000.0)  # with separable RoIs at -1
    want = reference(feats, rois, SCALES, 7, sampling_ratio, False)
    torch.testing.assert_close(K.roi_align(feats, rois, SCALES, 7, sampling_ratio, False, impl="cpu"), want,
                               atol=1e-5, rtol=1e-5)
    out = torch.full((31, 7, 7, channels), float("nan")).permute(0, 3, 1, 2)
    K.roi_align(K.FeaturePyramid(feats), rois, SCALES, 7, sampling_ratio, False, impl="cpu", out=out)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    assert len(calls) == 4 and sum(bins for _, bins in calls) == 2 * 31 * 49
    assert all(name.startswith("maskrt.glue") for name, _ in calls)


def test_out_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="out must be Tensor"):
        K.roi_align(pyramid(), random_rois(3), SCALES, 7, 2, False, impl="cpu", out=torch.zeros(4, 8, 7, 7))


def test_levels_follow_fpn_equation():
    """A 224 px box goes to level 4 (scale 1/16), a 112 px box to level 3; clamped at both ends."""
    from maskrt.kernels.roi_align.common import assign_levels

    rois = torch.tensor([[0, 0, 0, 224.0, 224], [0, 0, 0, 112, 112], [0, 0, 0, 1, 1], [0, 0, 0, 5000, 5000]])
    assert assign_levels(rois, SCALES, 224, 4).tolist() == [2, 1, 0, 3]


def test_custom_op_opcheck():
    feats = pyramid(batch=1, channels=2, height=16, width=16)
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0], [0, 3.0, 3.0, 60.0, 50.0]])
    torch.library.opcheck(torch.ops.maskrt.roi_align.default, (feats, rois, SCALES, 3, 2, False, 224, 4))
    torch.testing.assert_close(torch.ops.maskrt.roi_align(feats, rois, SCALES, 3, 2, False, 224, 4),
                               reference(feats, rois, SCALES, 3, 2, False))


def test_levels_of_inverted_rois():
    """x2 < x1 or y2 < y1 (one of the two): negative area, NaN in FPN eq. 1 -> no level (-1) over
    several levels, as torchvision's LevelMapper (its NaN cast matches no level); level 0 with one."""
    from maskrt.kernels.roi_align.common import assign_levels

    rois = torch.tensor([[0, 50, 0, 10, 224.0], [0, 0, 50, 224, 10], [0, 50, 50, 10, 10], [0, 0, 0, 224, 224]])
    assert assign_levels(rois, SCALES, 224, 4).tolist() == [-1, -1, 0, 2]
    assert assign_levels(rois, SCALES[:1], 224, 4).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("impl", IMPLS)
def test_unsupported_feature_dtype_raises(impl):
    feats = [f.to(torch.int32) for f in pyramid()]
    with pytest.raises(ValueError, match="float32, float16, bfloat16 or float64"):
        K.roi_align(feats, random_rois(3), SCALES, 7, 2, False, impl=impl)


@pytest.mark.parametrize("size,sampling_ratio,aligned", [(7, 2, False), (14, 2, False), (7, -1, True)])
def test_triton_is_bit_identical_to_reference_in_float32(size, sampling_ratio, aligned):
    """The kernel does torchvision's CPU operations in its order with IEEE divisions and no FMA:
    under the interpreter (numpy: IEEE, no contraction) every float32 bin is identical."""
    feats, rois = pyramid(), random_rois(20, seed=size)
    out = K.roi_align(feats, rois, SCALES, size, sampling_ratio, aligned, impl="triton")
    assert torch.equal(out, reference(feats, rois, SCALES, size, sampling_ratio, aligned))


def level_boundary_rois():
    """Square RoIs 3e-7 (relative) below 112, 224 and 448 px, and an ordinary 55 x 85 one. At 224 *
    2 ** k the level changes; torchvision's LevelMapper adds 1e-6 after the log and lifts the three
    squares a level, detectron2's formula (1e-8 inside the log, lost in float32 next to 1) does not."""
    rows = [[0, 10.0, 12.0, 10.0 + s, 12.0 + s] for s in (224 * 2.0**k * (1 - 3e-7) for k in (-1, 0, 1))]
    return torch.tensor(rows + [[1, 5.0, 5.0, 60.0, 90.0]])


def test_detectron2_level_mapper():
    """Levels from detectron2's formula floor(4 + log2(sqrt(area) / 224 + 1e-8)), evaluated in float64
    here (the RoIs sit ~4e-7 below a boundary: float32 rounding cannot move them across)."""
    import math

    from maskrt.kernels.roi_align.common import assign_levels

    rois = level_boundary_rois()
    w, h = (rois[:, 3] - rois[:, 1]).double(), (rois[:, 4] - rois[:, 2]).double()
    want = [min(max(math.floor(4 + math.log2(math.sqrt(a) / 224 + 1e-8)), 2), 5) - 2 for a in (w * h).tolist()]
    assert want == [0, 1, 2, 0]
    assert assign_levels(rois, SCALES, 224, 4, "detectron2").tolist() == want
    assert assign_levels(rois, SCALES, 224, 4).tolist() == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="level mapper"):
        assign_levels(rois, SCALES, 224, 4, "detectron")


@pytest.mark.parametrize("impl", ["reference", *IMPLS])
def test_detectron2_level_mapper_pools_from_its_level(impl):
    """Each RoI pooled (aligned, adaptive: ROIAlignV2) from the level detectron2 assigns, by
    torchvision's roi_align on that level alone; not what the torchvision mapper pools."""
    from torchvision.ops import roi_align as tv_roi_align

    feats, rois = pyramid(height=128, width=160), level_boundary_rois()
    out = K.roi_align(feats, rois, SCALES, 7, 0, True, level_mapper="detectron2", impl=impl)
    for i, level in enumerate([0, 1, 2, 0]):
        want = tv_roi_align(feats[level], rois[i:i + 1], 7, SCALES[level], 0, True)
        torch.testing.assert_close(out[i:i + 1], want, atol=1e-5, rtol=1e-5)
    tv = K.roi_align(feats, rois, SCALES, 7, 0, True, impl=impl)
    assert not torch.allclose(out[:3], tv[:3]) and torch.equal(out[3], tv[3])


def test_custom_op_takes_the_level_mapper():
    feats, rois = pyramid(batch=2, channels=2, height=64, width=64), level_boundary_rois()
    args = (feats, rois, SCALES, 3, 0, True, 224, 4, "detectron2")
    torch.library.opcheck(torch.ops.maskrt.roi_align.default, args)
    torch.testing.assert_close(torch.ops.maskrt.roi_align(*args),
                               reference(feats, rois, SCALES, 3, 0, True, level_mapper="detectron2"))


def _axis_taps_outer(geo, size, gh, gw):
    """The taps as torch composes them from `axis_taps` (the per-axis arithmetic the separable path
    uses too): rows = base + y * width, weights (wy * valid_y / count) * (wx * valid_x), broadcast."""
    from maskrt.kernels.roi_align.cpu import axis_taps

    yi, yw, yv = axis_taps(geo["start_h"], geo["bin_h"], gh, size, geo["height"])
    xi, xw, xv = axis_taps(geo["start_w"], geo["bin_w"], gw, size, geo["width"])
    rows = geo["base"][:, None, None, None] + yi * geo["width"][:, None, None, None]  # [n, S, gh, 2]
    wy = yw * (yv[..., None].to(yw.dtype) / float(max(gh * gw, 1)))
    wx = xw * xv[..., None]
    n = rows.shape[0]
    pos = rows[:, :, None, :, :, None, None] + xi[:, None, :, None, None, :, :]  # [n, S, S, gh, 2, gw, 2]
    weight = wy[:, :, None, :, :, None, None] * wx[:, None, :, None, None, :, :]
    return pos.reshape(n, size, size, -1), weight.reshape(n, size, size, -1)


def _bin_pixel_weights(bins, pos, weight):
    """A coalesced sparse Tensor[bins, pixels] in float64: the summed weight of every (bin, pixel) pair."""
    return torch.sparse_coo_tensor(torch.stack([bins, pos]), weight.double(), (int(bins.max()) + 1, int(pos.max()) + 1)
                                   ).coalesce()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, 3, 0])
def test_cpu_bags_read_each_pixel_once_with_the_summed_weights_of_its_taps(dtype, aligned, sampling_ratio):
    """Every bin's bag (the numba pass) holds each pixel its bilinear taps read exactly once, with the
    sum of those taps' weights, the taps as torch composes them from `axis_taps` (the per-axis
    arithmetic the separable path uses too): the same (bin, pixel) pairs, zero-weight ones included,
    and weights within the rounding of the merge: a merged weight is a product of two sums of at
    most 2 * g non-negative terms (g <= 36 samples per axis), so it is off by at most ~(4 * g + 1)
    units in the last place. Fixed grids and adaptive ones (sampling_ratio 0: RoIs of every grid, a
    separable one with an empty bag); RoIs on every level, across the borders, degenerate ones."""
    from maskrt.kernels.roi_align import cpu

    feats = pyramid(dtype=dtype)
    edge_cases = torch.tensor([[0, 10.0, 10.0, 10.0, 40.0], [1, -30.0, -30.0, -25.0, -20.0],
                               [0, 300.0, 250.0, 330.0, 280.0], [1, -900.0, -900.0, 1100.0, 1100.0]])
    rois = torch.cat([random_rois(300, max_size=600.0), edge_cases]).to(dtype)
    size = 7
    geo = cpu._geometry(rois, feats, SCALES, size, sampling_ratio, aligned, 224, 4, "torchvision")
    pos, weight, offsets = cpu._bags(geo, size)
    assert pos.dtype == torch.int64 and weight.dtype == dtype and offsets.shape == (rois.shape[0] * size * size,)
    bag_sizes = torch.diff(offsets, append=torch.tensor([pos.shape[0]]))
    got = _bin_pixel_weights(torch.arange(offsets.shape[0]).repeat_interleave(bag_sizes), pos, weight)
    assert got.values().shape == pos.shape  # no pixel twice in a bag

    grids = torch.stack([geo["grid_h"], geo["grid_w"]], 1)
    samples = grids.prod(1)
    assert sampling_ratio > 0 or bool((samples > cpu.MAX_GATHER_SAMPLES).any())
    want_bins, want_pos, want_weight = [], [], []
    for gh, gw in torch.unique(grids, dim=0).tolist():
        if not 0 < gh * gw <= cpu.MAX_GATHER_SAMPLES:
            continue  # no samples, or the separable path's: empty bags
        sel = torch.where((grids[:, 0] == gh) & (grids[:, 1] == gw))[0]
        p, w = _axis_taps_outer({k: v[sel] for k, v in geo.items()}, size, gh, gw)
        bins = (sel[:, None] * size * size + torch.arange(size * size)[None, :])[:, :, None].expand(-1, -1, p.shape[-1])
        want_bins.append(bins.reshape(-1)), want_pos.append(p.reshape(-1)), want_weight.append(w.reshape(-1))
    want = _bin_pixel_weights(torch.cat(want_bins), torch.cat(want_pos), torch.cat(want_weight))
    assert torch.equal(got.indices(), want.indices())
    widest = int(grids[(samples > 0) & (samples <= cpu.MAX_GATHER_SAMPLES)].max())
    ulps = (4 * widest + 1) * torch.finfo(dtype).eps
    torch.testing.assert_close(got.values(), want.values(), rtol=ulps, atol=0)
    assert bool((bag_sizes[samples.repeat_interleave(size * size) > cpu.MAX_GATHER_SAMPLES] == 0).all())


def torch_geometry(rois, features, scales, size, sampling_ratio, aligned, mapper):
    """The CPU kernel's per-RoI geometry written with torch ops (its formulation before the numba
    pass): levels by common.assign_levels (reference.fpn_levels), torchvision's arithmetic in the
    compute precision on the RoI and scales rounded to the features' dtype."""
    from maskrt.kernels.roi_align.common import assign_levels
    from maskrt.kernels.roi_align.cpu import compute_dtype, level_bases

    dtype, acc = features[0].dtype, compute_dtype(features[0].dtype)
    levels = assign_levels(rois, scales, 224, 4, mapper)
    assigned = (levels >= 0) & (levels < len(features))
    levels = levels.clamp(0, len(features) - 1)
    scale = torch.tensor([float(s) for s in scales], dtype=dtype).to(acc).index_select(0, levels)
    height = torch.tensor([f.shape[2] for f in features]).index_select(0, levels)
    width = torch.tensor([f.shape[3] for f in features]).index_select(0, levels)
    r = rois.to(dtype).to(acc)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (r[:, k] * scale - offset for k in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(levels, sampling_ratio)
    else:
        grid_h = torch.ceil(roi_h / size).to(torch.int64).clamp(min=0)
        grid_w = torch.ceil(roi_w / size).to(torch.int64).clamp(min=0)
    batch = r[:, 0].to(torch.int64)
    base = torch.tensor(level_bases(features)).index_select(0, levels) + batch * height * width
    return {"level": levels, "batch": batch, "base": base, "height": height, "width": width, "start_h": y1,
            "start_w": x1, "bin_h": roi_h / size, "bin_w": roi_w / size, "grid_h": torch.where(assigned, grid_h, 0),
            "grid_w": torch.where(assigned, grid_w, 0)}


def rois_at_level_boundaries(dtype):
    """Square RoIs whose sqrt(area) / 224 sits on, or one ulp either side of, each level threshold
    (the q where FPN eq. 1 changes level), plus negative and zero areas."""
    from maskrt.kernels.roi_align.common import level_thresholds

    q_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    rows = []
    for mapper in ("torchvision", "detectron2"):
        for t in level_thresholds(q_dtype, 2, 5, 4, 3, mapper=mapper):
            q = torch.tensor(t, dtype=q_dtype)
            for side in (torch.nextafter(q, q.new_tensor(0.0)), q, torch.nextafter(q, q.new_tensor(1e9))):
                edge = float(side) * 224.0
                rows.append([1, 5.0, 7.0, 5.0 + edge, 7.0 + edge])
    rows += [[0, 30.0, 30.0, 20.0, 60.0], [1, 30.0, 30.0, 60.0, 20.0], [0, 9.0, 9.0, 9.0, 9.0]]
    return torch.tensor(rows, dtype=q_dtype)


@pytest.mark.parametrize("features_dtype,rois_dtype", [(torch.float32, torch.float32), (torch.float64, torch.float64),
                                                       (torch.float16, torch.float32), (torch.bfloat16, torch.float32)])
@pytest.mark.parametrize("aligned,sampling_ratio,mapper", [(False, 2, "torchvision"), (True, 0, "detectron2"),
                                                           (True, 2, "torchvision"), (False, 0, "detectron2")])
@pytest.mark.parametrize("levels", [4, 1])
def test_cpu_geometry_pass_is_the_torch_formulation_bit_for_bit(features_dtype, rois_dtype, aligned, sampling_ratio,
                                                                mapper, levels):
    """The numba pass that gives every RoI its level and geometry equals the same arithmetic in torch
    ops (levels by the reference's FPN eq. 1), bit for bit: random RoIs on every level and across
    the borders, RoIs one ulp either side of each level boundary, negative and zero areas."""
    from maskrt.kernels.roi_align import cpu

    feats = pyramid(dtype=features_dtype)[:levels]
    rois = torch.cat([random_rois(400, max_size=700.0).to(rois_dtype), rois_at_level_boundaries(rois_dtype)])
    got = cpu._geometry(rois, feats, SCALES[:levels], 7, sampling_ratio, aligned, 224, 4, mapper)
    want = torch_geometry(rois, feats, SCALES[:levels], 7, sampling_ratio, aligned, mapper)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key
