"""`Segmenter.stream(...)`: the Python face of the streaming pipeline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..detections import Detections
from .pipeline import Pipeline
from .sinks import Sink
from .sources import open_source


class Stream:
    """Iterate for (frame, detections): frame np.ndarray [H, W, 3] uint8 RGB, detections at the
    frame's size, in source order (real time: the frames that were not dropped).

    Opening happens here (a missing or unreadable source raises InputError at once); the
    pipeline threads start with the iteration and stop when it ends, breaks or fails (the error
    of a stage is raised). `stats`, `problems`, `dropped` and stop() are available during and after.
    Iterable once (for loop or next()); also a context manager (closes on exit).
    """

    def __init__(self, segmenter, source, realtime: bool | None = None, *, batch_size: int | None = None,
                 score_threshold: float | None = None, max_frames: int | None = None,
                 sinks: Sequence[Sink] = (), show_fps: bool = False, **source_options):
        self.source = open_source(source, **source_options)
        self.pipeline = Pipeline(segmenter, self.source, realtime=realtime,
                                 batch_size=batch_size or segmenter.batch_size, score_threshold=score_threshold,
                                 sinks=sinks, show_fps=show_fps, max_frames=max_frames)
        self._results = None

    def __iter__(self) -> Iterator[tuple[np.ndarray, Detections]]:
        """A one-shot generator: leaving a for loop early (break, exception) stops the threads."""
        for work in self.pipeline.run():
            yield work.image, work.dets

    def __next__(self) -> tuple[np.ndarray, Detections]:
        """next(stream) also works (call close() when done early)."""
        if self._results is None:
            self._results = iter(self)
        return next(self._results)

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
        """Stop the threads and release the source (also when iteration never started)."""
        if self._results is not None:
            self._results.close()
        self.pipeline.close()
