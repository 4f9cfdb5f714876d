"""ByteTrack multi-object tracking, as Ultralytics implements it (ultralytics/trackers/byte_tracker.py),
driven by timestamps instead of frame counts.

One `update` per frame on which the detector ran:

1. Every confirmed track, tracked or lost, is predicted to the frame's time by the Kalman filter
   (kalman.py: the elapsed time in nominal frame intervals, 1 / frame_rate, so dropped frames
   are predicted over; lost tracks have their height velocity zeroed first, as in Ultralytics).
   Unconfirmed tracks (seen once) are not predicted, as in Ultralytics: their velocity is zero.
2. First association: those tracks against the detections scoring >= track_high_thresh; cost
   1 - IoU, times the detection score when fuse_score (1 - IoU * score); limit match_thresh.
3. Second association: the tracks still unmatched that were tracked (not lost) against the
   detections scoring in (track_low_thresh, track_high_thresh); cost 1 - IoU, limit 0.5.
   Tracked tracks still unmatched become lost.
4. Third association: unconfirmed tracks against the high detections left; cost as in 2,
   limit 0.7. An unconfirmed track matched here is confirmed; one left unmatched is removed.
   maskrt's own, on by default (`unconfirmed_buffer`, `confirm_velocity`; both off: exactly
   Ultralytics): an unconfirmed track has no velocity yet, so a small object moving more than
   about half its size a frame never overlaps its first box and is never confirmed; here the
   boxes are compared grown by unconfirmed_buffer (0.3) of their size on each side (C-BIoU's
   buffered IoU, below), and a track confirmed starts on its second box with its centre moving
   at the velocity between its two detections (aspect and height at rest), where Ultralytics
   starts it at rest and loses it again on the next frame when it moves fast.
5. Each high detection left that scores >= new_track_thresh starts an unconfirmed track (a
   track born on the tracker's first update is confirmed at once, as Ultralytics does on frame 1).
6. A track that was already lost before this update and is still lost after its associations
   is removed if more than max_lost_frames nominal frame intervals have passed since it was
   last matched: floor(frame_rate / 30 * track_buffer), ByteTrack's scaling of the buffer (as
   in earlier Ultralytics releases; 8.4.190, the oracle here, counts track_buffer frames at any
   rate: the same at 30 fps), so track_buffer counts frames of a 30 fps video, about
   track_buffer / 30 s.
7. Duplicates: a tracked and a lost track whose boxes overlap with IoU > 0.85 are one object;
   the one matched over the shorter time span is dropped (on a tie, the tracked one).

Gaps (maskrt's own, `gap_buffer`): when g > 1 nominal frame intervals separate two updates (a
detector interval, dropped frames), box IoU compares the boxes grown by gap_buffer * (g - 1) of
their width and height on each side, the buffered IoU of C-BIoU (Yang et al., WACV 2023), so that
a new track, which has no velocity yet, and a track whose prediction is off can still be matched
after the larger motion of a gap. With an update on every frame (g = 1) it is plain ByteTrack.

Assignments use lapjv's cost-limit semantics (assignment.py). IoU is box IoU, or with
match="mask" mask IoU between each track's last mask crop carried to its predicted box
(masks.carry_mask) and each detection's crop; step 7 uses box IoU in both modes.

Time: a frame the detector skipped (no update) is predicted over, not counted as a miss; only
an update that does not find a track makes it lost, and the buffer then runs in time. So after
a long gap a tracked track can still match; if it does not, it is lost with its last match
already far back, and goes at the next update unless found then.

Differences from Ultralytics 8.4 (tests/tracking/test_ultralytics_goldens.py): Ultralytics, like
ByteTrack's reference code, leaves a track removed for exceeding the buffer in its lost list one
more frame, where it can still be re-found; maskrt removes it. Ultralytics' output box is the
Kalman state (here `predict(time)`); `update` returns ids per detection instead.

Classes: association ignores labels, as in Ultralytics; a track takes the label (and score) of
its latest detection. Mask R-CNN often flips an object between similar classes from frame to
frame, and a class-blind tracker keeps one id through such flips.

Ids start at 1, increase, and are never reused by a tracker (until `reset`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import kalman
from .assignment import match as assign
from .boxes import box_iou, xyah_to_xyxy, xyxy_to_xyah
from .config import TrackerConfig
from .masks import MaskCrop, carry_masks, mask_iou

SECOND_STAGE_LIMIT = 0.5  # Ultralytics' fixed limits for the second and third associations
UNCONFIRMED_LIMIT = 0.7
DUPLICATE_IOU = 0.85  # tracked and lost tracks overlapping more than this are one object
NOMINAL_FRAME_RATE = 30.0  # the frame rate track_buffer is counted at
TIME_TOLERANCE = 1e-6  # in nominal frame intervals: differences below it are equal (float timestamps)


@dataclass(frozen=True)
class TrackedObjects:
    """Confirmed tracks at one time.

    ids: int64 [K]; boxes: float32 [K, 4] xyxy (the Kalman state's box, predicted to that time);
    scores: float32 [K] and labels: int64 [K] of each track's latest detection; masks: [K] each
    track's latest mask crop carried to its box (masks.carry_mask), None for a track never given one.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: list[MaskCrop | None]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class _Tracks:
    """The live tracks (tracked, lost or unconfirmed) as columns of T rows, in creation order.

    ids int64 [T]; mean float64 [T, 8] and cov float64 [T, 8, 8]: Kalman state (kalman.py);
    lost bool [T]; confirmed bool [T]; start, seen float64 [T]: times of creation and of the
    latest match; scores float32 [T]; labels int64 [T]; detection int64 [T]: index of the
    latest matched detection in its frame; masks [T] latest mask crop or None; mask_boxes
    float64 [T, 4]: the detection box each mask came with.
    """

    ids: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    lost: np.ndarray
    confirmed: np.ndarray
    start: np.ndarray
    seen: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    detection: np.ndarray
    mask_boxes: np.ndarray
    masks: list[MaskCrop | None]

    @classmethod
    def empty(cls) -> "_Tracks":
        return cls(np.zeros(0, np.int64), np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros(0, np.bool_),
                   np.zeros(0, np.bool_), np.zeros(0), np.zeros(0), np.zeros(0, np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), [])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, rows: np.ndarray) -> "_Tracks":
        """The tracks at `rows` (int indices, in that order)."""
        columns = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _Tracks(**{name: ([col[i] for i in rows] if isinstance(col, list) else col[rows])
                          for name, col in columns.items()})

    def extend(self, other: "_Tracks") -> "_Tracks":
        """These tracks followed by `other`'s."""
        columns = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            columns[f.name] = mine + theirs if isinstance(mine, list) else np.concatenate([mine, theirs])
        return _Tracks(**columns)


@dataclass(frozen=True)
class _Detections:
    """One frame's detections: boxes float64 [N, 4] xyxy; scores float32 [N]; labels int64 [N];
    masks: N crops or None; valid bool [N]: finite boxes of positive width and height."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: Sequence[MaskCrop] | None
    valid: np.ndarray

    @classmethod
    def parse(cls, boxes, scores, labels, masks, need_masks: bool) -> "_Detections":
        boxes = np.asarray(boxes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        n = scores.shape[0] if scores.ndim == 1 else -1
        if boxes.shape != (n, 4) or labels.shape != (n,):
            raise ValueError(f"expected boxes [N, 4], scores [N], labels [N]; got {boxes.shape}, "
                             f"{scores.shape}, {labels.shape}")
        if masks is None and need_masks:
            raise ValueError("match='mask' needs the detections' masks")
        if masks is not None and len(masks) != n:
            raise ValueError(f"{len(masks)} masks for {n} detections")
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        valid = np.isfinite(boxes).all(axis=1) & (w > 0) & (h > 0)  # Ultralytics drops w or h <= 0 too
        return cls(boxes, scores, labels, masks, valid)

    def split(self, config: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
        """Indices int64 of the high-score and of the low-score valid detections."""
        high = self.valid & (self.scores >= config.track_high_thresh)
        low = self.valid & (self.scores > config.track_low_thresh) & (self.scores < config.track_high_thresh)
        return np.flatnonzero(high), np.flatnonzero(low)


class _Predicted:
    """Tracks as this update compares them: boxes float64 [T, 4] xyxy of the (predicted) Kalman
    means; with masks, each track's latest mask carried to its box ([T] MaskCrop)."""

    def __init__(self, tracks: _Tracks, with_masks: bool):
        self.boxes = xyah_to_xyxy(tracks.mean)
        self.masks = carry_masks(tracks.masks, tracks.mask_boxes, self.boxes) if with_masks else []


def _buffered(boxes: np.ndarray, buffer: float) -> np.ndarray:
    """Boxes float [N, 4] xyxy grown by `buffer` times their width and height on each side."""
    if not buffer:
        return boxes
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    return boxes + size * buffer * np.array([-1.0, -1.0, 1.0, 1.0])


class ByteTracker:
    """ByteTrack over timestamped frames (see the module docstring for the algorithm).

    config: TrackerConfig (defaults: Ultralytics' bytetrack.yaml). frame_rate: the nominal
    frames per second; the Kalman filter steps one 1 / frame_rate interval at a time and the
    lost-track buffer is counted in those intervals. match: "box" or "mask" overrides
    config.match.

        tracker = ByteTracker(TrackerConfig.from_yaml("bytetrack.yaml"), frame_rate=25.0)
        ids = tracker.update(boxes, scores, labels, time=frame_index / 25.0)
        shown = tracker.predict(time=next_time)  # a frame the detector skipped
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0, match: str | None = None):
        config = config or TrackerConfig()
        self.config = config if match is None else dataclasses.replace(config, match=match)
        if not (math.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
        self.frame_rate = float(frame_rate)
        self.max_lost_frames = math.floor(self.frame_rate / NOMINAL_FRAME_RATE * self.config.track_buffer)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1 and the next update is a first frame."""
        self._buffer = 0.0
        self._tracks = _Tracks.empty()
        self._next_id = 1
        self._time: float | None = None
        self._updates = 0

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, time: float,
               masks: Sequence[MaskCrop] | None = None) -> np.ndarray:
        """Track one frame's detections.

        boxes: float32 [N, 4] xyxy in image pixels; scores: float32 [N]; labels: int64 [N];
        time: the frame's timestamp in seconds, not before the previous update's; masks: N
        MaskCrop (required with match="mask", else optional and kept for `predict`).
        Returns int64 [N]: each detection's track id, or -1 for a detection that is not matched
        to a confirmed track (scoring <= track_low_thresh, a degenerate box, unmatched, the
        start of a track not yet confirmed, or matched to a track dropped as a duplicate).
        """
        dets = _Detections.parse(boxes, scores, labels, masks, self.config.match == "mask")
        steps = self._steps_to(time)
        self._time = float(time)
        self._predict_confirmed(steps)
        expiring = self._expiring()
        self._buffer = self.config.gap_buffer * max(0.0, steps - 1.0) if self._updates else 0.0
        pairs, unconfirmed_left, new_dets = self._associate(dets)
        self._apply_matches(pairs, dets)
        expired = expiring[self._tracks.lost[expiring]]
        self._add_tracks(dets, new_dets)
        self._remove(np.concatenate([unconfirmed_left, expired]))
        self._drop_duplicates()
        self._updates += 1
        return self._detection_ids(len(dets.scores))

    def predict(self, time: float) -> TrackedObjects:
        """The confirmed tracked (not lost) tracks moved to `time` (>= the last update's), without
        changing the tracker: for frames on which the detector did not run."""
        steps = self._steps_to(time)
        t = self._tracks
        rows = np.flatnonzero(t.confirmed & ~t.lost)
        boxes = xyah_to_xyxy(kalman.predict_mean(t.mean[rows], steps))
        masks: list[MaskCrop | None] = [None] * len(rows)
        have = [k for k, r in enumerate(rows) if t.masks[r] is not None]
        carried = carry_masks([t.masks[rows[k]] for k in have], t.mask_boxes[rows[have]], boxes[have])
        for k, crop in zip(have, carried):
            masks[k] = crop
        return TrackedObjects(t.ids[rows].copy(), boxes.astype(np.float32), t.scores[rows].copy(),
                              t.labels[rows].copy(), masks)

    def live_ids(self) -> np.ndarray:
        """int64 [T]: the ids of every live track (tracked, lost or unconfirmed), in creation order."""
        return self._tracks.ids.copy()

    # -- one update, step by step ------------------------------------------------------------

    def _steps_to(self, time: float) -> float:
        """Nominal frame intervals from the last update to `time` (0 before the first update)."""
        if not math.isfinite(time):
            raise ValueError(f"time must be a finite number of seconds, got {time!r}")
        if self._time is None:
            return 0.0
        if time < self._time:
            raise ValueError(f"time {time} is before the previous update's ({self._time})")
        return (time - self._time) * self.frame_rate

    def _predict_confirmed(self, steps: float) -> None:
        t = self._tracks
        rows = np.flatnonzero(t.confirmed)
        t.mean[rows], t.cov[rows] = kalman.predict(t.mean[rows], t.cov[rows], steps, frozen_height=t.lost[rows])

    def _associate(self, dets: _Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three associations. Returns (pairs int64 [K, 2] of (track row, detection index),
        unconfirmed track rows left unmatched, high detections left unmatched); tracked tracks
        left unmatched are marked lost."""
        cfg, t = self.config, self._tracks
        view = _Predicted(t, cfg.match == "mask")
        high, low = dets.split(cfg)
        first, pool_left, high_left = self._match(view, np.flatnonzero(t.confirmed), dets, high,
                                                  cfg.fuse_score, cfg.match_thresh)
        tracked_left = pool_left[~t.lost[pool_left]]
        second, unmatched, _ = self._match(view, tracked_left, dets, low, False, SECOND_STAGE_LIMIT)
        t.lost[unmatched] = True
        third, unconfirmed_left, new_dets = self._match(view, np.flatnonzero(~t.confirmed), dets, high_left,
                                                        cfg.fuse_score, UNCONFIRMED_LIMIT, cfg.unconfirmed_buffer)
        return np.concatenate([first, second, third]), unconfirmed_left, new_dets

    def _match(self, view: _Predicted, rows: np.ndarray, dets: _Detections, columns: np.ndarray,
               fuse: bool, limit: float, buffer: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Assign tracks `rows` to detections `columns` (int64 index arrays); box IoU of the boxes
        grown by the gap's buffer plus `buffer` (the stage's own).

        Returns (pairs int64 [K, 2] of (track row, detection index), unmatched rows, unmatched columns).
        """
        weights = dets.scores[columns].astype(np.float64) if fuse else np.ones(len(columns))
        if self.config.match == "mask":
            needed = np.divide(1.0 - limit, weights, out=np.full(len(columns), np.inf), where=weights > 0)
            similarity = mask_iou([view.masks[r] for r in rows], [dets.masks[c] for c in columns], needed)
        else:
            grow = self._buffer + buffer
            similarity = box_iou(_buffered(view.boxes[rows], grow), _buffered(dets.boxes[columns], grow))
        similarity *= weights[None, :]
        pairs, free_rows, free_columns = assign(1.0 - similarity, limit)
        return (np.stack([rows[pairs[:, 0]], columns[pairs[:, 1]]], axis=1), rows[free_rows],
                columns[free_columns])

    def _apply_matches(self, pairs: np.ndarray, dets: _Detections) -> None:
        """Kalman-correct the matched tracks and take their detections' score, label and mask;
        with confirm_velocity, a track confirmed now moves at the velocity between its two detections."""
        t, (rows, cols) = self._tracks, pairs.T
        confirming = ~t.confirmed[rows] & self.config.confirm_velocity
        first_centres = t.mean[rows[confirming], :2].copy()
        t.mean[rows], t.cov[rows] = kalman.update(t.mean[rows], t.cov[rows], xyxy_to_xyah(dets.boxes[cols]))
        if confirming.any():
            self._start_moving(rows[confirming], first_centres, dets.boxes[cols[confirming]])
        t.lost[rows] = False
        t.confirmed[rows] = True
        t.seen[rows] = self._time
        t.scores[rows] = dets.scores[cols]
        t.labels[rows] = dets.labels[cols]
        t.detection[rows] = cols
        if dets.masks is not None:
            t.mask_boxes[rows] = dets.boxes[cols]
            for r, c in zip(rows, cols):
                t.masks[r] = dets.masks[c]

    def _start_moving(self, rows: np.ndarray, first_centres: np.ndarray, boxes: np.ndarray) -> None:
        """Tracks `rows` (int64 [K]) confirmed now by `boxes` (float [K, 4] xyxy), first seen at
        `first_centres` (float [K, 2]): on their new box (xyah), moving at the displacement
        between the two over the time between them (aspect and height velocity stay 0)."""
        t = self._tracks
        xyah = xyxy_to_xyah(boxes)
        steps = np.maximum((self._time - t.seen[rows]) * self.frame_rate, TIME_TOLERANCE)
        t.mean[rows, :4] = xyah
        t.mean[rows, 4:6] = (xyah[:, :2] - first_centres) / steps[:, None]

    def _add_tracks(self, dets: _Detections, candidates: np.ndarray) -> None:
        """Start a track for each candidate detection scoring >= new_track_thresh."""
        cols = candidates[dets.scores[candidates] >= self.config.new_track_thresh]
        n = len(cols)
        mean, cov = kalman.initiate(xyxy_to_xyah(dets.boxes[cols]))
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        first = self._updates == 0
        times = np.full(n, self._time)
        masks = [None] * n if dets.masks is None else [dets.masks[c] for c in cols]
        born = _Tracks(ids, mean, cov, np.zeros(n, np.bool_), np.full(n, first), times, times.copy(),
                       dets.scores[cols], dets.labels[cols], cols, dets.boxes[cols], masks)
        self._tracks = self._tracks.extend(born)

    def _expiring(self) -> np.ndarray:
        """Rows of lost tracks unmatched for more than max_lost_frames: removed unless matched now."""
        t = self._tracks
        unseen = (self._time - t.seen) * self.frame_rate
        return np.flatnonzero(t.lost & (unseen > self.max_lost_frames + TIME_TOLERANCE))

    def _remove(self, rows: np.ndarray) -> None:
        keep = np.ones(len(self._tracks), dtype=np.bool_)
        keep[rows] = False
        self._tracks = self._tracks.take(np.flatnonzero(keep))

    def _drop_duplicates(self) -> None:
        """Of a tracked and a lost track with box IoU > DUPLICATE_IOU, drop the one matched over
        the shorter time span (the tracked one on a tie)."""
        t = self._tracks
        tracked, lost = np.flatnonzero(~t.lost), np.flatnonzero(t.lost)
        boxes = xyah_to_xyxy(t.mean)
        p, q = np.nonzero(box_iou(boxes[tracked], boxes[lost]) > DUPLICATE_IOU)
        if not len(p):
            return
        span = (t.seen - t.start) * self.frame_rate
        tracked_longer = span[tracked[p]] > span[lost[q]] + TIME_TOLERANCE
        self._remove(np.concatenate([lost[q][tracked_longer], tracked[p][~tracked_longer]]))

    def _detection_ids(self, n: int) -> np.ndarray:
        """int64 [n]: the id of the confirmed track each detection was matched to (or began), else -1.

        After an update the confirmed tracked tracks are exactly those matched in it (the others
        became lost), and on the first update those it began.
        """
        t = self._tracks
        rows = np.flatnonzero(t.confirmed & ~t.lost)
        ids = np.full(n, -1, dtype=np.int64)
        ids[t.detection[rows]] = t.ids[rows]
        return ids
