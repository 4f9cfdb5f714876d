"""ByteTracker on hand-built sequences with known ids: crossings, occlusions inside and beyond the
buffer, low-score detections, dropped frames, mask matching, the -1 rule and id uniqueness."""

from __future__ import annotations

import numpy as np
import pytest

from maskrt.tracking import ByteTracker, MaskCrop, TrackerConfig

FPS = 30.0


def box(cx: float, cy: float, w: float = 40.0, h: float = 60.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def update(tracker: ByteTracker, frame: int, boxes, scores=None, masks=None, fps: float = FPS) -> list[int]:
    """Track one frame (time frame / fps); scores default to 0.9."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    labels = np.zeros(len(boxes), np.int64)
    return tracker.update(boxes, scores, labels, time=frame / fps, masks=masks).tolist()


def crossing(k: int) -> tuple[list[float], list[float]]:
    """A moves right and B left at 24 px/frame (boxes 40 px wide) along the same line: on frames
    20 and 21 they swap places exactly."""
    return box(100 + 24 * k, 200), box(1084 - 24 * k, 200)


def test_two_objects_crossing_keep_their_ids():
    tracker = ByteTracker()
    for k in range(40):
        a, b = crossing(k)
        swapped = k % 3 == 1  # detection order must not matter
        ids = update(tracker, k, [b, a] if swapped else [a, b])
        assert (ids[::-1] if swapped else ids) == [1, 2], f"frame {k}"


def test_crossing_needs_the_velocity():
    """Without motion history (a fresh tracker on frames 20 and 21) the swap fools the tracker: the
    test above passes thanks to the Kalman velocity, not to the geometry."""
    tracker = ByteTracker()
    assert update(tracker, 0, list(crossing(20))) == [1, 2]
    assert update(tracker, 1, list(crossing(21))) == [2, 1]


def track(tracker: ByteTracker, frames: dict[int, list], fps: float = FPS, scores=None) -> dict[int, list[int]]:
    """Update on every frame from 0 to the last key, with no detections on the frames not given."""
    return {k: update(tracker, k, frames.get(k, []), None if k not in frames or scores is None else scores[k],
                      fps=fps) for k in range(max(frames) + 1)}


def occluded(gap: int, fps: float = FPS, tracker: ByteTracker | None = None) -> list[list[int]]:
    """An object moving 2 px/frame, seen on frames 0-9, hidden `gap` frames, then seen 3 frames:
    its ids on those last 3 frames."""
    seen = list(range(10)) + [10 + gap + k for k in range(3)]
    ids = track(tracker or ByteTracker(frame_rate=fps), {k: [box(100 + 2 * k, 200)] for k in seen}, fps)
    return [ids[k] for k in seen[-3:]]


def test_occlusion_within_the_buffer_keeps_the_id():
    # last match on frame 9; lost from frame 10; track_buffer 30: a lost track more than 30 frames
    # after its last match is removed after that frame's matching, so frame 40 still finds it
    assert occluded(gap=30) == [[1], [1], [1]]


def test_occlusion_beyond_the_buffer_gets_a_new_id():
    assert occluded(gap=31) == [[-1], [2], [2]]  # a new track: unconfirmed, then id 2


def test_buffer_counts_frames_of_a_30_fps_video():
    """At 60 fps, track_buffer 30 keeps a lost track 60 frames (ByteTrack's frame_rate / 30 scaling)."""
    assert ByteTracker(frame_rate=60.0).max_lost_frames == 60
    assert occluded(gap=60, fps=60.0) == [[1], [1], [1]]
    assert occluded(gap=61, fps=60.0) == [[-1], [2], [2]]


def test_low_score_detections_keep_a_track_alive():
    """40 frames (more than the buffer) of scores in (track_low_thresh, track_high_thresh)."""
    tracker = ByteTracker()
    scores = [0.9] * 5 + [0.15] * 40 + [0.9] * 3
    ids = [update(tracker, k, [box(100 + 2 * k, 200)], [s]) for k, s in enumerate(scores)]
    assert ids == [[1]] * len(scores)


def test_without_the_low_score_detections_the_track_is_lost():
    tracker = ByteTracker()
    ids = track(tracker, {k: [box(100 + 2 * k, 200)] for k in list(range(5)) + [45, 46]})
    assert [ids[45], ids[46]] == [[-1], [2]]


def test_low_score_detections_never_start_tracks():
    tracker = ByteTracker()
    assert [update(tracker, k, [box(100, 200)], [0.2]) for k in range(3)] == [[-1]] * 3


def moving(k: int) -> list[float]:
    return box(100 + 10 * k, 200)  # 10 px/frame, 40 px wide


def test_dropped_frames_are_predicted_over():
    """After 10 dropped frames the object is 110 px from its last box: only an 11-step prediction
    still overlaps it."""
    tracker = ByteTracker()
    assert [update(tracker, k, [moving(k)]) for k in range(30)] == [[1]] * 30
    predicted = tracker.predict(time=40 / FPS).boxes[0]
    np.testing.assert_allclose(predicted, moving(40), atol=4.0)
    assert update(tracker, 40, [moving(40)]) == [1]
    assert update(tracker, 41, [moving(41)]) == [1]


def test_a_tracker_that_counted_frames_would_lose_the_object():
    """The same detections given as consecutive frames (one step apart): a new id."""
    tracker = ByteTracker()
    for k in range(30):
        update(tracker, k, [moving(k)])
    assert update(tracker, 30, [moving(40)]) == [-1]


def test_jittery_timestamps_predict_fractions_of_a_frame():
    """Timestamps from a millisecond clock (33, 67, 100, ... ms) track like exact k / 30 s ones."""
    exact, rounded = ByteTracker(), ByteTracker()
    for k in range(20):
        boxes, scores, labels = np.array([moving(k)], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int64)
        assert exact.update(boxes, scores, labels, time=k / FPS).tolist() == [1]
        assert rounded.update(boxes, scores, labels, time=round(k / FPS, 3)).tolist() == [1]
    np.testing.assert_allclose(rounded.predict(1.0).boxes, exact.predict(1.0).boxes, atol=0.5)
    assert abs(exact.predict(1.0).boxes[0, 0] - exact.predict(1.0 - 0.5 / FPS).boxes[0, 0] - 5.0) < 0.5


def test_a_lost_track_keeps_its_size():
    """Lost tracks have their height velocity zeroed (as in Ultralytics): an object that grew 8 px
    per frame, then hid 29 frames, is found again at the size it was last seen at."""
    frames = {k: [box(300, 300, 50 + 8 * k, 50 + 8 * k)] for k in range(10)}
    frames.update({k: [box(300, 300, 122, 122)] for k in range(39, 42)})
    ids = track(ByteTracker(), frames)
    assert [ids[k] for k in (9, 39, 40, 41)] == [[1], [1], [1], [1]]


def test_a_lost_track_under_a_longer_tracked_one_is_dropped():
    """Object 1 (static) is lost on frame 10; object 2, tracked since frame 0, passes over the lost
    track on frame 15 (box IoU 0.89 > 0.85): the same object twice, so the lost track, matched
    over a shorter time, goes. Object 1 back on frame 30 is then a new object."""
    frames = {k: ([box(300, 200, 100, 100)] if k < 10 or k >= 30 else []) + [box(150 + 10 * k, 206, 100, 100)]
              for k in range(33)}
    ids = track(ByteTracker(), frames)
    assert [ids[k] for k in (9, 15, 29, 30, 31, 32)] == [[1, 2], [2], [2], [-1, 2], [3, 2], [3, 2]]


def triangle(region: tuple[int, int, int, int], upper_left: bool) -> MaskCrop:
    """The upper-left (x + y < size) or lower-right half of a square region."""
    x0, y0, x1, _ = region
    yy, xx = np.mgrid[0:x1 - x0, 0:x1 - x0]
    inside = xx + yy < (x1 - x0) - 1 if upper_left else xx + yy > (x1 - x0) - 1
    return MaskCrop(region, inside)


def swap_sequence(match: str) -> list[list[int]]:
    """Two objects in nearly the same box, one the upper-left half, one the lower-right half; they
    move 10 px in opposite directions, so each lands on the other's box."""
    tracker = ByteTracker(match=match)
    a0, b0 = (0, 0, 100, 100), (10, 10, 110, 110)
    first = update(tracker, 0, [a0, b0], masks=[triangle(a0, True), triangle(b0, False)])
    second = update(tracker, 1, [b0, a0], masks=[triangle(b0, True), triangle(a0, False)])
    return [first, second]


def test_mask_matching_separates_objects_whose_boxes_overlap():
    assert swap_sequence("mask") == [[1, 2], [1, 2]]


def test_box_matching_swaps_them():
    assert swap_sequence("box") == [[1, 2], [2, 1]]


def test_mask_matching_needs_masks():
    with pytest.raises(ValueError, match="needs the detections' masks"):
        update(ByteTracker(match="mask"), 0, [box(100, 100)])


def test_minus_one_rule():
    tracker = ByteTracker()
    # first update: tracks start confirmed; a low score, a degenerate box and a score below
    # track_low_thresh get no id
    first = update(tracker, 0, [box(100, 100), box(300, 100), [5, 5, 5, 50], box(500, 100)],
                   [0.9, 0.2, 0.9, 0.05])
    assert first == [1, -1, -1, -1]
    # a new object: -1 while its track is unconfirmed, its id from the next frame
    assert update(tracker, 1, [box(100, 100), box(700, 300)]) == [1, -1]
    assert update(tracker, 2, [box(100, 100), box(700, 300)]) == [1, 2]
    # a detection seen once starts an unconfirmed track that is dropped: its id is spent
    assert update(tracker, 3, [box(100, 100), box(700, 300), box(900, 500)]) == [1, 2, -1]
    assert update(tracker, 4, [box(100, 100), box(700, 300)]) == [1, 2]
    assert update(tracker, 5, [box(100, 100), box(700, 300), box(300, 500)]) == [1, 2, -1]
    assert update(tracker, 6, [box(100, 100), box(700, 300), box(300, 500)]) == [1, 2, 4]


def test_ids_are_unique_and_never_reused():
    """A busy scene (objects drifting, missed, replaced, scores anywhere in [0.05, 1]): no id twice
    in a frame, ids from 1, and every id first shown is larger than all ids shown before (a
    removed track's id never comes back)."""
    rng = np.random.default_rng(5)
    tracker = ByteTracker(TrackerConfig(track_buffer=5))
    centres = rng.uniform(0, 800, size=(25, 2))
    shown: set[int] = set()
    for k in range(150):
        replaced = rng.random(25) < 0.03
        centres[replaced] = rng.uniform(0, 800, size=(int(replaced.sum()), 2))
        centres += rng.normal(0, 2, size=centres.shape)
        visible = rng.random(25) > 0.1
        scores = rng.uniform(0.05, 1, int(visible.sum()))
        ids = [i for i in update(tracker, k, [box(x, y) for x, y in centres[visible]], scores) if i >= 0]
        assert len(ids) == len(set(ids))
        new = set(ids) - shown
        assert all(i >= 1 for i in ids)
        assert not shown or not new or min(new) > max(shown)
        shown |= new
    assert len(shown) > 60


def test_reset_starts_ids_again():
    tracker = ByteTracker()
    update(tracker, 0, [box(100, 100), box(300, 100)])
    tracker.reset()
    assert update(tracker, 0, [box(300, 100)]) == [1]  # time may start over, too


def test_predict_moves_tracks_without_changing_the_tracker():
    def frame(k: int) -> tuple[list, list[MaskCrop]]:
        boxes = [box(100 + 4 * k, 200), box(400, 300)]
        regions = [tuple(int(v) for v in b) for b in boxes]
        return boxes, [MaskCrop(r, np.ones((r[3] - r[1], r[2] - r[0]), np.bool_)) for r in regions]

    tracker, twin = ByteTracker(), ByteTracker()
    for k in range(8):
        for t in (tracker, twin):
            update(t, k, frame(k)[0], masks=frame(k)[1])
    shown = tracker.predict(time=12 / FPS)
    assert shown.ids.tolist() == [1, 2]
    assert shown.boxes.dtype == np.float32 and shown.boxes.shape == (2, 4)
    np.testing.assert_allclose(shown.boxes[0], box(100 + 4 * 12, 200), atol=3.0)
    for crop, predicted in zip(shown.masks, shown.boxes):  # the crops moved with the boxes
        assert crop.mask.shape == (60, 40)
        np.testing.assert_allclose(crop.region, predicted, atol=1.0)
    for k in (12, 13):
        boxes, masks = frame(k)
        assert update(tracker, k, boxes, masks=masks) == update(twin, k, boxes, masks=masks) == [1, 2]


def test_predict_omits_lost_and_unconfirmed_tracks():
    tracker = ByteTracker()
    update(tracker, 0, [box(100, 100), box(300, 100)])
    update(tracker, 1, [box(100, 100), box(600, 400)])  # 2 is lost, the new one unconfirmed
    shown = tracker.predict(time=1 / FPS)
    assert shown.ids.tolist() == [1]
    assert shown.masks == [None]


def test_time_must_not_go_back():
    tracker = ByteTracker()
    update(tracker, 5, [box(100, 100)])
    with pytest.raises(ValueError, match="before the previous update"):
        update(tracker, 4, [box(100, 100)])
    with pytest.raises(ValueError, match="before the previous update"):
        tracker.predict(time=0.0)
    with pytest.raises(ValueError, match="finite"):
        tracker.predict(time=float("nan"))


def test_inputs_are_checked():
    tracker = ByteTracker()
    with pytest.raises(ValueError, match=r"boxes \[N, 4\], scores \[N\], labels \[N\]"):
        tracker.update(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int64), time=0.0)
    with pytest.raises(ValueError, match="1 masks for 2 detections"):
        update(tracker, 0, [box(1, 1), box(5, 5)], masks=[MaskCrop((0, 0, 0, 0), np.zeros((0, 0)))])
    with pytest.raises(ValueError, match="frame_rate"):
        ByteTracker(frame_rate=0)


def test_labels_follow_the_latest_detection():
    """Association ignores classes (as Ultralytics): a class flip keeps the id; the track takes the label."""
    tracker = ByteTracker()
    for k, label in enumerate([3, 3, 5]):
        ids = tracker.update(np.array([box(100, 100)], np.float32), np.array([0.9], np.float32),
                             np.array([label]), time=k / FPS)
        assert ids.tolist() == [1]
    assert tracker.predict(2 / FPS).labels.tolist() == [5]


def test_gap_buffer_lets_a_small_fast_object_be_confirmed_across_skipped_frames():
    """A 12 px object moving 4 px a frame, detected every third frame (a detector interval of 3):
    consecutive boxes 12 px apart do not overlap, so plain IoU can never confirm its track. Grown
    by 0.3 x (3 - 1) = 0.6 of their size a side, they overlap with IoU 14.4 / (2 x 26.4 - 14.4) =
    0.375 (x 0.9 score = 0.34 >= 1 - 0.7, the unconfirmed-match limit): confirmed at its second
    detection. An anchor object, detected from the start, makes the small one a later, unconfirmed track."""
    def run(gap_buffer: float) -> list[list[int]]:
        tracker = ByteTracker(TrackerConfig(gap_buffer=gap_buffer))
        out = []
        for k in range(0, 30, 3):
            boxes = [box(500, 400, 60, 60)] + ([box(100 + 4 * k, 100, 12, 12)] if k >= 3 else [])
            out.append(update(tracker, k, boxes))
        return out

    assert run(0.0)[1:] == [[1, -1]] * 9  # never confirmed
    assert run(0.3)[1:] == [[1, -1]] + [[1, 2]] * 8
    every_frame = ByteTracker(TrackerConfig(gap_buffer=5.0))  # no gap, no buffer: plain ByteTrack
    assert [update(every_frame, k, [box(100 + 13 * k, 100, 12, 12)]) for k in range(3)] == [[1], [-1], [-1]]


def test_a_small_fast_object_is_confirmed_and_kept_at_every_frame():
    """A 14 px object moving 10 px a frame, detected on every frame, appearing after an anchor (so
    its track starts unconfirmed). Plain ByteTrack (Ultralytics): consecutive boxes overlap with
    IoU 4 / 24 = 0.17 (x 0.95 < 1 - 0.7), so it is never confirmed. Grown by unconfirmed_buffer
    0.3 a side (22.4 px boxes, IoU 12.4 / 32.4 = 0.38, x 0.95 = 0.36 >= 0.3) it is confirmed at its
    second detection, and with the velocity between its two detections the Kalman prediction
    lands on the third (at rest it would be 10 px behind: lost again, a new id)."""
    def run(**keys) -> list[list[int]]:
        tracker = ByteTracker(TrackerConfig(**keys))
        return [update(tracker, k, [box(500, 400, 60, 60)] + ([box(100 + 10 * k, 100, 14, 14)] if k else []),
                       scores=[0.95] * (1 + bool(k))) for k in range(8)]

    assert run(unconfirmed_buffer=0.0, confirm_velocity=False)[1:] == [[1, -1]] * 7
    assert run()[1:] == [[1, -1]] + [[1, 2]] * 6
    at_rest = run(confirm_velocity=False)[1:]
    assert at_rest[1] == [1, 2] and at_rest[2] == [1, -1]  # confirmed, then lost: it did not move
