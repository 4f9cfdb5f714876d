"""TrackingStep (engine/stream/tracking.py): ids through the pipeline, detector intervals, tracks
carried over skipped frames, the report filter after association, the real-time backlog.

The backend is a fake whose objects move at constant velocity (the oracle for where a carried box
must be); frames are tiny arrays whose first pixels encode their index.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from maskrt.engine import Detections, Segmenter
from maskrt.engine.sources import ArraySource, Frame, FrameSource
from maskrt.engine.stream import JsonLinesSink, Pipeline
from maskrt.engine.stream.tracking import AutoInterval, FixedInterval, TrackingStep, parse_interval, reframe_probs
from maskrt.errors import MaskrtError
from maskrt.model import RawDetections
from maskrt.tracking import ByteTracker, MaskCrop, carry_mask

H, W = 120, 160
DISK = torch.tensor(((np.mgrid[0:28, 0:28] - 13.5) ** 2).sum(0) <= 11.0**2, dtype=torch.float32)  # [28, 28]


class Movers:
    """Objects moving at constant velocity: object k's box at frame i is boxes[k] + i * velocity[k]
    (xyxy), scored scores(k, i) (None: not detected), mask probabilities a disk. The frame index is
    read from the image's first two pixels. Records the frames it ran on; can sleep per call."""

    name = "movers"

    def __init__(self, boxes, velocity, scores=None, delay: float = 0.0):
        self.boxes, self.velocity = np.asarray(boxes, np.float64), np.asarray(velocity, np.float64)
        self.scores = scores or (lambda k, i: 0.9 - 0.1 * k)
        self.delay, self.seen = delay, []

    def box(self, k: int, i: int) -> np.ndarray:
        return self.boxes[k] + i * np.tile(self.velocity[k], 2)

    def infer(self, images):
        time.sleep(self.delay)
        out = []
        for img in images:
            i = int(img[0, 0, 0]) + 256 * int(img[0, 0, 1])
            self.seen.append(i)
            found = [(s, k) for k in range(len(self.boxes)) if (s := self.scores(k, i)) is not None]
            found.sort(reverse=True)
            boxes = torch.tensor(np.array([self.box(k, i) for _, k in found]).reshape(-1, 4), dtype=torch.float32)
            out.append(RawDetections(boxes, torch.tensor([s for s, _ in found]), torch.ones(len(found), dtype=torch.long),
                                     DISK.expand(len(found), 28, 28).clone(), (H, W)))
        return out


def frames(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((H, W, 3), np.uint8)
        img[0, 0, :2] = (i % 256, i // 256)
        out.append(img)
    return out


def run(backend, n, step, min_score=None, sinks=()):
    pipeline = Pipeline(Segmenter(backend, ["bg", "thing"]), ArraySource(frames(n)), realtime=False, steps=[step],
                        min_score=min_score, sinks=list(sinks))
    return [work.dets for work in pipeline.run()]


TWO = dict(boxes=[[10, 20, 40, 50], [100, 60, 130, 90]], velocity=[[2.0, 1.0], [-2.0, 0.5]])


def test_ids_stay_with_their_objects_and_every_frame_is_output_at_interval_3():
    backend = Movers(**TWO)
    step = TrackingStep(interval=3)
    outputs = run(backend, 12, step)
    assert backend.seen == [0, 3, 6, 9]  # the engine ran on every third frame
    assert len(outputs) == 12 and step.engine_frames == 4 and step.propagated_frames == 8
    for i, dets in enumerate(outputs):
        assert len(dets) == 2
        by_x = np.argsort(dets.boxes[:, 0])
        assert dets.track_ids[by_x].tolist() == [1, 2]  # object 0 (left) is track 1 on every frame
        assert dets.propagated.tolist() == [i % 3 != 0] * 2


def test_carried_boxes_follow_the_objects_motion():
    backend = Movers(boxes=[[10, 20, 40, 50]], velocity=[[3.0, 1.5]])
    outputs = run(backend, 40, TrackingStep(interval=2))
    errors = [np.abs(dets.boxes[0] - backend.box(0, i)).max() for i, dets in enumerate(outputs) if i % 2]
    # the Kalman filter learns the velocity from the engine frames; once it has (a few updates), a
    # box carried one frame ahead is where the object is, up to the filter's remaining lag
    assert max(errors[10:]) < 0.25, errors
    assert errors[0] > 1.0  # at first (no velocity yet) it is not: the check above has teeth


def test_a_carried_mask_is_the_last_mask_moved_and_scaled_with_its_box():
    backend = Movers(boxes=[[10, 20, 40, 50]], velocity=[[3.0, 1.5]])
    outputs = run(backend, 24, TrackingStep(interval=4))
    last, carried = outputs[20], outputs[23]  # engine frame 20, then three carried frames
    assert carried.propagated.tolist() == [True]
    expected = carry_mask(MaskCrop.from_full(last.masks[0]), last.boxes[0], carried.boxes[0])
    got = MaskCrop.from_full(carried.masks[0])
    inter = np.count_nonzero(expected.to_full(H, W) & got.to_full(H, W))
    assert inter / (expected.area + got.area - inter) > 0.9  # same mask, resampled two ways (a pixel at edges)
    centroid = [np.argwhere(d.masks[0]).mean(0)[::-1] for d in (last, carried)]
    shift = (carried.boxes[0, :2] + carried.boxes[0, 2:] - last.boxes[0, :2] - last.boxes[0, 2:]) / 2
    np.testing.assert_allclose(centroid[1] - centroid[0], shift, atol=0.5)  # moved with the box


class Entering(Movers):
    """One object entering through the top edge: its box (clipped by the edge) grows 2 px a frame
    in height while it moves 2 px a frame to the right; 30 px wide throughout."""

    def __init__(self):
        super().__init__(boxes=[[10, 0, 40, 20]], velocity=[[2.0, 0.0]])

    def box(self, k: int, i: int) -> np.ndarray:
        return np.array([10 + 2 * i, 0, 40 + 2 * i, 20 + 2 * i], np.float64)


def test_a_carried_box_keeps_its_last_detections_size():
    """The Kalman filter's aspect ratio follows measurements slowly (ByteTrack's noise model): its
    box for an object whose box changes shape is stretched (here first ~5 px wide, 30 px tall)
    wider than the object (here first 30 x 20, then taller). A carried box is the last detection's
    box, moved: 30 px wide."""
    backend = Entering()
    step = TrackingStep(interval=3)
    outputs = run(backend, 30, step)
    for i, dets in enumerate(outputs):
        last = backend.box(0, i - i % 3)
        width, height = dets.boxes[0, 2] - dets.boxes[0, 0], dets.boxes[0, 3] - dets.boxes[0, 1]
        assert (width, height) == pytest.approx((last[2] - last[0], last[3] - last[1]), abs=1e-3), i
        if i >= 9:  # once the filter has the velocity, the carried box is where the object is
            assert abs((dets.boxes[0, 0] + dets.boxes[0, 2]) / 2 - (backend.box(0, i)[0] + 15)) < 1.0, i
    kalman, widths = ByteTracker(), []  # the filter's own boxes two frames after each engine frame
    for i in range(0, 30, 3):
        kalman.update(backend.box(0, i)[None], np.array([0.9], np.float32), np.array([1]), time=i / 30.0)
        box = kalman.predict((i + 2) / 30.0).boxes[0]
        widths.append(float(box[2] - box[0]))
    assert max(widths) > 36  # not the object's 30 px: the test has teeth


def test_the_tracker_sees_low_scores_and_the_report_filter_applies_after_it():
    def scores(k, i):
        return 0.2 if 5 <= i < 10 else 0.9  # a low-score stretch: ByteTrack's second association

    backend = Movers(boxes=[[10, 20, 40, 50]], velocity=[[2.0, 1.0]], scores=scores)
    seen = run(backend, 14, TrackingStep())
    assert [d.track_ids.tolist() for d in seen] == [[1]] * 14  # the low detections keep track 1
    reported = run(Movers(boxes=[[10, 20, 40, 50]], velocity=[[2.0, 1.0]], scores=scores), 14, TrackingStep(),
                   min_score=0.5)
    assert [len(d) for d in reported] == [1] * 5 + [0] * 5 + [1] * 4
    assert reported[10].track_ids.tolist() == [1]


def test_json_lines_carry_track_ids_and_mark_propagated_instances(tmp_path):
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    run(Movers(**TWO), 6, TrackingStep(interval=2), sinks=[sink])
    records = [json.loads(line) for line in sink.path.read_text().splitlines()]
    for record in records:
        assert sorted(inst["track_id"] for inst in record["instances"]) == [1, 2]
        flags = [inst.get("propagated") for inst in record["instances"]]
        assert flags == ([True, True] if record["frame"] % 2 else [None, None])  # key absent on engine frames


def test_unconfirmed_detections_have_id_minus_one():
    def scores(k, i):
        return 0.9 if k == 0 or i >= 3 else None  # object 1 appears at frame 3

    outputs = run(Movers(**TWO, scores=scores), 6, TrackingStep())
    assert [sorted(d.track_ids.tolist()) for d in outputs] == [[1], [1], [1], [-1, 1], [1, 2], [1, 2]]


class Twice(Movers):
    """Movers that also report object 0 a second time, under another class, slightly shifted and
    lower scored: Mask R-CNN's per-class NMS leaves such pairs."""

    def infer(self, images):
        out = []
        for raw in super().infer(images):
            extra = raw.boxes[:1] + torch.tensor([1.0, 1.0, 1.0, 1.0])  # IoU with the original: about 0.88
            out.append(RawDetections(torch.cat([raw.boxes, extra]), torch.cat([raw.scores, raw.scores[:1] - 0.3]),
                                     torch.cat([raw.labels, torch.tensor([2])]),
                                     torch.cat([raw.mask_probs, raw.mask_probs[:1]]), raw.image_size))
        return out


def test_an_object_found_under_two_classes_is_one_track():
    outputs = run(Twice(**TWO), 5, TrackingStep())
    assert [sorted(d.track_ids.tolist()) for d in outputs] == [[1, 2]] * 5  # the duplicate is dropped
    kept = run(Twice(**TWO), 5, TrackingStep({"duplicate_iou": 1.0}))
    assert [len(d) for d in kept] == [3] * 5 and sorted(kept[0].track_ids.tolist()) == [1, 2, 3]


def test_fixed_interval_counts_from_the_last_engine_frame():
    schedule = FixedInterval(2)
    assert [i for i in (0, 1, 3, 4, 7, 8, 9) if schedule.wants(i, None)] == [0, 3, 7, 9]  # gaps: dropped frames


def test_auto_interval_runs_the_engine_on_fresh_frames():
    now = [0.0]
    schedule = AutoInterval(frame_rate=10.0, max_interval_s=1.0, clock=lambda: now[0])
    asked = []
    # frames every 0.1 s; the engine takes 0.25 s, so frames queue behind it and are asked late
    for i, (arrived, asked_at) in enumerate([(0.0, 0.0), (0.1, 0.25), (0.2, 0.26), (0.3, 0.3), (0.4, 0.55)]):
        now[0] = asked_at
        asked.append(schedule.wants(i, arrived))
    assert asked == [True, False, True, True, False]  # 1 waited 0.15 s: stale; 2 is the newest: fresh
    late = AutoInterval(frame_rate=10.0, max_interval_s=1.0, clock=lambda: now[0])
    now[0] = 0.0
    assert late.wants(0, 0.0)
    now[0] = 5.0  # far behind: every frame stale, yet the engine runs once per second of video
    assert [late.wants(i, i / 10) for i in range(1, 21)] == [i % 10 == 0 for i in range(1, 21)]
    assert late.wants(21, None)  # no timestamp: always


@pytest.mark.parametrize("value, expected", [(1, 1), ("3", 3), ("auto", "auto"), (7, 7)])
def test_parse_interval(value, expected):
    assert parse_interval(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "-2", "1.5", 1.5, "abc", "", True, None])
def test_parse_interval_refuses(value):
    with pytest.raises(MaskrtError, match="--interval must be a positive integer or 'auto'"):
        parse_interval(value)


def test_reframe_probs_keeps_the_mask_over_a_clipped_box():
    probs = DISK.numpy()[None]
    box = np.array([[-20.0, 10.0, 40.0, 70.0]])  # a third of it left of the image
    clipped = np.array([[0.0, 10.0, 40.0, 70.0]])
    np.testing.assert_array_equal(reframe_probs(probs, box, box), probs)
    whole = Detections.from_tensors(box, [0.9], [1], probs, (H, W)).masks[0]
    cut = Detections.from_tensors(clipped, [0.9], [1], reframe_probs(probs, box, clipped), (H, W)).masks[0]
    differ = np.count_nonzero(whole != cut)
    assert differ <= 2 * 60  # at most the boundary pixels of a 60 px tall mask (two per row) differ
    assert np.count_nonzero(whole) > 1000


def test_match_mask_needs_masks():
    step = TrackingStep(match="mask")
    work = type("W", (), {"index": 0, "time": 0.0, "image": np.zeros((H, W, 3), np.uint8)})()
    boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    dets = Detections.from_tensors(boxes, torch.tensor([0.9]), torch.tensor([1]), torch.zeros(1, 0, 0), (H, W))
    with pytest.raises(MaskrtError, match="--match mask needs instance masks"):
        step.process(work, dets)
    with_masks = Detections.from_tensors(boxes, torch.tensor([0.9]), torch.tensor([1]), DISK[None], (H, W))
    assert step.process(work, with_masks).track_ids.tolist() == [1]


def test_stream_api_options():
    seg = Segmenter(Movers(**TWO), ["bg", "thing"])
    with seg.stream(frames(4), track=True, interval=2) as stream:
        ids = [d.track_ids.tolist() for _, d in stream]
    assert len(ids) == 4 and stream.tracking.engine_frames == 2
    with pytest.raises(MaskrtError, match="apply with track=True"):
        seg.stream(frames(2), interval=2)
    with pytest.raises(MaskrtError, match="--interval auto needs real time"):
        seg.stream(frames(2), track=True, interval="auto")
    with pytest.raises(MaskrtError, match="unknown key 'bogus'"):
        seg.stream(frames(2), track=True, tracker={"bogus": 1})
    with pytest.raises(MaskrtError, match="--match must be one of box, mask"):
        seg.stream(frames(2), track=True, match="iou")


class Paced(FrameSource):
    """A live source: `count` frames at `fps` on the wall clock, stamped with it."""

    kind, live = "camera", True

    def __init__(self, count: int, fps: float):
        super().__init__("paced")
        self.fps, self._frames = fps, frames(count)

    def frames(self, stop: threading.Event):
        start = time.perf_counter()
        for i, image in enumerate(self._frames):
            if stop.wait(max(0.0, start + i / self.fps - time.perf_counter())):
                return
            yield Frame(i, time.perf_counter() - start, image)


def test_realtime_auto_interval_outputs_every_frame_of_a_live_source():
    # the engine takes 3 frame periods: alone, real time drops about two frames in three
    plain = Pipeline(Segmenter(Movers(**TWO, delay=0.1), ["bg", "thing"]), Paced(30, 30.0), realtime=True)
    assert len(list(plain.run())) < 20 and plain.stats.dropped > 10
    backend = Movers(**TWO, delay=0.1)
    step = TrackingStep(frame_rate=30.0, interval="auto")
    tracked = Pipeline(Segmenter(backend, ["bg", "thing"]), Paced(30, 30.0), realtime=True, steps=[step])
    outputs = [work.dets for work in tracked.run()]
    assert len(outputs) == 30 and tracked.stats.dropped == 0  # every frame, in order
    assert 3 <= len(backend.seen) <= 15 and step.propagated_frames == 30 - len(backend.seen)
    assert all(len(d) == 2 for d in outputs[1:])
