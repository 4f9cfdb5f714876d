"""maskrt.tracking.metrics against TrackEval (the oracle) on the sequences of
tools/tracking_metric_goldens.py: every value TrackEval reports for HOTA, CLEAR and Identity
(HOTA's averaged over alpha) agrees to 1e-6; counts exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskrt.tracking import MaskCrop
from maskrt.tracking.metrics import Frame, evaluate

GOLDENS = Path(__file__).parent / "goldens"
META = json.loads((GOLDENS / "tracking_metrics.json").read_text())
ARRAYS = np.load(GOLDENS / "tracking_metrics.npz")
COUNTS = {"CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "Frag", "MT", "PT", "ML", "IDTP", "IDFN", "IDFP"}


def frames(prefix: str, by: str) -> list[Frame]:
    offsets = ARRAYS[f"{prefix}/offsets"]
    ids, boxes = ARRAYS[f"{prefix}/ids"], ARRAYS[f"{prefix}/boxes"]
    masks = None
    if by == "mask":
        h, w = META["mask_size"]
        bits = np.unpackbits(ARRAYS[f"{prefix}/masks"], count=len(ids) * h * w).astype(np.bool_)
        masks = [MaskCrop.from_full(m) for m in bits.reshape(-1, h, w)]
    return [Frame(ids[a:b], boxes[a:b], None if masks is None else masks[a:b])
            for a, b in zip(offsets[:-1], offsets[1:])]


def test_goldens_record_their_oracle():
    assert META["trackeval"]
    assert {s["scenario"]["by"] for s in META["sequences"].values()} == {"box", "mask"}


@pytest.mark.parametrize("name", sorted(META["sequences"]))
def test_metrics_equal_trackeval(name):
    seq = META["sequences"][name]
    by = seq["scenario"]["by"]
    ours = evaluate(frames(f"{name}/gt", by), frames(f"{name}/pred", by), by=by).summary()
    theirs = seq["trackeval"]
    assert set(ours) <= set(theirs)
    for key, value in ours.items():
        if key in COUNTS:
            assert value == theirs[key], key
        else:
            assert value == pytest.approx(theirs[key], abs=1e-6), key
