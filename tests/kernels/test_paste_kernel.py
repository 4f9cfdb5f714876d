"""The paste kernels' fused variant (paste_id_map; torchvision's and detectron2's kernel) under the
interpreter: where they write and what they skip.

- its writes follow the regions the host computed the packed offsets from (not a geometry of its
  own): with regions smaller than the boxes', nothing lands outside [offsets[i], offsets[i + 1])
  (guard bytes around the buffer stay untouched) and each crop is the plain paste inside them;
- row blocks outside a box's region do no work: a box low in the image costs the kernel the same
  loads as the same box high in it (counted through the interpreter's load builder).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from maskrt.kernels.paste.common import box_geometry, crop_offsets, detectron2_regions

paste_triton = importlib.import_module("maskrt.kernels.paste.triton")


def instances(n=4, seed=0, h=90, w=120):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    return torch.rand(n, 28, 28, generator=g), torch.cat([xy, xy + 12 + torch.rand(n, 2, generator=g) * 30], 1)


@pytest.mark.parametrize("mode", ["torchvision", "detectron2"])
def test_fused_writes_stay_inside_the_hosts_regions(mode):
    masks, boxes = instances()
    region = detectron2_regions(boxes, 90, 120) if mode == "detectron2" else box_geometry(boxes, 28, 90, 120)[1]
    region = region + torch.tensor([2, 1, -1, -2])  # narrower than the kernel's own geometry would give
    offsets = crop_offsets(region)
    total, guard = int(offsets[-1]), 64
    buffer = torch.full((total + 2 * guard,), 7, dtype=torch.uint8)
    keymap = torch.full((90, 120), -1, dtype=torch.int32)
    paste_triton._launch(masks, boxes, 90, 120, 0.5, mode, packed=buffer[guard:guard + total].view(torch.bool),
                         offsets=offsets, keymap=keymap, priority=torch.arange(4, dtype=torch.int32), regions=region)
    assert bool((buffer[:guard] == 7).all()) and bool((buffer[guard + total:] == 7).all())
    full = paste_triton.paste(masks, boxes, 90, 120, 0.5, mode)
    for i, (x0, y0, x1, y1) in enumerate(region.tolist()):
        crop = buffer[guard + int(offsets[i]):guard + int(offsets[i + 1])].view(torch.bool).view(y1 - y0, x1 - x0)
        assert torch.equal(crop, full[i, y0:y1, x0:x1])


@pytest.fixture
def loads(monkeypatch):
    """Counts of the interpreter's masked loads (paste's every mask read is one)."""
    from triton.runtime.interpreter import InterpreterBuilder

    counted = []
    real = InterpreterBuilder.create_masked_load

    def counting(self, *args, **kwargs):
        counted.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(InterpreterBuilder, "create_masked_load", counting)
    return counted


@pytest.mark.parametrize("mode", ["torchvision", "detectron2"])
def test_row_blocks_off_the_region_do_no_work(loads, mode):
    masks = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(1))
    counts = []
    for shift in (0, 10 * paste_triton.BLOCK_H):  # the same box, ten row blocks lower in a 256-row image
        boxes = torch.tensor([[30.0, 22.0 + shift, 70.0, 52.0 + shift]])
        loads.clear()
        paste_triton.paste_id_map(masks, boxes, 256, 120, 0.5, mode=mode)
        counts.append(len(loads))
    assert counts[0] == counts[1] and counts[0] > 0
