"""maskrt's ByteTracker against Ultralytics' BYTETracker (the oracle), on the sequences of
tools/tracking_goldens.py: every detection's id must agree on every frame, up to a one-to-one
relabelling of ids over the whole sequence (both trackers number their tracks differently only
if they disagree somewhere).

Frames are replayed at equally spaced times k / 30 s with frame_rate 30, so maskrt's time-based
prediction and buffer count exactly Ultralytics' frames.

Known difference (tools/tracking_goldens.py records where it happens): Ultralytics, like
ByteTrack's reference code, removes its removed tracks from the lost list before appending the
tracks removed in the current frame, so a lost track removed for exceeding track_buffer stays
matchable one more frame (and, once re-found that way, is dropped the next time it is lost).
maskrt keeps a lost track matchable up to track_buffer + 1 frames after its last match (its
removal frame included) and no longer: the object's detection starts a new track there (id -1
until it is confirmed on the next frame). So a re-found Ultralytics track is expected as -1 on
its resurrection frame and as a new identity after it; everything else must agree.

maskrt's own additions to the unconfirmed association (unconfirmed_buffer, confirm_velocity) are
switched off here (ULTRALYTICS): with them on, the trackers differ by design, and
test_maskrts_confirmation_changes_these_ids shows that they do on these sequences.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskrt.tracking import ByteTracker, TrackerConfig

GOLDENS = Path(__file__).parent / "goldens"
META = json.loads((GOLDENS / "bytetrack_ultralytics.json").read_text())
ARRAYS = np.load(GOLDENS / "bytetrack_ultralytics.npz")
ULTRALYTICS = {"unconfirmed_buffer": 0.0, "confirm_velocity": False}  # maskrt's own keys, as Ultralytics behaves


def golden_frames(name: str):
    """(boxes float32 [N, 4], scores float32 [N], labels int64 [N], expected ids int64 [N]) per frame:
    Ultralytics' ids, with each re-found removed track as maskrt is expected to see it (module docstring)."""
    offsets = ARRAYS[f"{name}/offsets"]
    ids = ARRAYS[f"{name}/ids"].astype(np.int64)
    position = np.arange(len(ids))
    for frame, track_id in ARRAYS[f"{name}/resurrections"]:
        ids[(position >= offsets[frame]) & (position < offsets[frame + 1]) & (ids == track_id)] = -1
        ids[(position >= offsets[frame + 1]) & (ids == track_id)] = track_id + 1_000_000
    for start, end in zip(offsets[:-1], offsets[1:]):
        yield (ARRAYS[f"{name}/boxes"][start:end], ARRAYS[f"{name}/scores"][start:end],
               ARRAYS[f"{name}/labels"][start:end].astype(np.int64), ids[start:end])


class Relabelling:
    """A one-to-one map between two trackers' ids, grown as pairs are seen."""

    def __init__(self):
        self.forward: dict[int, int] = {}
        self.backward: dict[int, int] = {}

    def agrees(self, ours: int, theirs: int) -> bool:
        if (ours < 0) != (theirs < 0):
            return False
        if ours < 0:
            return True
        return self.forward.setdefault(ours, theirs) == theirs and self.backward.setdefault(theirs, ours) == ours


def test_goldens_record_their_oracle():
    assert META["ultralytics"] and META["lap"]
    assert len(META["sequences"]) >= 5
    for seq in META["sequences"].values():
        assert seq["frames"] >= 100
        assert 10 <= seq["scenario"]["objects"] <= 50


@pytest.mark.parametrize("name", sorted(META["sequences"]))
def test_ids_agree_with_ultralytics_on_every_frame(name):
    meta = META["sequences"][name]
    tracker = ByteTracker(TrackerConfig.from_dict({**meta["config"], **ULTRALYTICS}), frame_rate=META["frame_rate"])
    relabelling = Relabelling()
    tracked = 0
    for k, (boxes, scores, labels, expected) in enumerate(golden_frames(name)):
        ids = tracker.update(boxes, scores, labels, time=k / META["frame_rate"])
        disagree = [i for i, (a, b) in enumerate(zip(ids.tolist(), expected.tolist()))
                    if not relabelling.agrees(a, b)]
        assert not disagree, (f"frame {k}: detections {disagree}: maskrt {ids[disagree]}, "
                              f"ultralytics {expected[disagree]}")
        tracked += int((ids >= 0).sum())
    assert tracked == meta["tracked"] - len(meta["resurrections"])
    assert len(relabelling.forward) == meta["ids"] + len(meta["resurrections"])


def test_maskrts_confirmation_changes_these_ids():
    """With maskrt's defaults for its own keys, some sequence disagrees with Ultralytics somewhere
    (so the comparison above really switches them off)."""
    def agrees(name: str) -> bool:
        meta = META["sequences"][name]
        tracker = ByteTracker(TrackerConfig.from_dict(meta["config"]), frame_rate=META["frame_rate"])
        relabelling = Relabelling()
        return all(relabelling.agrees(a, b)
                   for k, (boxes, scores, labels, expected) in enumerate(golden_frames(name))
                   for a, b in zip(tracker.update(boxes, scores, labels, time=k / META["frame_rate"]).tolist(),
                                   expected.tolist()))

    assert not all(agrees(name) for name in META["sequences"])
