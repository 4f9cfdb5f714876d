"""maskrt.tracking.ByteTracker: the cost of one update, per frame, at 10, 50 and 200 objects,
matching by box IoU and by mask IoU.

Each round is one update on the next frame of an endless synthetic scene (1280x720): objects
bouncing off the image's edges at 1 to 6 px per frame, box jitter, scores in [0.15, 0.95] (so
both associations run), 5% missed detections and a false positive per frame on average; with
masks, each detection carries an elliptic mask crop over its rounded box. Frames are made in
pedantic's setup, outside the timed call. Target: under 2 ms per update at 50 objects.

Groups: "tracker update N objects" (box and mask rows); extra_info holds the mean detections
per frame and the share given a track id.
Run: .venv/bin/python -m pytest benchmarks/tracking --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest

from maskrt.tracking import ByteTracker, MaskCrop

WIDTH, HEIGHT, FPS = 1280, 720, 30.0
ROUNDS, WARMUP = 300, 30


class Scene:
    """Objects moving in a box, bouncing off its edges; `frame()` makes the next frame's detections."""

    def __init__(self, objects: int, masks: bool, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.size = self.rng.uniform(24, 96, size=(objects, 2))
        self.centre = self.rng.uniform(self.size / 2, [WIDTH, HEIGHT] - self.size / 2)
        self.velocity = self.rng.uniform(1, 6, size=(objects, 2)) * self.rng.choice([-1, 1], size=(objects, 2))
        self.masks = masks
        self.index = 0

    def frame(self) -> tuple[tuple, dict]:
        """(boxes float32 [N, 4], scores float32 [N], labels int64 [N]) and {time, masks}."""
        self._move()
        rng, n = self.rng, len(self.size)
        shown = rng.random(n) >= 0.05
        centre = self.centre[shown] + rng.normal(0, 1.0, size=(int(shown.sum()), 2))
        boxes = np.concatenate([centre - self.size[shown] / 2, centre + self.size[shown] / 2], axis=1)
        false = rng.uniform([0, 0], [WIDTH - 60, HEIGHT - 60], size=(rng.poisson(1.0), 2))
        boxes = np.concatenate([boxes, np.concatenate([false, false + 40], axis=1)]).astype(np.float32)
        scores = rng.uniform(0.15, 0.95, size=len(boxes)).astype(np.float32)
        labels = rng.integers(0, 3, size=len(boxes))
        masks = [ellipse(box) for box in boxes] if self.masks else None
        self.index += 1
        return (boxes, scores, labels), {"time": self.index / FPS, "masks": masks}

    def _move(self) -> None:
        self.centre += self.velocity
        low, high = self.size / 2, np.array([WIDTH, HEIGHT]) - self.size / 2
        bounced = (self.centre < low) | (self.centre > high)
        self.velocity[bounced] *= -1
        self.centre = np.clip(self.centre, low, high)


def ellipse(box: np.ndarray) -> MaskCrop:
    """The ellipse inscribed in `box` (xyxy), over its rounded region."""
    x0, y0, x1, y1 = (int(v) for v in np.floor(box + 0.5))
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    inside = ((2 * xx - x0 - x1) / (x1 - x0)) ** 2 + ((2 * yy - y0 - y1) / (y1 - y0)) ** 2 <= 1
    return MaskCrop((x0, y0, x1, y1), inside)


def run(benchmark, objects: int, match: str) -> None:
    scene = Scene(objects, masks=match == "mask")
    tracker = ByteTracker(match=match, frame_rate=FPS)
    detections, tracked = [], []

    def update(boxes, scores, labels, time, masks):
        ids = tracker.update(boxes, scores, labels, time=time, masks=masks)
        detections.append(len(ids))
        tracked.append(int((ids >= 0).sum()))

    benchmark.group = f"tracker update {objects} objects"
    benchmark.extra_info["match"] = match
    benchmark.pedantic(update, setup=scene.frame, rounds=ROUNDS, warmup_rounds=WARMUP)
    benchmark.extra_info["detections per frame"] = round(float(np.mean(detections)), 1)
    benchmark.extra_info["tracked share"] = round(sum(tracked) / max(sum(detections), 1), 3)
    assert sum(tracked) > 0.5 * sum(detections) or len(detections) < 3  # the scene is tracked


@pytest.mark.parametrize("objects", [pytest.param(10, marks=pytest.mark.quick),
                                     pytest.param(50, marks=pytest.mark.quick), 200])
@pytest.mark.parametrize("match", ["box", "mask"])
def test_tracker_update(benchmark, objects, match):
    run(benchmark, objects, match)
