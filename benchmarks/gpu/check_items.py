"""The checks of benchmarks/gpu/check.py. Each takes (device, tiny) and returns its figures (a dict);
a failed claim raises AssertionError. `tiny`: sizes for CPU tensors under TRITON_INTERPRET=1.

Tolerances, argued from float rounding:
- RoIAlign fp32 vs torchvision's CUDA kernel: that kernel is compiled with FMA contraction, ours
  without; each sample's weighted sum then rounds differently by ~1 ulp of values of order 1,
  summed over <= 4 x 4 samples and divided: atol = rtol = 1e-5 (as the CPU tests' tolerance).
  Against torchvision's CPU kernel (same operations, same order, IEEE division, no FMA) fp32
  must be bit-identical. fp16 features: against the fp32 reference at the fp16 output rounding
  (half ulp of values < 4: 2e-3), as tests/kernels/test_roi_align.py.
- NMS: identical kept indices and order (same IoU operations, float32 threshold equivalent).
- paste: a pixel may flip only where the probability is within rounding of the threshold:
  at most 1e-4 of the pixels against torchvision's CUDA paste; bit-identical to the CPU paste
  for boxes whose resized mask has h + w > 128 (paste/triton.py's claim).
- the whole model: tests/model/test_parity.py's criteria for the fast kernels (box 1e-2 px,
  score 1e-4, mask probability 1e-3, masks equal where rounding cannot decide them).
- the AOT launches (maskrt.tensorrt.aot.run): the same kernels as the torch path with TensorRT's
  grids and arguments, so the same claims: RoIAlign fp32 bit-exact against torchvision's CPU
  kernel, NMS torchvision's kept set (its CUDA switch: the coordinate trick up to 100000
  coordinates; order score, then row), paste bit-identical to the plain Triton paste.
"""

from __future__ import annotations

import importlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.tools.images import bench_image

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


MODULES = (  # what the checks import, with triton's kernels: a missing one fails the first check, not the tenth
    "triton", "triton.language", "torchvision.ops", "maskrt.api", "maskrt.testing", "maskrt.kernels.registry",
    *(f"maskrt.kernels.{op}.{part}" for op in ("roi_align", "nms", "paste")
      for part in ("reference", "cpu", "triton", "_kernels")),
    "maskrt.tensorrt.aot", "tests.detections_compare",
)


def imports(dev, tiny):
    for module in MODULES:
        importlib.import_module(module)
    return {"modules": len(MODULES)}


def _op(name: str, impl: str = "triton"):
    return importlib.import_module(f"maskrt.kernels.{name}.{impl}")


def _boxes(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
    wh = 8 + torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
    return torch.cat([xy, (xy + wh).minimum(torch.tensor([w - 1.0, h - 1.0]))], 1)


def _pyramid(tiny: bool, dtype, g):
    h, w, c = (64, 96, 8) if tiny else (800, 1088, 256)
    return [torch.randn(1, c, h // s, w // s, generator=g).to(dtype) for s in (4, 8, 16, 32)], h, w


def roi_align(size: int, dtype: torch.dtype):
    def check(dev, tiny):
        g = torch.Generator().manual_seed(size)
        feats, h, w = _pyramid(tiny, dtype, g)
        n = 4 if tiny else (1000 if size == 7 else 100)
        rois = torch.cat([torch.zeros(n, 1), _boxes(n, h, w, g)], 1)
        if dtype != torch.float32:  # the kernel rounds the RoIs to the features' dtype first (as cpu does)
            rois = rois.to(dtype).float()
        ours_fn, ref_fn = _op("roi_align").roi_align, _op("roi_align", "reference").roi_align
        figures = {}
        for aligned, sampling in ((False, 2), (True, -1)):
            ours = ours_fn([f.to(dev) for f in feats], rois.to(dev), SCALES, size, sampling, aligned)
            if dtype == torch.float32:
                tv = ref_fn([f.to(dev) for f in feats], rois.to(dev), SCALES, size, sampling, aligned)
                torch.testing.assert_close(ours, tv, atol=1e-5, rtol=1e-5)
                cpu = ref_fn(feats, rois, SCALES, size, sampling, aligned)
                figures[f"max_diff_vs_tv_{'aligned' if aligned else 'plain'}"] = float((ours - tv).abs().max())
                figures[f"bit_exact_vs_tv_cpu_{'aligned' if aligned else 'plain'}"] = torch.equal(ours.cpu(), cpu)
                assert torch.equal(ours.cpu(), cpu), "fp32 RoIAlign differs from torchvision's CPU kernel"
            else:
                ref = ref_fn([f.float() for f in feats], rois, SCALES, size, sampling, aligned)
                torch.testing.assert_close(ours.float().cpu(), ref, atol=2e-3, rtol=2e-3)
                figures[f"max_diff_vs_fp32_{'aligned' if aligned else 'plain'}"] = float((ours.float().cpu() - ref)
                                                                                         .abs().max())
        return figures

    return check


def nms(per_class: bool):
    def check(dev, tiny):
        g = torch.Generator().manual_seed(3)
        n = (1200 if per_class else 300) if tiny else (30_000 if per_class else 4000)
        boxes, scores = _boxes(n, 800, 1088, g), torch.rand(n, generator=g)
        classes = torch.randint(0, 3 if tiny else 90, (n,), generator=g)  # tiny: few long class segments
        args = [t.to(dev) for t in (boxes, scores, classes)]
        ours = _op("nms").nms(*args, 0.5)
        tv = _op("nms", "reference").nms(*args, 0.5)
        assert torch.equal(ours.cpu(), tv.cpu()), "kept set or order differs from torchvision's batched_nms"
        return {"boxes": n, "kept": int(ours.numel())}

    return check


def paste(dev, tiny):
    g = torch.Generator().manual_seed(5)
    n, h, w = (6, 60, 80) if tiny else (100, 800, 1088)
    masks, boxes = torch.rand(n, 28, 28, generator=g), _boxes(n, h, w, g)
    ours = _op("paste").paste(masks.to(dev), boxes.to(dev), h, w, 0.5).cpu()
    flipped = float((ours != _op("paste", "reference").paste(masks.to(dev), boxes.to(dev), h, w, 0.5).cpu())
                    .float().mean())
    assert flipped <= 1e-4, f"{flipped:.2e} of the pixels differ from torchvision's paste on {dev.type}"
    from torchvision.models.detection.roi_heads import expand_boxes

    ib = expand_boxes(boxes, 30 / 28).to(torch.int64)
    large = ((ib[:, 3] - ib[:, 1] + 1) + (ib[:, 2] - ib[:, 0] + 1)) > 128
    cpu = _op("paste", "reference").paste(masks, boxes, h, w, 0.5)
    assert torch.equal(ours[large], cpu[large]), "large boxes differ from the CPU paste"
    fused = _op("paste").paste_id_map(masks.to(dev), boxes.to(dev), h, w, 0.5, torch.rand(n, generator=g).to(dev))
    fused = fused.cpu()
    for i, (x0, y0, x1, y1) in enumerate(fused.regions.tolist()):
        assert torch.equal(fused.crop(i), ours[i, y0:y1, x0:x1]), f"fused crop {i} differs from paste"
    return {"instances": n, "flipped_vs_tv": flipped, "large_boxes_exact": int(large.sum())}


def aot_launches(dev, tiny):
    """The plugins' AOT launches as a plan makes them, on `dev` (maskrt.tensorrt.aot.run)."""
    from maskrt.tensorrt import aot, schemas

    g = torch.Generator().manual_seed(13)
    feats, h, w = _pyramid(tiny, torch.float32, g)
    n = 6 if tiny else 1000
    rois = torch.cat([torch.randint(0, 1, (n, 1), generator=g).float(), _boxes(n, h, w, g)], 1)
    attrs = dict(spatial_scales=np.float32(SCALES), output_size=7, sampling_ratio=2, aligned=0, canonical_size=224,
                 canonical_level=4)
    [pooled] = aot.run(schemas.ROI_ALIGN, [f.to(dev) for f in feats] + [rois.to(dev)], attrs)
    assert torch.equal(pooled.cpu(), _op("roi_align", "reference").roi_align(feats, rois, SCALES, 7, 2, False)), \
        "AOT RoIAlign differs from torchvision's CPU kernel"
    nb = 300 if tiny else 4000
    boxes, scores = _boxes(nb, 800, 1088, g), torch.rand(nb, generator=g)
    classes = torch.randint(0, 5, (nb,), generator=g)
    keep, count, _ = aot.run(schemas.NMS, [t.to(dev) for t in (boxes, scores, classes)],
                             dict(iou_threshold=0.5, max_output=-1), **_interpreted_nms(dev))
    want = _op("nms", "reference").nms(boxes.to(dev), scores.to(dev), classes.to(dev), 0.5).cpu().tolist()
    assert keep.cpu().tolist() == sorted(want, key=lambda i: (-float(scores[i]), i)), "AOT NMS kept set differs"
    nm = 6 if tiny else 100
    masks, mboxes = torch.rand(nm, 28, 28, generator=g), _boxes(nm, h, w, g)
    canvas = torch.zeros(h, w, 3, dtype=torch.uint8, device=dev)
    [pasted] = aot.run(schemas.PASTE, [masks.to(dev), mboxes.to(dev), canvas], dict(threshold=0.5))
    assert torch.equal(pasted.cpu(), _op("paste").paste(masks.to(dev), mboxes.to(dev), h, w, 0.5).cpu()), \
        "AOT paste differs from the Triton paste"
    return {"rois": n, "boxes": nb, "kept": int(count), "instances": nm}


def _interpreted_nms(dev) -> dict:
    """On CPU tensors (the tiny run under the interpreter): torchvision's CPU switch (4000
    coordinates) and small sort chunks (the interpreter pays per operation); on CUDA: the plan's."""
    return {} if dev.type == "cuda" else {"TRICK_LIMIT": 4000, "CHUNK": 128}


def _checkpoint(tiny: bool, folder: Path) -> tuple[Path, torch.nn.Module]:
    from maskrt.testing import r50_torchvision_maskrcnn, small_torchvision_maskrcnn

    if tiny:
        model = small_torchvision_maskrcnn(num_classes=5, box_score_thresh=0.01, min_size=96, max_size=128)
    else:
        model = r50_torchvision_maskrcnn(seed=11, box_score_thresh=0.01, min_size=800, max_size=1333)
    path = folder / "model.pth"
    torch.save(model.state_dict(), path)
    return path, model


def _image(tiny: bool) -> np.ndarray:
    return bench_image(96, 128) if tiny else bench_image(800, 1088)


def _model_kernels(dev) -> str:
    """The Triton kernels on a GPU; on CPU tensors the fast cpu ones (the whole model through the
    Triton interpreter takes minutes; tests/kernels/test_model_triton.py covers that)."""
    return "triton" if dev.type == "cuda" else "cpu"


def model_parity(dev, tiny):
    import maskrt
    from maskrt import kernels
    from tests.detections_compare import assert_detections_agree, torchvision_expected

    with tempfile.TemporaryDirectory() as tmp:
        path, oracle = _checkpoint(tiny, Path(tmp))
        image = _image(tiny)
        expected = torchvision_expected(oracle.to(dev), image, device=dev)
        size = dict(min_size=96, max_size=128) if tiny else dict(min_size=800, max_size=1333)
        seg = maskrt.load(path, device=str(dev), backend="torch", score_threshold=0.01, **size)
        with kernels.use(_model_kernels(dev)):
            agreement = assert_detections_agree(seg(image), expected, box_atol=1e-2, score_atol=1e-4, prob_atol=1e-3)
    return {"instances": agreement.instances, "pixels_compared": agreement.compared_pixels,
            "max_prob_difference": agreement.max_prob_difference}


def _median_ms(fn, dev, rounds: int) -> float:
    for _ in range(2 if dev.type == "cuda" else 0):  # warm-up: compiles, caches, cuDNN algorithm choice
        fn()
    times = []
    for _ in range(rounds):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def kernel_timings(dev, tiny):
    g = torch.Generator().manual_seed(7)
    rounds = 1 if tiny else 20
    feats, h, w = _pyramid(tiny, torch.float32, g)
    feats = [f.to(dev) for f in feats]
    n = 12 if tiny else 1000
    rois = torch.cat([torch.zeros(n, 1), _boxes(n, h, w, g)], 1).to(dev)
    nb = 300 if tiny else 4000
    boxes, scores = _boxes(nb, 800, 1088, g).to(dev), torch.rand(nb, generator=g).to(dev)
    classes = torch.randint(0, 90, (nb,), generator=g).to(dev)
    masks, mboxes = torch.rand(6 if tiny else 100, 28, 28, generator=g).to(dev), _boxes(6 if tiny else 100, h, w, g)
    calls = {
        "roi_align 7x7": lambda impl: _op("roi_align", impl).roi_align(feats, rois, SCALES, 7, 2, False),
        "nms": lambda impl: _op("nms", impl).nms(boxes, scores, classes, 0.5),
        "paste": lambda impl: _op("paste", impl).paste(masks, mboxes.to(dev), h, w, 0.5),
    }
    figures = {}
    for name, call in calls.items():
        for impl in ("reference", "triton"):
            figures[f"{name} {impl} ms"] = _median_ms(lambda: call(impl), dev, rounds)
    return figures


def nms_timings(dev, tiny):
    """The NMS paths at the model's sizes: the RPN's (5 levels x 1000 proposals, one class, 1000 kept)
    and the box head's (1000 RoIs x 80 classes above the score threshold, 100 kept): torchvision's
    batched_nms, the torch path's two kernels (bitmask, then the greedy scan: one block, a barrier
    per box) or per-class segments, and the one-program AOT kernel of the plan."""
    from maskrt.tensorrt import aot, schemas

    g = torch.Generator().manual_seed(17)
    figures = {}
    for case, (n, n_classes, max_output) in {"rpn": (5000, 1, 1000), "box head": (20_000, 80, 100)}.items():
        n = min(n, 150) if tiny else n
        boxes, scores = _boxes(n, 800, 1088, g).to(dev), torch.rand(n, generator=g).to(dev)
        classes = torch.randint(0, n_classes, (n,), generator=g).to(dev)
        args = (boxes, scores, classes)
        figures[f"{case} n"] = n
        figures[f"{case} torchvision ms"] = _median_ms(lambda: _op("nms", "reference").nms(*args, 0.5, max_output),
                                                       dev, 1 if tiny else 10)
        figures[f"{case} triton ms"] = _median_ms(lambda: _op("nms").nms(*args, 0.5, max_output), dev,
                                                  1 if tiny else 10)
        attrs = dict(iou_threshold=0.5, max_output=max_output)
        figures[f"{case} aot one-program ms"] = _median_ms(
            lambda: aot.run(schemas.NMS, list(args), attrs, **_interpreted_nms(dev)), dev, 1 if tiny else 10)
    return figures


def backend_latency(dev, tiny):
    import maskrt
    from maskrt import kernels

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = _checkpoint(tiny, Path(tmp))
        image = _image(tiny) if tiny else bench_image(800, 1333)
        size = dict(min_size=96, max_size=128) if tiny else dict(min_size=800, max_size=1333)
        figures = {}
        for batch in ((1, 2) if tiny else (1, 8)):
            seg = maskrt.load(path, device=str(dev), backend="torch", batch_size=batch, **size)
            with kernels.use(_model_kernels(dev)):
                ms = _median_ms(lambda: seg.predict_batch([image] * batch), dev, 1 if tiny else 10)
            figures[f"batch {batch} ms"] = ms
            figures[f"batch {batch} ms/image"] = round(ms / batch, 3)
    return figures


ITEMS = [
    ("setup", "imports", imports),
    ("kernels", "roi_align S=7 fp32", roi_align(7, torch.float32)),
    ("kernels", "roi_align S=14 fp32", roi_align(14, torch.float32)),
    ("kernels", "roi_align S=7 fp16", roi_align(7, torch.float16)),
    ("kernels", "roi_align S=14 fp16", roi_align(14, torch.float16)),
    ("kernels", "nms dense", nms(per_class=False)),
    ("kernels", "nms per-class", nms(per_class=True)),
    ("kernels", "paste and fused paste", paste),
    ("tensorrt", "AOT plugin launches (RoIAlign, NMS, paste)", aot_launches),
    ("model", "R50-FPN, triton ops vs torchvision", model_parity),
    ("benchmarks", "kernels vs torchvision ops", kernel_timings),
    ("benchmarks", "NMS paths (greedy scan, one-program AOT)", nms_timings),
    ("benchmarks", "torch backend latency 800x1333", backend_latency),
]
