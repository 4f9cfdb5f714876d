"""Per-frame steps (engine/stream/steps.py): run between detection and the sinks, in frame order,
may take over frames from the engine, see detections before min_score; closed with the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskrt.engine import Detections, Segmenter
from maskrt.engine.stream import ArraySource, FrameStep, JsonLinesSink, Pipeline
from tests.engine.test_stream_pipeline import FakeBackend, frames


class Recorder(FrameStep):
    """Remembers what it saw (frame index, score of each detection, or None for a skipped frame)."""

    def __init__(self):
        self.seen: list[tuple[int, list | None]] = []
        self.closed = 0

    def process(self, work, dets):
        self.seen.append((work.index, None if dets is None else dets.scores.tolist()))
        return dets

    def close(self):
        self.closed += 1


class EveryOther(FrameStep):
    """Runs the engine on even frames only and repeats the last detections on odd ones."""

    def __init__(self):
        self.last: Detections | None = None

    def wants_inference(self, index, time):
        return index % 2 == 0

    def process(self, work, dets):
        if dets is not None:
            self.last = dets
            return dets
        return self.last


def run(steps, n=6, min_score=None, sinks=()):
    backend = FakeBackend()
    pipeline = Pipeline(Segmenter(backend, ["bg", "thing"]), ArraySource(frames(n)), realtime=False,
                        steps=steps, min_score=min_score, sinks=list(sinks))
    results = [(work.index, work.dets) for work in pipeline.run()]
    return backend, results


def test_steps_see_every_frame_in_order_before_min_score_and_are_closed():
    recorder = Recorder()
    _, results = run([recorder], n=5, min_score=0.95)  # the fake backend scores 0.9
    assert recorder.seen == [(i, [pytest.approx(0.9)]) for i in range(5)]  # before the filter
    assert [len(d) for _, d in results] == [0] * 5  # the report filter applies after the steps
    assert recorder.closed == 1


def test_a_step_can_change_what_is_reported(tmp_path):
    class DropAll(FrameStep):
        def process(self, work, dets):
            return dets.filter(np.zeros(len(dets), bool))

    sink = JsonLinesSink(tmp_path / "out.jsonl")
    run([DropAll()], n=3, sinks=[sink])
    lines = [json.loads(line) for line in sink.path.read_text().splitlines()]
    assert [line["instances"] for line in lines] == [[], [], []]


def test_a_step_takes_over_frames_from_the_engine():
    step, recorder = EveryOther(), Recorder()
    backend, results = run([step, recorder], n=6)
    assert sorted(backend.seen) == [0, 2, 4]  # the engine ran on even frames only
    assert [i for i, _ in results] == list(range(6))  # every frame has an output
    boxes = [d.boxes[0, 0] for _, d in results]
    assert boxes == [0, 0, 2, 2, 4, 4]  # odd frames carry the previous frame's detections
    assert [s is not None for _, s in recorder.seen] == [True] * 6  # later steps see the supplied ones


def test_a_skipped_frame_nobody_fills_is_an_error():
    class SkipAll(FrameStep):
        def wants_inference(self, index, time):
            return index != 1

    with pytest.raises(RuntimeError, match="frame 1: the engine skipped it"):
        run([SkipAll()], n=3)
