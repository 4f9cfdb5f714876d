"""The streaming pipeline: four threads joined by bounded hand-overs.

    decode ──frames──> preprocess + infer ──> postprocess + render ──> encode/write ──> consumer

decode reads the source; preprocess converts to [H, W, 3] uint8 RGB and infer calls
`segmenter.backend.infer(list of RGB arrays) -> list[RawDetections]` (batches of up to
batch_size frames offline); postprocess builds Detections, runs the per-frame steps (tracking,
...: steps.py), applies min_score, makes the JSON record (RLE masks from the fused paste) and
render draws the annotated frame when a sink wants it; encode/write hands the frame to every
sink. Decoding, rendering and encoding thus overlap inference.

Offline, a backend that takes several frames at once (`backend.requests` > 1: the OpenVINO
backend's infer requests) gets that many infer workers: while one frame's dense stage runs,
another's glue and heads run; their results are handed on in frame order.

Offline (the default for files) every frame is processed in order and a full queue makes the
decoder wait. Real time (the default for cameras and URLs) puts decoded frames in a latest-only
slot (or, for steps with a `backlog`, the newest few: steps.py): when inference is slower than
the source, older frames are dropped (counted in stats.dropped) so latency stays bounded; file sources are then paced at their frame rate, like a
live source. At most queue_size frames wait between two stages, so memory does not grow with
the length of the video.

Stopping: stop() (Ctrl-C, SIGTERM) reads no more frames, skips frames not yet inferred and
finishes those already inferred, so the outputs cover exactly the frames done. An exception in
any stage stops every stage and is raised to the consumer; file outputs are then discarded.
The sinks claim their outputs (sink.prepare) before any thread starts. A pipeline still
running when the interpreter exits is closed first (atexit), so no stage thread is inside the
backend while the runtime is torn down.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence

from ...options import probability
from ..detections import Detections
from ..images import as_rgb_uint8
from ..outputs import frame_record
from .memory import TRIM_EVERY_FRAMES, release_free_memory
from .queues import ABORT, END, BoundedQueue, LatestSlot
from .render import render_frame
from .sinks import Sink
from ..sources import FrameSource
from .stats import StreamStats
from .steps import FrameStep
from .work import Work


class Pipeline:
    """Runs `segmenter` over `source` into `sinks`; iterate run() for the finished frames.

    realtime: None -> source.live. batch_size: frames per backend.infer call (offline only;
    real time uses 1). steps: per-frame steps between detection and the sinks (steps.py).
    min_score: report only detections scoring at least this, applied after the steps (None:
    keep what the backend and the steps return). render: render_frame-compatible callable.
    max_frames: stop after reading this many.
    """

    def __init__(self, segmenter, source: FrameSource, *, realtime: bool | None = None, batch_size: int = 1,
                 min_score: float | None = None, sinks: Sequence[Sink] = (),
                 render: Callable = render_frame, show_fps: bool = False, queue_size: int = 4,
                 max_frames: int | None = None, steps: Sequence[FrameStep] = ()):
        self.segmenter, self.source = segmenter, source
        self.realtime = source.live if realtime is None else bool(realtime)
        self.batch_size = 1 if self.realtime else max(1, int(batch_size))
        self.min_score = probability("min_score", min_score)  # a NaN would silently report nothing
        self.sinks, self.render = list(sinks), render
        self.steps = list(steps)
        self.show_fps, self.max_frames = show_fps, max_frames
        self.stats = StreamStats()
        self.interrupted: str | None = None
        self.errors: list[BaseException] = []
        self._halt = threading.Event()   # read no more frames
        self._abort = threading.Event()  # every stage stops now
        backlog = max([1] + [int(step.backlog) for step in self.steps])  # steps.py: `backlog`
        self._frames = LatestSlot(backlog) if self.realtime else BoundedQueue(queue_size)
        after = min(queue_size, 2) if self.realtime else queue_size  # real time: little waiting after infer
        self._inferred, self._posted, self._done = (BoundedQueue(after) for _ in range(3))
        self._need_record = any(s.needs_record for s in self.sinks)
        self._need_render = any(s.needs_render for s in self.sinks)
        self._threads: list[threading.Thread] = []
        self._closed = False
        # infer workers: frames taken in order under _take, results handed on in that order (_order)
        self.infer_workers = 1 if self.realtime else max(1, int(getattr(segmenter.backend, "requests", 1)))
        self._take, self._order = threading.Lock(), threading.Condition()
        self._taken = self._handed = 0
        self._source_ended = False
        self._workers_left = self.infer_workers

    @property
    def problems(self) -> list[str]:
        """Non-fatal problems of the source (truncated file, skipped images, lost stream)."""
        return list(self.source.problems)

    def stop(self, reason: str = "interrupted") -> None:
        """Finish soon, keeping the outputs: no more frames are read; frames already inferred are
        still written. Safe to call from a signal handler or another thread."""
        if self.interrupted is None:
            self.interrupted = reason
        self._halt.set()

    def __iter__(self) -> Iterator[Work]:
        return self.run()

    def prepare(self) -> None:
        """Claim every sink's output (checked, locked); on a refusal the others are released."""
        try:
            for sink in self.sinks:
                sink.prepare(self.source)
        except BaseException:
            for sink in reversed(self.sinks):  # reverse: folders made for them go once empty
                sink.close(False)
            raise

    def run(self) -> Iterator[Work]:
        """Yield each finished Work in frame order; close() at the end; raise the first stage error."""
        if self._threads or self._closed:
            raise RuntimeError("a Pipeline runs only once")
        try:
            self.prepare()
        except BaseException:
            self._closed = True
            self.source.close()
            raise
        self._start()
        try:
            while True:
                work = self._done.get(self._abort)
                if work is END or work is ABORT:
                    break
                self.stats.frame_done(time.perf_counter() - work.started)
                self.stats.dropped = self._frames.dropped
                yield work
        finally:
            self.close()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        """Stop and join every stage, close the source, then close the sinks: kept unless a stage
        failed (so an interrupted run keeps what it wrote). Idempotent."""
        if self._closed:
            return
        self._closed = True
        _RUNNING.discard(self)
        self._halt.set()
        self._abort.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self.stats.finished = time.perf_counter()
        self.stats.dropped = self._frames.dropped
        self.source.close()
        for step in self.steps:
            step.close()
        keep = not self.errors
        for sink in reversed(self.sinks):  # reverse of prepare: folders made for them go once empty
            try:
                sink.close(keep)
            except Exception as exc:  # a sink that cannot finish: report it, discard the rest
                self.errors.append(exc)
                keep = False
        release_free_memory()

    # -- stages ------------------------------------------------------------------------------

    def _start(self) -> None:
        _RUNNING.add(self)
        stages = [("decode", self._decode)] + [(f"infer{i}", self._infer) for i in range(self.infer_workers)] + \
            [("post", self._post), ("write", self._write)]
        for name, fn in stages:
            thread = threading.Thread(target=self._guard, args=(fn,), name=f"maskrt-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _guard(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.errors.append(exc)
            self._halt.set()
            self._abort.set()

    def _decode(self) -> None:
        frames = self.source.frames(self._halt)
        pace = self.realtime and not self.source.live
        clock0 = None
        try:
            while not self._halt.is_set():
                if self.max_frames is not None and self.stats.decoded >= self.max_frames:
                    break
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                self.stats.add("decode", time.perf_counter() - t0)
                self.stats.decoded += 1
                if pace and frame.time is not None:  # replay a file as if it were live
                    clock0 = time.perf_counter() - frame.time if clock0 is None else clock0
                    if self._halt.wait(max(0.0, clock0 + frame.time - time.perf_counter())):
                        break
                work = Work(frame.index, frame.time, frame.image, frame.name, time.perf_counter())
                if not self._frames.put(work, self._abort):
                    return
        finally:
            getattr(frames, "close", lambda: None)()
        self._frames.close(self._abort)

    def _infer(self) -> None:
        """One infer worker: take the next batch, infer it, hand it on in the order taken; the
        last worker to finish ends the hand-over."""
        while True:
            with self._take:
                if self._source_ended:
                    break
                batch, ended = self._next_batch()
                seq, self._taken = self._taken, self._taken + 1
                self._source_ended = ended
                # the steps decide in frame order (a detector interval counts frames), not in the
                # order the workers happen to reach the engine
                wanted = [work for work in batch if self._wants_inference(work)] if batch else []
            if batch is None or not self._infer_batch(batch, wanted, seq):
                return
        with self._order:
            self._workers_left -= 1
            last = self._workers_left == 0
        if last:
            self._inferred.close(self._abort)

    def _next_batch(self) -> tuple[list[Work] | None, bool]:
        """(frames to infer, end reached); (None, True) when aborted. Frames taken after stop()
        are counted in stats.discarded instead."""
        batch: list[Work] = []
        while len(batch) < self.batch_size:
            work = self._frames.get(self._abort)
            if work is ABORT:
                return None, True
            if work is END:
                return batch, True
            if self._halt.is_set():
                self.stats.discarded += 1
                continue
            batch.append(work)
        return batch, False

    def _infer_batch(self, batch: list[Work], wanted: list[Work], seq: int) -> bool:
        """Infer the `wanted` frames of `batch` (the seq-th taken), then hand all its frames on
        after every earlier batch's."""
        for work in batch:
            t0 = time.perf_counter()
            work.image = as_rgb_uint8(work.image)
            if not work.image.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable
                work.image = work.image.copy()
            self.stats.add("preprocess", time.perf_counter() - t0)
        if wanted:
            t0 = time.perf_counter()
            raws = self.segmenter.backend.infer([work.image for work in wanted])
            share = (time.perf_counter() - t0) / len(wanted)
            if len(raws) != len(wanted):
                raise RuntimeError(f"backend returned {len(raws)} results for {len(wanted)} images")
            for work, raw in zip(wanted, raws):
                work.raw = raw
                self.stats.add("infer", share)
        with self._order:
            while self._handed != seq:
                if self._abort.is_set():
                    return False
                self._order.wait(0.05)
        handed = all(self._inferred.put(work, self._abort) for work in batch)
        with self._order:
            self._handed += 1
            self._order.notify_all()
        return handed

    def _wants_inference(self, work: Work) -> bool:
        """The engine runs on a frame unless a per-frame step takes it over (steps.py)."""
        return all(step.wants_inference(work.index, work.time) for step in self.steps)

    def _post(self) -> None:
        while (work := self._inferred.get(self._abort)) is not END:
            if work is ABORT:
                return
            t0 = time.perf_counter()
            work.dets, work.raw = self._detections(work), None
            if self._need_record or self._need_render:
                work.dets.instances  # noqa: B018 - the fused paste, once, here, for the sinks
            if self._need_record:
                extra = {"file": work.name} if work.name else {}
                t = None if work.time is None else round(work.time, 6)
                work.record = frame_record(work.index, t, work.dets, **extra)
            self.stats.add("postprocess", time.perf_counter() - t0)
            if self._need_render:
                t0 = time.perf_counter()
                fps = self.stats.recent_fps() if self.show_fps else None
                work.rendered = self.render(work.image, work.dets, self.segmenter.classes, fps=fps)
                self.stats.add("render", time.perf_counter() - t0)
            if not self._posted.put(work, self._abort):
                return
        self._posted.close(self._abort)

    def _detections(self, work: Work) -> Detections:
        """The backend's detections (None on a skipped frame), through every step, then min_score."""
        dets = None if work.raw is None else Detections.from_raw(work.raw)
        for step in self.steps:
            dets = step.process(work, dets)
        if dets is None:
            raise RuntimeError(f"frame {work.index}: the engine skipped it and no per-frame step supplied detections")
        return dets if self.min_score is None else dets.above(self.min_score)

    def _write(self) -> None:
        opened, written = False, 0
        while (work := self._posted.get(self._abort)) is not END:
            if work is ABORT:
                return
            if not opened:
                for sink in self.sinks:
                    sink.open(self.source.fps)
                opened = True
            if self.sinks:
                t0 = time.perf_counter()
                for sink in self.sinks:
                    sink.write(work)
                self.stats.add("encode", time.perf_counter() - t0)
            work.rendered = None
            written += 1
            if written % TRIM_EVERY_FRAMES == 0:
                release_free_memory()  # long runs: freed frames and masks must not stay resident
            if not self._done.put(work, self._abort):
                return
        self._done.close(self._abort)


_RUNNING: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_running() -> None:
    """At interpreter exit: stop and join the threads of every pipeline still running (an
    abandoned stream), before the backends' native threads and objects are destroyed."""
    for pipeline in list(_RUNNING):
        try:
            pipeline.close()
        except Exception:  # noqa: BLE001 - exiting anyway; never abort the interpreter
            pass
