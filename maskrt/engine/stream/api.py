"""`Segmenter.stream(...)`: the Python face of the streaming pipeline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ...errors import MaskrtError
from ..detections import Detections
from .pipeline import Pipeline
from .sinks import Sink
from .steps import FrameStep
from .tracking import TrackingOptions
from ..sources import open_source


class Stream:
    """Iterate for (frame, detections): frame np.ndarray [H, W, 3] uint8 RGB, detections at the
    frame's size, in source order (real time: the frames that were not dropped).

    Opening happens here (a missing or unreadable source raises InputError at once, an output
    that cannot be written OutputError: see maskrt.safeio); the
    pipeline threads start with the iteration and stop when it ends, breaks or fails (the error
    of a stage is raised). `stats`, `problems`, `dropped` and stop() are available during and after.
    Iterable once (for loop or next()); a context manager (closes on exit). With track=True the
    detections carry track ids (and `tracking` is the TrackingStep, first of the steps). A stream that is
    dropped without close() is closed when garbage-collected, and any still running at
    interpreter exit is closed then; several streams may share one Segmenter.
    """

    def __init__(self, segmenter, source, realtime: bool | None = None, *, batch_size: int | None = None,
                 min_score: float | None = None, max_frames: int | None = None,
                 sinks: Sequence[Sink] = (), show_fps: bool = False, steps: Sequence[FrameStep] = (),
                 track: bool = False, tracker=None, match: str | None = None, interval: int | str | None = None,
                 **source_options):
        self._results = None
        self.tracking = None
        if not track and (tracker is not None or match is not None or interval is not None):
            raise MaskrtError("tracker=, match= and interval= apply with track=True")
        self.source = open_source(source, **source_options)
        try:
            if track:
                self.tracking = TrackingOptions.options(tracker, match, interval).step(
                    self.source, self.source.live if realtime is None else realtime)
                steps = [self.tracking, *steps]
        except BaseException:
            self.source.close()
            raise
        try:
            self.pipeline = Pipeline(segmenter, self.source, realtime=realtime,
                                     batch_size=batch_size or segmenter.batch_size, min_score=min_score,
                                     sinks=sinks, show_fps=show_fps, max_frames=max_frames, steps=steps)
            self.pipeline.prepare()  # outputs checked and claimed now, like the source
        except BaseException:
            self.source.close()
            raise

    def __iter__(self) -> Iterator[tuple[np.ndarray, Detections]]:
        """A one-shot iterator: leaving a for loop early (break, exception) stops the threads.
        No reference cycle: the generator a for loop gets refers to this Stream, which does not
        refer to it; the one next() keeps refers to the pipeline only. So a dropped Stream is
        freed (and __del__ closes it) at once, without waiting for the cycle collector."""
        if self._results is not None:
            return self._results
        return self._iterate()

    def _iterate(self) -> Iterator[tuple[np.ndarray, Detections]]:
        yield from _pairs(self.pipeline)

    def __next__(self) -> tuple[np.ndarray, Detections]:
        """next(stream) also works (call close(), or use `with`, when done early)."""
        if self._results is None:
            self._results = _pairs(self.pipeline)
        return next(self._results)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def realtime(self) -> bool:
        return self.pipeline.realtime

    @property
    def stats(self):
        """StreamStats: counters and per-stage timings (see stats.py)."""
        return self.pipeline.stats

    @property
    def problems(self) -> list[str]:
        return self.pipeline.problems

    @property
    def dropped(self) -> int:
        return self.pipeline.stats.dropped

    def stop(self, reason: str = "stopped") -> None:
        """Finish soon: no more frames are read; frames already inferred are still yielded."""
        self.pipeline.stop(reason)

    def close(self) -> None:
        """Stop the threads and release the source and outputs (also when iteration never started)."""
        results = getattr(self, "_results", None)
        if results is not None:
            results.close()
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            pipeline.close()


def _pairs(pipeline: Pipeline) -> Iterator[tuple[np.ndarray, Detections]]:
    for work in pipeline.run():
        yield work.image, work.dets
