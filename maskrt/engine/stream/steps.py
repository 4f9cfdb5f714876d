"""Per-frame steps: what runs on each frame between detection and the sinks.

A step (tracking, a zone counter, a smoother, ...) plugs into the pipeline without editing it:
`Pipeline(..., steps=[step])` or `Segmenter.stream(source, steps=[step])`.

- `process(work, dets)` is called by the post-processing thread for every frame, in frame
  order, after the backend's detections are built and before the `min_score` filter, the JSON
  record, rendering and the sinks. `dets` is the frame's Detections, or None when the engine did
  not run on this frame (see below); it returns the frame's Detections (the same, changed, or,
  for a skipped frame, made by the step). `work` gives the frame (index, time in seconds or
  None, image [H, W, 3] uint8 RGB, name).
- `wants_inference(index, time)` is asked by the inference thread before the engine runs on a
  frame: when any step answers False, the engine skips that frame and the steps must supply its
  detections in `process` (a frame with None after every step is an error). Frames arrive at
  the inference thread ahead of post-processing (up to a few frames), so the answer cannot rely
  on `process` having seen the frames just before.

- `backlog` (frames, default 0): in real time the pipeline keeps only the newest frame waiting
  for the inference thread, dropping older ones, so that latency stays bounded. A step that
  supplies the detections of the frames it skips (at a fraction of the engine's cost) can catch
  up on a backlog instead: the pipeline then keeps up to the largest `backlog` of its steps
  waiting (at least 1), dropping the oldest beyond that (counted in stats.dropped). Offline runs
  drop nothing and ignore it.

Steps run one after another in the order given; each sees what the one before returned.
"""

from __future__ import annotations

from ..detections import Detections
from .work import Work


class FrameStep:
    """Base class of a per-frame step: runs the engine on every frame and changes nothing."""

    backlog = 0  # frames a real-time run may keep waiting for this step instead of dropping them

    def wants_inference(self, index: int, time: float | None) -> bool:
        """False to skip the engine on frame `index` (this step then supplies its detections)."""
        return True

    def process(self, work: Work, dets: Detections | None) -> Detections | None:
        """The frame's Detections after this step (dets is None on a frame the engine skipped)."""
        return dets

    def close(self) -> None:
        """Called once when the pipeline closes."""
