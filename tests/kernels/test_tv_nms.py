"""nms against torchvision's own operator tests (peer suite).

Cases adapted from torchvision's test/test_ops.py TestNMS (test_nms_ref, test_nms_input_errors,
test_nms_gpu / test_autocast, test_nms_float16, test_batched_nms_implementations); forward only
(no opcheck, quantized or MPS cases). Oracles: torchvision's `_reference_nms` (the greedy loop on
`ops.box_iou`, re-written below), `ops.nms`, `ops.boxes._batched_nms_vanilla` and
`_batched_nms_coordinate_trick`. Our nms is batched: single-class torchvision cases pass class 0.
Implementations: `cpu`, the custom op (`op`) and `triton` (interpreter).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torchvision import ops

import maskrt.kernels as K
from tests.kernels.conftest import PEER_IMPLS

# 0 / 0 IoUs of degenerate boxes (as in torchvision) warn inside the interpreter.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")


def run(impl, boxes, scores, classes=None, iou_threshold=0.5):
    """Our nms under `impl` ("op" = torch.ops.maskrt.nms) -> Tensor[K] int64, by decreasing score."""
    if classes is None:
        classes = torch.zeros(boxes.shape[0], dtype=torch.int64)
    if impl == "op":
        return torch.ops.maskrt.nms(boxes, scores, classes, iou_threshold, -1)
    return K.nms(boxes, scores, classes, iou_threshold, -1, impl=impl)


def reference_nms(boxes, scores, iou_threshold):
    """torchvision TestNMS._reference_nms: repeatedly keep the best remaining box and drop those
    whose ops.box_iou with it exceeds the threshold. Returns Tensor[K] int64 in kept order.

    box_iou is elementwise per pair (no reduction), so its full matrix, computed once, holds the
    very values the per-box calls of the original compute: iou[rest, current]. The loop runs in
    numpy; torch compares a float32 tensor with a Python float in float32, hence np.float32."""
    iou = ops.box_iou(boxes, boxes).numpy()
    threshold = np.float32(iou_threshold) if iou.dtype == np.float32 else np.float64(iou_threshold)
    picked = []
    order = scores.sort(descending=True)[1].numpy()
    while order.size > 0:
        current = order[0]
        picked.append(int(current))
        rest = order[1:]
        order = rest[iou[rest, current] <= threshold]
    return torch.as_tensor(picked, dtype=torch.int64)


def tensors_with_iou(n, iou_threshold, seed):
    """TestNMS._create_tensors_with_iou: n random boxes (float32, up to 100 px); the last one is the
    first widened so that their IoU is just above the threshold (it must be suppressed)."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(n, 4, generator=g) * 100
    boxes[:, 2:] += boxes[:, :2]
    boxes[-1, :] = boxes[0, :]
    x0, _, x1, _ = boxes[-1].tolist()
    iou_threshold += 1e-5
    boxes[-1, 2] += (x1 - x0) * (1 - iou_threshold) / iou_threshold
    return boxes, torch.rand(n, generator=g)


@functools.lru_cache(maxsize=None)
def nms_ref_case(n, iou, seed):
    """test_nms_ref's inputs and the oracle's answer (computed once for every implementation)."""
    boxes, scores = tensors_with_iou(n, iou, seed)
    return boxes, scores, reference_nms(boxes, scores, iou)


# torchvision's 10 seeds and 1000 boxes on cpu and the op; triton on seed 0 with 200 boxes (the
# interpreted greedy scan costs ~6 ms per box), fewer still where a case is repeated per threshold
SEEDED = [(impl, seed) for impl in PEER_IMPLS for seed in range(1 if impl == "triton" else 10)]


def size(impl, n, triton_n):
    return triton_n if impl == "triton" else n


class TestNMS:
    """Adapted from torchvision test/test_ops.py TestNMS."""

    @pytest.mark.parametrize("impl,seed", SEEDED)
    @pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
    def test_nms_ref(self, impl, iou, seed):
        boxes, scores, want = nms_ref_case(size(impl, 1000, 200), iou, seed)
        keep = run(impl, boxes, scores, iou_threshold=iou)
        assert torch.equal(keep, want)
        assert torch.equal(keep, ops.nms(boxes, scores, iou))

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    def test_nms_input_errors(self, impl):
        """torchvision raises RuntimeError; our kernels raise ValueError naming the shapes."""
        for boxes, scores in ((torch.rand(4), torch.rand(3)), (torch.rand(3, 5), torch.rand(3)),
                              (torch.rand(3, 4), torch.rand(3, 2)), (torch.rand(3, 4), torch.rand(4))):
            with pytest.raises(ValueError, match="nms"):
                run(impl, boxes, scores, torch.zeros(3, dtype=torch.int64))

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
    def test_nms_float64(self, impl, iou):
        """test_nms_gpu's comparison with torchvision's CPU kernel, with float64 boxes and scores:
        the IoUs are computed in double there, so must they be here."""
        boxes, scores = tensors_with_iou(size(impl, 300, 100), iou, seed=11)
        boxes, scores = boxes.double(), scores.double()
        assert torch.equal(run(impl, boxes, scores, iou_threshold=iou), ops.nms(boxes, scores, iou))

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    def test_nms_float64_iou_near_threshold(self, impl):
        """An IoU above 0.5 in double that rounds to exactly 0.5 in float32 (2 - 1e-9 is 2.0 in
        float32): torchvision's double kernel suppresses the second box, a float32 one keeps it."""
        boxes = torch.tensor([[0, 0, 1, 1], [0, 0, 2 - 1e-9, 1]], dtype=torch.float64)
        scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
        assert ops.nms(boxes, scores, 0.5).tolist() == [0]
        assert ops.nms(boxes.float(), scores.float(), 0.5).tolist() == [0, 1]
        assert run(impl, boxes, scores).tolist() == [0]
        assert run(impl, boxes.float(), scores.float()).tolist() == [0, 1]

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    @pytest.mark.parametrize("dtype", (torch.float32, torch.float16), ids=str)
    def test_autocast(self, impl, dtype):
        """test_autocast (CUDA autocast there, CPU autocast here) changes nothing: float16 boxes are
        widened to float32 exactly, so the oracle is torchvision's CPU kernel on those values."""
        boxes, scores = tensors_with_iou(size(impl, 300, 100), 0.5, seed=12)
        boxes, scores = boxes.to(dtype), scores.to(dtype)
        with torch.autocast("cpu"):
            keep = run(impl, boxes, scores)
        assert torch.equal(keep, ops.nms(boxes.float(), scores.float(), 0.5))

    @pytest.mark.parametrize("impl", PEER_IMPLS)
    def test_nms_float16(self, impl):
        """test_nms_float16 (CUDA/MPS there): the float16 boxes keep what torchvision keeps in float32."""
        boxes = torch.tensor([
            [285.3538, 185.5758, 1193.5110, 851.4551],
            [285.1472, 188.7374, 1192.4984, 851.0669],
            [279.2440, 197.9812, 1189.4746, 849.2019],
        ])
        scores = torch.tensor([0.6370, 0.7569, 0.3966])
        keep32 = ops.nms(boxes, scores, 0.2)
        assert torch.equal(run(impl, boxes.half(), scores.half(), iou_threshold=0.2), keep32)
        assert torch.equal(run(impl, boxes, scores, iou_threshold=0.2), keep32)

    @pytest.mark.parametrize("impl,seed", SEEDED)
    def test_batched_nms_implementations(self, impl, seed):
        """1000 heavily overlapping boxes (200: triton) of 4 classes, IoU 0.9: torchvision's two batched_nms
        paths agree, and so do we; an empty input gives an empty result."""
        g = torch.Generator().manual_seed(seed)
        n = size(impl, 1000, 200)
        boxes = torch.cat((torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g) + 10), dim=1)
        scores = torch.rand(n, generator=g)
        idxs = torch.randint(0, 4, size=(n,), generator=g)
        vanilla = ops.boxes._batched_nms_vanilla(boxes, scores, idxs, 0.9)
        trick = ops.boxes._batched_nms_coordinate_trick(boxes, scores, idxs, 0.9)
        assert torch.equal(vanilla, trick)
        assert torch.equal(run(impl, boxes, scores, idxs, 0.9), vanilla)
        empty = run(impl, torch.empty(0, 4), torch.empty(0), torch.empty(0, dtype=torch.int64))
        assert empty.shape == (0,) and empty.dtype == torch.int64
