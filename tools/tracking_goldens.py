#!/usr/bin/env python
"""Ultralytics' ByteTrack as the oracle for maskrt.tracking.ByteTracker: goldens.

Makes seeded synthetic detection sequences (objects crossing, occluded for less and more than the
track buffer, low-score stretches, box jitter, missed detections, false positives, objects
entering and leaving; 100+ frames, 10 to 50 objects), feeds each frame to Ultralytics'
BYTETracker (its args from Ultralytics' own bytetrack.yaml, overridden per sequence where a
sequence says so) and stores the sequences with Ultralytics' track id for every detection
(-1: not in its output) and the frames where Ultralytics re-found a track it had already removed
(ultralytics_ids) in tests/tracking/goldens/bytetrack_ultralytics.npz, and the settings plus
the ultralytics and lap versions in bytetrack_ultralytics.json.

Runs in a side environment with Ultralytics installed (never maskrt's own):

    python3 -m venv /work/side/trackenv
    echo /work/main/.venv/lib/python3.11/site-packages > /work/side/trackenv/lib/python3.11/site-packages/main.pth
    /work/side/trackenv/bin/pip install --no-deps ultralytics lap opencv-python-headless
    /work/side/trackenv/bin/python tools/tracking_goldens.py

tests/tracking/test_ultralytics_goldens.py replays the sequences through maskrt's tracker at
equally spaced times (frame k at k / 30 s, frame_rate 30).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "tracking" / "goldens"
WIDTH, HEIGHT = 1280, 720
QUANTUM = 8  # coordinates are multiples of 1/8 px: exact in float32, and they compress


@dataclass(frozen=True)
class Scenario:
    """How one synthetic sequence is made."""

    seed: int
    frames: int
    objects: int
    speed: float = 3.0  # px per frame, std of each velocity component
    crossing: bool = False  # objects start in pairs at opposite sides, heading for each other
    occlusions: float = 0.0  # expected occlusions per object (each 3 to 60 frames undetected)
    low_score: float = 0.0  # probability that a detection scores in (0.1, 0.25)
    miss: float = 0.0  # probability that a detection is missing
    jitter: float = 0.0  # box noise std, as a fraction of the box size
    false_positives: float = 0.0  # expected false detections per frame
    births: bool = False  # objects enter and leave during the sequence
    config: tuple[tuple[str, object], ...] = ()  # overrides of bytetrack.yaml


SCENARIOS = {
    "crossing": Scenario(seed=11, frames=120, objects=10, speed=4.0, crossing=True, jitter=0.01),
    "occlusion": Scenario(seed=12, frames=150, objects=20, occlusions=1.5, jitter=0.01),
    "low_scores": Scenario(seed=13, frames=120, objects=20, low_score=0.3, jitter=0.02, miss=0.05),
    "noisy": Scenario(seed=14, frames=120, objects=50, jitter=0.03, miss=0.1, false_positives=3.0,
                      low_score=0.1, occlusions=0.5, births=True),
    "dense": Scenario(seed=15, frames=110, objects=40, speed=5.0, crossing=True, jitter=0.02, miss=0.05,
                      false_positives=1.0, births=True),
    "short_buffer": Scenario(seed=16, frames=130, objects=25, occlusions=1.5, jitter=0.02, low_score=0.15,
                             false_positives=1.0, config=(("track_buffer", 10), ("match_thresh", 0.7),
                                                          ("fuse_score", False))),
}


def make_sequence(s: Scenario) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frames of (boxes float32 [N, 4] xyxy, scores float32 [N], labels int64 [N]), detections shuffled."""
    rng = np.random.default_rng(s.seed)
    centres, velocities, sizes = _initial_states(s, rng)
    growth = rng.normal(0, 0.002, size=(s.objects, 2))
    labels = rng.integers(0, 4, size=s.objects)
    base_scores = rng.uniform(0.35, 0.95, size=s.objects)
    alive = _lifetimes(s, rng)
    occluded = _occlusions(s, rng)
    frames = []
    for k in range(s.frames):
        centre = centres + k * velocities
        size = sizes * (1 + growth) ** k
        shown = alive[:, k] & ~occluded[:, k] & (rng.random(s.objects) >= s.miss)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        boxes += rng.normal(0, 1, boxes.shape) * s.jitter * np.tile(size, 2)
        scores = np.clip(base_scores + rng.normal(0, 0.05, s.objects), 0.26, 0.99)
        low = rng.random(s.objects) < s.low_score
        scores[low] = rng.uniform(0.11, 0.24, size=int(low.sum()))
        frame = _with_false_positives(s, rng, boxes[shown], scores[shown], labels[shown])
        order = rng.permutation(len(frame[1]))
        frames.append(tuple(a[order] for a in frame))
    return [(_quantize(b), s_.astype(np.float32), l.astype(np.int64)) for b, s_, l in frames]


def _initial_states(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """centres [n, 2], velocities [n, 2] px/frame, sizes [n, 2] (w, h)."""
    n = s.objects
    sizes = rng.uniform(24, 120, size=(n, 2))
    centres = rng.uniform([100, 80], [WIDTH - 100, HEIGHT - 80], size=(n, 2))
    velocities = rng.normal(0, s.speed, size=(n, 2))
    if s.crossing:  # pair i, i+1 starts mirrored about a meeting point reached mid-sequence
        meet = rng.uniform([300, 200], [WIDTH - 300, HEIGHT - 200], size=(n // 2, 2))
        for p in range(n // 2):
            v = velocities[2 * p]
            centres[2 * p] = meet[p] - v * s.frames / 2
            centres[2 * p + 1] = meet[p] + v * s.frames / 2
            velocities[2 * p + 1] = -v + rng.normal(0, 0.3, 2)
            sizes[2 * p + 1] = sizes[2 * p] * rng.uniform(0.9, 1.1, 2)
    return centres, velocities, sizes


def _lifetimes(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """bool [n, frames]: when each object is in the scene."""
    alive = np.ones((s.objects, s.frames), dtype=np.bool_)
    if s.births:
        for i in range(s.objects):
            start = int(rng.integers(0, s.frames // 2))
            end = int(rng.integers(start + 10, s.frames + 20))
            alive[i, :start] = False
            alive[i, end:] = False
    return alive


def _occlusions(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """bool [n, frames]: frames in which an object is hidden (not detected)."""
    hidden = np.zeros((s.objects, s.frames), dtype=np.bool_)
    for i in range(s.objects):
        for _ in range(rng.poisson(s.occlusions)):
            start, length = int(rng.integers(5, s.frames)), int(rng.integers(3, 61))
            hidden[i, start:start + length] = True
    return hidden


def _with_false_positives(s: Scenario, rng: np.random.Generator, boxes, scores, labels):
    count = rng.poisson(s.false_positives)
    size = rng.uniform(20, 100, size=(count, 2))
    corner = rng.uniform([0, 0], [WIDTH - 100, HEIGHT - 100], size=(count, 2))
    fp_boxes = np.concatenate([corner, corner + size], axis=1)
    fp_scores = rng.uniform(0.05, 0.5, size=count)
    return (np.concatenate([boxes, fp_boxes]), np.concatenate([scores, fp_scores]),
            np.concatenate([labels, rng.integers(0, 4, size=count)]))


def _quantize(boxes: np.ndarray) -> np.ndarray:
    return (np.round(boxes * QUANTUM) / QUANTUM).astype(np.float32)


class _Boxes:
    """The part of ultralytics.engine.results.Boxes that BYTETracker reads: conf, cls, xyxy, xywh,
    len() and boolean indexing, on numpy arrays."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        self.xyxy, self.conf, self.cls = xyxy, conf, cls

    @property
    def xywh(self) -> np.ndarray:
        x0, y0, x1, y1 = self.xyxy.T
        return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> "_Boxes":
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def ultralytics_config(overrides) -> dict:
    """Ultralytics' bytetrack.yaml as it ships, with `overrides`."""
    from ultralytics.utils import ROOT, YAML

    config = YAML.load(ROOT / "cfg" / "trackers" / "bytetrack.yaml")
    config.update(dict(overrides))
    return config


def ultralytics_ids(frames, config: dict) -> tuple[list[np.ndarray], np.ndarray]:
    """Ultralytics' track id per detection for each frame (-1: not in its output), and its
    resurrections int64 [R, 2]: (frame, id) where a track it had already marked removed is output.

    Ultralytics (like ByteTrack's reference code) subtracts its removed tracks from the lost list
    before appending the tracks removed in the current frame, so a lost track removed for
    exceeding the buffer stays matchable one more frame; maskrt does not keep it (see the test).
    """
    from ultralytics.trackers.byte_tracker import BYTETracker

    tracker = BYTETracker(SimpleNamespace(**config))
    out, removed, resurrections = [], set(), []
    for k, (boxes, scores, labels) in enumerate(frames):
        rows = tracker.update(_Boxes(boxes, scores, labels.astype(np.float32)))
        ids = np.full(len(scores), -1, dtype=np.int64)
        if len(rows):
            ids[rows[:, 7].astype(np.int64)] = rows[:, 4].astype(np.int64)
        for track_id in sorted(removed.intersection(ids.tolist())):
            resurrections.append((k, track_id))
            removed.discard(track_id)
        removed.update(t.track_id for t in tracker.removed_stracks_frame)
        out.append(ids)
    return out, np.array(resurrections, dtype=np.int64).reshape(-1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import lap
    import ultralytics

    arrays, meta = {}, {"ultralytics": ultralytics.__version__, "lap": lap.__version__, "frame_rate": 30.0,
                        "sequences": {}}
    for name, scenario in SCENARIOS.items():
        frames = make_sequence(scenario)
        config = ultralytics_config(scenario.config)
        ids, resurrections = ultralytics_ids(frames, config)
        counts = np.array([len(f[1]) for f in frames])
        arrays[f"{name}/offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        arrays[f"{name}/boxes"] = np.concatenate([f[0] for f in frames])
        arrays[f"{name}/scores"] = np.concatenate([f[1] for f in frames])
        arrays[f"{name}/labels"] = np.concatenate([f[2] for f in frames]).astype(np.int8)
        arrays[f"{name}/ids"] = np.concatenate(ids).astype(np.int16)
        arrays[f"{name}/resurrections"] = resurrections
        tracked = np.concatenate(ids)
        meta["sequences"][name] = {"config": config, "scenario": asdict(scenario), "frames": len(frames),
                                   "detections": int(counts.sum()), "tracked": int((tracked >= 0).sum()),
                                   "ids": int(len(np.unique(tracked[tracked >= 0]))),
                                   "resurrections": resurrections.tolist()}
        print(f"{name}: {meta['sequences'][name]}")
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "bytetrack_ultralytics.npz", **arrays)
    (args.out / "bytetrack_ultralytics.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
