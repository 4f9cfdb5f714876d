"""Tracked runs of synthetic clips, scored against their ground truth; the greedy baseline.

Shared by the interval benchmark (test_intervals.py) and tools/tracking_figures.py:
- `make_clip`: a 240x320 30 fps shapes clip with tracking events (maskrt.data.motion);
- `run_clip`: one clip through `seg.stream(track=True, interval=...)` with the JSON record of
  every frame made (what `maskrt run --json` pays: the paste and RLE of every instance), timed;
  offline, or `realtime=True` to play the file as a live source at its frame rate;
- `default_records`, `greedy_records`: the baseline tracker of the issue: frame-to-frame greedy
  matching by mask IoU of the default detections (`maskrt run` without --track, scores >= 0.5),
  with no memory and no motion model;
- `score`: HOTA, IDF1, ... by box and mask IoU (maskrt.evaluation.tracking).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskrt.data import generate_video
from maskrt.engine.stream import RecordsSink
from maskrt.evaluation.tracking import video_tracking
from maskrt.tracking import MaskCrop, mask_iou

SIZE = (240, 320)
FPS = 30
FRAMES = 150
EVENTS = {"crossings": 2, "occluders": 1, "returns": 2, "speed_changes": 2, "pan": 30.0}
GREEDY_MIN_IOU = 0.5


def make_clip(folder: Path, seed: int, frames: int = FRAMES, events: dict | None = None) -> Path:
    """folder/clip-SEED.mp4 (and its ground truth .json), made once. events: the VideoEvents
    settings (maskrt.data.motion); None: EVENTS; {}: none, the generator's default motion (every
    object crosses the frame once at a constant velocity)."""
    path = Path(folder) / f"clip-{seed}.mp4"
    if not path.exists() or not path.with_suffix(".json").exists():
        generate_video(path, num_frames=frames, fps=FPS, size=SIZE, seed=seed, **(EVENTS if events is None else events))
    return path


@dataclass
class ClipRun:
    """One run: records (the JSON lines), wall seconds from opening the clip to its last frame,
    frames output, engine calls, frames dropped, seconds spent in the tracking step, and the CPU
    seconds the process used meanwhile (all threads: on a machine shared with other jobs, the
    wall time grows with their load, the CPU time much less)."""

    records: list[dict]
    seconds: float
    frames: int
    engine_calls: int
    dropped: int
    tracking_seconds: float
    cpu_seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def engine_per_s(self) -> float:
        return self.engine_calls / self.seconds

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_seconds / self.frames


def run_clip(seg, clip: Path, interval: int | str = 1, realtime: bool = False, match: str = "box",
             min_score: float = 0.5) -> ClipRun:
    """`clip` through seg.stream with tracking; `seg` should keep scores down to 0.1 (the tracker's
    low threshold) and `min_score` filters the report, as `maskrt run --track` does."""
    sink = RecordsSink()
    t0, cpu0 = time.perf_counter(), time.process_time()
    with seg.stream(str(clip), realtime=realtime, track=True, interval=interval, match=match,
                    min_score=min_score, sinks=[sink]) as stream:
        step = stream.tracking
        spent = [0.0]
        process = step.process

        def timed(work, dets):
            s = time.perf_counter()
            try:
                return process(work, dets)
            finally:
                spent[0] += time.perf_counter() - s

        step.process = timed
        for _ in stream:
            pass
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        summary = stream.stats.summary()
    return ClipRun(sink.records, seconds, summary["frames"], step.engine_frames, summary["dropped"], spent[0],
                   cpu, summary)


def default_records(seg, clip: Path, min_score: float = 0.5) -> list[dict]:
    """The records of `clip` without tracking, reported at min_score: what `maskrt run --json`
    writes by default, the detections the greedy baseline is given."""
    sink = RecordsSink()
    with seg.stream(str(clip), min_score=min_score, sinks=[sink]) as stream:
        for _ in stream:
            pass
    return sink.records


def _crop(segmentation: dict) -> MaskCrop:
    from pycocotools import mask as mask_utils

    rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return MaskCrop.from_full(mask_utils.decode(rle).astype(bool))


def greedy_records(records: list[dict], min_iou: float = GREEDY_MIN_IOU) -> list[dict]:
    """The records with track ids from greedy frame-to-frame mask-IoU matching: each instance takes
    the id of the previous frame's instance it overlaps most (pairs taken by decreasing IoU, each
    used once, IoU >= min_iou); the others get new ids. Every reported instance is kept."""
    out, previous, next_id = [], ([], []), 1
    for record in records:
        crops = [_crop(inst["segmentation"]) for inst in record["instances"]]
        ids = [-1] * len(crops)
        if crops and previous[0]:
            iou = mask_iou(crops, previous[0])
            while iou.size and iou.max() >= min_iou:
                i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
                ids[i] = previous[1][j]
                iou[i, :], iou[:, j] = -1.0, -1.0
        for i in range(len(ids)):
            if ids[i] < 0:
                ids[i], next_id = next_id, next_id + 1
        out.append({**record, "instances": [{**inst, "track_id": t} for inst, t in zip(record["instances"], ids)]})
        previous = (crops, ids)
    return out


def score(records: list[dict], clip: Path) -> dict:
    """{"box": {...}, "mask": {...}} tracking metrics of `records` against the clip's ground truth."""
    return video_tracking(records, json.loads(clip.with_suffix(".json").read_text()))
