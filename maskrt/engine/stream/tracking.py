"""Tracking as a per-frame step: identities on every frame, and detector intervals.

`TrackingStep` (a FrameStep, steps.py) runs maskrt.tracking's ByteTracker on the engine's
detections and gives each one its track id (`Detections.track_ids`, -1 for a detection not
matched to a confirmed track). With an interval the engine skips frames: on those, every
confirmed track that the last engine frame found is predicted to the frame's time: its last
detection's box moved as the Kalman filter's constant-velocity centre moved since that frame
(the size kept: TrackingStep._moved_boxes), and its last mask carried with it (the same 28x28
mask probabilities pasted into the moved box, resampled where the image edge clips it); such instances are
marked `Detections.propagated` and keep the track's last score and label. Every frame thus gets
an output, at a fraction of the engine's cost.

Intervals (`parse_interval`):
- N >= 1: the engine runs on a frame when at least N frame indices have passed since the frame it
  last ran on (the first frame always), so frames a real-time run dropped do not stall it.
- "auto" (real time only): the engine runs on a frame when no newer frame is waiting behind it,
  so it runs as often as the machine allows while every frame of the source gets an output; see
  AutoInterval. The step then asks the pipeline for a backlog of about a second of frames
  (steps.py), which it works off with predictions.

Duplicates: Mask R-CNN suppresses overlapping boxes per class, so one object is often found twice
under two classes. Before association, a detection whose box overlaps a higher-scoring one's with
IoU above the tracker's `duplicate_iou` (0.7), whatever its class, is dropped (from the output
too): one object, one identity.

The tracker runs on time, not frame counts (the frame's timestamp, or index / frame_rate when
frames have none): frames dropped in real time are predicted over.

The tracker needs the low-score detections too (ByteTrack's second association takes those in
(track_low_thresh, track_high_thresh)): load the model with score_threshold <= track_low_thresh
(maskrt.load's default 0.05 is) and filter what is reported with the stream's min_score, which
applies after this step.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time as _time
from pathlib import Path

import numpy as np

from ...errors import MaskrtError
from ...tracking import ByteTracker, MaskCrop, TrackerConfig
from ...tracking.boxes import duplicates
from ...tracking.config import MATCH_MODES
from ..detections import Detections
from .steps import FrameStep

AUTO = "auto"
MAX_AUTO_INTERVAL_S = 1.0  # "auto" runs the engine at least once a second of video, however late


def parse_interval(value, name: str = "--interval") -> int | str:
    """A positive int, or "auto"; strings of digits are ints. Anything else: one MaskrtError line."""
    if isinstance(value, str):
        text = value.strip()
        if text == AUTO:
            return AUTO
        if text.isdigit():
            value = int(text)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise MaskrtError(f"{name} must be a positive integer or 'auto', got {value!r}")


def tracker_config(tracker=None, match: str | None = None) -> TrackerConfig:
    """The TrackerConfig for `tracker`: None (Ultralytics' ByteTrack defaults), a YAML path, a
    mapping of settings or a TrackerConfig; `match` ("box" or "mask") overrides its match key.
    Every problem: one MaskrtError line (tracking.config)."""
    if tracker is None:
        config = TrackerConfig()
    elif isinstance(tracker, TrackerConfig):
        config = tracker
    elif isinstance(tracker, (str, Path)):
        config = TrackerConfig.from_yaml(tracker)
    elif isinstance(tracker, dict):
        config = TrackerConfig.from_dict(tracker)
    else:
        raise MaskrtError(f"tracker must be a YAML path, a mapping or a TrackerConfig, got {type(tracker).__name__}")
    if match is None:
        return config
    if match not in MATCH_MODES:
        raise MaskrtError(f"--match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
    return dataclasses.replace(config, match=match)


@dataclasses.dataclass(frozen=True)
class TrackingOptions:
    """Checked tracking settings of a stream: the tracker's config (match applied) and the
    interval (int >= 1 or "auto"); `options(tracker, match, interval)` checks raw values."""

    config: TrackerConfig
    interval: int | str = 1

    @classmethod
    def options(cls, tracker=None, match: str | None = None, interval=None) -> "TrackingOptions":
        """From raw settings (see tracker_config, parse_interval; interval None: 1)."""
        return cls(tracker_config(tracker, match), parse_interval(1 if interval is None else interval))

    def step(self, source, realtime: bool) -> "TrackingStep":
        """The TrackingStep for an opened source (its frame rate; 30 when unknown)."""
        if self.interval == AUTO and not realtime:
            raise MaskrtError("--interval auto needs real time (--realtime, realtime=True; on by default for "
                              "cameras and URLs): offline, every frame is segmented anyway")
        return TrackingStep(self.config, frame_rate=source.fps or 30.0, interval=self.interval)

    def score_thresholds(self, report: float) -> tuple[float, float]:
        """(the model's own score threshold, the report filter min_score) for a report threshold:
        the model keeps what ByteTrack's second association needs (scores above track_low_thresh)
        and `report` filters what is written, after association."""
        return min(report, self.config.track_low_thresh), report


class FixedInterval:
    """The engine on the first frame, then whenever `interval` frame indices have passed."""

    def __init__(self, interval: int):
        self.interval = interval
        self._last: int | None = None

    def wants(self, index: int, time: float | None) -> bool:
        if self._last is not None and index - self._last < self.interval:
            return False
        self._last = index
        return True


class AutoInterval:
    """The engine on a frame that is fresh: no newer frame can be waiting behind it.

    A live frame with timestamp t becomes available at about c + t on the wall clock (`clock`,
    seconds), for a constant c: real-time file sources are paced so, cameras and URLs stamp frames
    with the wall clock. c is estimated as the smallest (now - t) seen when the inference thread
    asks, and lag = now - t - c is how long the frame has waited. A frame that waited less than
    one frame period (1 / frame_rate) has no successor yet: the engine runs on it. The frames
    that queued while the engine ran are older: they get predictions, quickly, until the newest
    one is reached. The engine also runs on a frame at least every max_interval_s of video, so
    the tracker keeps seeing detections when even predictions cannot keep up. Frames without a
    timestamp always run the engine.
    """

    def __init__(self, frame_rate: float, max_interval_s: float = MAX_AUTO_INTERVAL_S, clock=_time.perf_counter):
        self.period = 1.0 / frame_rate
        self.max_interval_s = max_interval_s
        self.clock = clock
        self._base = math.inf
        self._last: float | None = None

    def wants(self, index: int, time: float | None) -> bool:
        if time is None:
            return True
        offset = self.clock() - time
        self._base = min(self._base, offset)
        fresh = offset - self._base < self.period
        due = self._last is None or time - self._last >= self.max_interval_s
        if fresh or due:
            self._last = time
            return True
        return False


class TrackingStep(FrameStep):
    """ByteTrack ids on every frame, and detector intervals (see the module docstring).

    config: TrackerConfig (tracker_config makes one); frame_rate: the source's nominal frames per
    second (the tracker's time unit, and the period of "auto"); match: "box" or "mask" overrides
    config.match; interval: int >= 1 or "auto". Counts: `engine_frames`, `propagated_frames`,
    `propagated_instances`.
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0, match: str | None = None,
                 interval: int | str = 1):
        config = tracker_config(config, match)
        interval = parse_interval(interval, "interval")
        self.frame_rate = float(frame_rate) if frame_rate and frame_rate > 0 else 30.0
        self.tracker = ByteTracker(config, self.frame_rate)
        self.interval = interval
        self.schedule = AutoInterval(self.frame_rate) if interval == AUTO else FixedInterval(interval)
        if interval == AUTO:
            self.backlog = max(2, math.ceil(self.frame_rate * MAX_AUTO_INTERVAL_S))
        elif interval > 1:
            self.backlog = 2 * interval
        # track id -> its last detection's (mask probs float32 [M, M], box float64 [4] xyxy)
        self._last: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._updated: float | None = None  # time of the last engine frame
        self._paste_mode = "torchvision"
        self.engine_frames = self.propagated_frames = self.propagated_instances = 0

    @property
    def match(self) -> str:
        return self.tracker.config.match

    def wants_inference(self, index: int, time: float | None) -> bool:
        return self.schedule.wants(index, time)

    def process(self, work, dets: Detections | None) -> Detections:
        t = work.time if work.time is not None else work.index / self.frame_rate
        if dets is None:
            self.propagated_frames += 1
            carried = self._carried(t, work.image.shape[:2])
            self.propagated_instances += len(carried)
            return carried
        self.engine_frames += 1
        dropped = duplicates(dets.boxes, dets.scores, self.tracker.config.duplicate_iou)
        if dropped.any():  # one object detected as two classes (NMS is per class): one track
            dets = dets.filter(~dropped)
        masks = None
        if self.match == "mask":
            if dets.mask_probs.ndim != 3 or 0 in dets.mask_probs.shape[1:]:
                raise MaskrtError("--match mask needs instance masks, and this model's detections have none: "
                                  "use --match box")
            masks = _mask_crops(dets)
        ids = self.tracker.update(dets.boxes, dets.scores, dets.labels, t, masks)
        self._paste_mode = dets.paste_mode  # carried masks are pasted as the model pastes its own
        for k in np.flatnonzero(ids >= 0).tolist():
            self._last[int(ids[k])] = (dets.mask_probs[k], np.asarray(dets.boxes[k], np.float64))
        live = set(self.tracker.live_ids().tolist())
        self._last = {i: last for i, last in self._last.items() if i in live}
        self._updated = t
        return dets.with_tracks(ids)

    def _carried(self, t: float, size: tuple[int, int]) -> Detections:
        """The confirmed tracks predicted to time t, their last masks carried: Detections at `size`."""
        objects = self.tracker.predict(t)
        rows = [k for k, i in enumerate(objects.ids.tolist()) if i in self._last]
        boxes = self._moved_boxes(objects.ids[rows], objects.boxes[rows], t)
        probs = np.stack([self._last[int(i)][0] for i in objects.ids[rows]]) if rows else np.zeros((0, 28, 28), np.float32)
        clipped = boxes.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, size[1])
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, size[0])
        inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        probs = reframe_probs(probs[inside], boxes[inside], clipped[inside])
        scores = objects.scores[rows][inside]
        order = np.argsort(-scores, kind="stable")
        dets = Detections.from_tensors(clipped[inside][order], scores[order], objects.labels[rows][inside][order],
                                       probs[order], size, paste_mode=self._paste_mode)
        ids = objects.ids[rows][inside][order]
        return dets.with_tracks(ids, np.ones(len(ids), np.bool_))

    def _moved_boxes(self, ids: np.ndarray, predicted: np.ndarray, t: float) -> np.ndarray:
        """float64 [K, 4] xyxy: the last detection box of each track `ids` (int64 [K]) moved by its
        Kalman centre's displacement from the last engine frame to time t (`predicted`: float [K, 4],
        the tracks' Kalman boxes at t). The size stays the detection's: the filter's aspect ratio
        follows measurements slowly by design (ByteTrack's noise model), so its box stretches an
        object whose box changed shape, e.g. one entering the frame through an edge."""
        if not len(ids):
            return np.zeros((0, 4))
        then = self.tracker.predict(self._updated)
        row = {int(i): k for k, i in enumerate(then.ids.tolist())}
        before = then.boxes[[row[int(i)] for i in ids]].astype(np.float64)
        centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
        move = centre(predicted.astype(np.float64)) - centre(before)
        return np.stack([self._last[int(i)][1] for i in ids]) + np.concatenate([move, move], axis=1)


def _mask_crops(dets: Detections) -> list[MaskCrop]:
    """Each detection's own mask over its integer region (the fused paste's crops)."""
    pasted = dets.instances
    return [MaskCrop(tuple(region), pasted.crop(i).numpy()) for i, region in enumerate(pasted.regions.tolist())]


def reframe_probs(probs: np.ndarray, from_boxes: np.ndarray, to_boxes: np.ndarray) -> np.ndarray:
    """Mask probabilities over from_boxes resampled over to_boxes (the same image content).

    probs: float32 [K, M, M], cell (r, c) covering the box's r-th row band and c-th column band;
    from_boxes, to_boxes: float [K, 4] xyxy. Each to-box cell centre is located in its from-box
    grid and the probability there is interpolated bilinearly (clamped at the grid's edge), so a
    box clipped to the image keeps the mask it had over the part inside. Boxes equal: unchanged.
    """
    if not len(probs):
        return probs.astype(np.float32)
    m = probs.shape[1]
    centres = (np.arange(m) + 0.5) / m  # [M] cell centres in box units
    out = np.empty_like(probs, dtype=np.float32)
    for k in range(len(probs)):
        if np.array_equal(from_boxes[k], to_boxes[k]):
            out[k] = probs[k]
            continue
        ys = _grid_coords(centres, from_boxes[k, 1], from_boxes[k, 3], to_boxes[k, 1], to_boxes[k, 3], m)
        xs = _grid_coords(centres, from_boxes[k, 0], from_boxes[k, 2], to_boxes[k, 0], to_boxes[k, 2], m)
        out[k] = _bilinear(probs[k], ys, xs)
    return out


def _grid_coords(centres: np.ndarray, f0: float, f1: float, t0: float, t1: float, m: int) -> np.ndarray:
    """Positions (in from-grid cell units, centre of cell j at j) of the to-box's cell centres."""
    pixels = t0 + centres * (t1 - t0)
    return (pixels - f0) / max(f1 - f0, 1e-9) * m - 0.5


def _bilinear(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """grid float [M, M] sampled at rows ys [M] x columns xs [M] (clamped to the grid)."""
    m = grid.shape[0]
    ys, xs = ys.clip(0, m - 1), xs.clip(0, m - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, m - 1), np.minimum(x0 + 1, m - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)
