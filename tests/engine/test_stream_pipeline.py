"""The threaded pipeline with a scripted backend: order, batching, real-time drops, errors, stop.

The fake backend reports one box per frame whose left edge is the frame's first pixel value, so
the pairing of frames and detections can be checked from the frames the test made itself.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from maskrt.engine import Detections, Segmenter
from maskrt.engine.stream import ArraySource, FrameStep, JsonLinesSink
from maskrt.errors import InputError
from maskrt.model import RawDetections

H, W = 24, 32


class FakeBackend:
    """One detection per image: box [v, 2, v + 8, 12] where v = image[0, 0, 0], score 0.9,
    label 1, a mask of ones. Records batch sizes; can sleep and fail on a given image value."""

    name = "fake"

    def __init__(self, delay: float = 0.0, fail_on: int | None = None):
        self.delay, self.fail_on = delay, fail_on
        self.batches: list[int] = []
        self.seen: list[int] = []

    def infer(self, images):
        self.batches.append(len(images))
        time.sleep(self.delay)
        out = []
        for img in images:
            v = int(img[0, 0, 0])
            if v == self.fail_on:
                raise RuntimeError(f"backend failed on {v}")
            self.seen.append(v)
            out.append(RawDetections(torch.tensor([[v, 2.0, v + 8, 12.0]]), torch.tensor([0.9]), torch.tensor([1]),
                                     torch.ones(1, 28, 28), img.shape[:2]))
        return out


def frames(n: int) -> list[np.ndarray]:
    """n frames; frame i has first pixel value i (the fake box's left edge)."""
    out = []
    for i in range(n):
        img = np.zeros((H, W, 3), np.uint8)
        img[0, 0, 0] = i
        out.append(img)
    return out


def segmenter(backend) -> Segmenter:
    return Segmenter(backend, ["__background__", "thing"])


def test_offline_every_frame_in_order_with_batches():
    backend = FakeBackend()
    stream = segmenter(backend).stream(frames(10), batch_size=4)
    results = list(stream)
    assert [int(f[0, 0, 0]) for f, _ in results] == list(range(10))
    assert [float(d.boxes[0, 0]) for _, d in results] == list(range(10))
    assert backend.batches == [4, 4, 2]
    assert stream.stats.done == 10 and stream.dropped == 0 and not stream.realtime
    for stage in ("decode", "preprocess", "infer", "postprocess", "latency"):
        assert stream.stats.stages[stage].count == 10


def test_grayscale_and_rgba_frames_are_converted():
    gray = np.full((H, W), 3, np.uint8)
    rgba = np.full((H, W, 4), 5, np.uint8)
    out = [f for f, _ in segmenter(FakeBackend()).stream([gray, rgba])]
    assert [f.shape for f in out] == [(H, W, 3)] * 2 and out[0][0, 0].tolist() == [3, 3, 3]


def test_bad_frame_dtype_raises_input_error():
    with pytest.raises(InputError, match="uint8"):
        list(segmenter(FakeBackend()).stream([np.zeros((H, W, 3), np.float32)]))


def test_realtime_drops_old_frames_and_bounds_latency():
    backend = FakeBackend(delay=0.05)
    # 60 frames at 200 fps (paced, as if live) into a 20 fps backend
    stream = segmenter(backend).stream(ArraySource(frames(60), fps=200), realtime=True)
    indices = [int(f[0, 0, 0]) for f, _ in stream]
    assert indices == sorted(indices) and indices[-1] == 59  # newest frame always processed
    stats = stream.stats
    assert stats.dropped > 20 and stats.done + stats.dropped == 60
    assert backend.batches == [1] * len(indices)
    # latency stays near one inference, however long the source runs
    assert stats.stages["latency"].max < 0.5


def test_backend_error_stops_run_and_discards_outputs(tmp_path):
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    stream = segmenter(FakeBackend(fail_on=5)).stream(frames(30), sinks=[sink])
    with pytest.raises(RuntimeError, match="backend failed on 5"):
        for _ in stream:
            pass
    assert list(tmp_path.iterdir()) == []
    assert all(not t.is_alive() for t in stream.pipeline._threads)


def test_stop_keeps_outputs_covering_frames_done(tmp_path):
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    stream = segmenter(FakeBackend(delay=0.01)).stream(frames(200), sinks=[sink])
    done = []
    for frame, _ in stream:
        done.append(int(frame[0, 0, 0]))
        if len(done) == 5:
            stream.stop()
    assert 5 <= len(done) < 200 and done == list(range(len(done)))
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == done
    assert not list(tmp_path.glob(".out.jsonl.*.partial")) and not list(tmp_path.glob("*lock"))


def test_jsonl_records_follow_the_contract(tmp_path):
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    list(segmenter(FakeBackend()).stream(ArraySource(frames(3), fps=5), sinks=[sink]))
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["time"]) for r in records] == [(0, 0.0), (1, 0.2), (2, 0.4)]
    for r in records:
        (inst,) = r["instances"]
        assert set(inst) == {"bbox", "score", "category_id", "segmentation"}
        v = r["frame"]
        assert inst["bbox"] == [v, 2, 8, 10] and inst["category_id"] == 1 and inst["score"] == pytest.approx(0.9)
        mask = mask_utils.decode({"size": inst["segmentation"]["size"],
                                  "counts": inst["segmentation"]["counts"].encode()})
        ys, xs = np.nonzero(mask)
        # inside the box give or take one pixel (the paste's border interpolation)
        assert mask.shape == (H, W) and xs.min() >= v - 1 and xs.max() <= v + 9 and ys.min() >= 1 and ys.max() <= 13
        assert mask.sum() >= 0.7 * 8 * 10


def test_memory_is_bounded_offline():
    """The decoder never runs more than a few queues ahead of inference."""
    backend = FakeBackend(delay=0.005)
    ahead = []

    def source():
        for i, img in enumerate(frames(80)):
            ahead.append(i - len(backend.seen))
            yield img

    list(segmenter(backend).stream(source()))
    assert max(ahead) <= 4 * 4 + 2


def test_consumer_break_stops_threads():
    before = set(threading.enumerate())
    stream = segmenter(FakeBackend()).stream(frames(100))
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert all(not t.is_alive() for t in stream.pipeline._threads)
    # nothing the stream started is left (the glue's process-wide pool, maskrt.glue_*, may start on first use)
    assert [t for t in threading.enumerate() if t not in before and not t.name.startswith("maskrt.glue")] == []


def test_next_and_break_without_close():
    stream = segmenter(FakeBackend()).stream(frames(50))
    frame, dets = next(stream)
    assert int(frame[0, 0, 0]) == 0 and len(dets) == 1
    assert int(next(stream)[0][0, 0, 0]) == 1
    stream.close()
    assert all(not t.is_alive() for t in stream.pipeline._threads)
    other = segmenter(FakeBackend()).stream(frames(50))
    for i, _ in enumerate(other):
        if i == 2:
            break
    deadline = time.monotonic() + 5  # the loop's generator is gone, so the pipeline closed itself
    while any(t.is_alive() for t in other.pipeline._threads) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(not t.is_alive() for t in other.pipeline._threads)


class TwoRequestBackend(FakeBackend):
    """Takes two frames at once (requests = 2). Frame 0's call waits until frame 1's call has
    started (so the two calls overlap) and then until frame 1's call has returned: frame 1
    finishes first, and the pipeline must still hand frame 0 on first. Every later frame waits
    for the call of the frame after it, so the workers keep overtaking each other."""

    requests = 2

    def __init__(self, frames_total: int):
        super().__init__()
        self.total = frames_total
        self.started = {i: threading.Event() for i in range(frames_total + 1)}
        self.returned = {i: threading.Event() for i in range(frames_total + 1)}
        self.active = self.most_active = 0
        self.lock = threading.Lock()

    def infer(self, images):
        v = int(images[0][0, 0, 0])
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.started[v].set()
        try:
            if v % 2 == 0 and v + 1 < self.total:  # wait for the next frame's call to overlap and finish
                assert self.started[v + 1].wait(30), f"frame {v + 1} never started beside frame {v}"
                assert self.returned[v + 1].wait(30), f"frame {v + 1} never returned"
            return super().infer(images)
        finally:
            with self.lock:
                self.active -= 1
            self.returned[v].set()


def test_two_infer_workers_overlap_and_keep_frame_order(tmp_path):
    backend = TwoRequestBackend(10)
    seg = Segmenter(backend, ["bg", "thing"])
    sink = JsonLinesSink(tmp_path / "o.jsonl")
    done = [int(frame[0, 0, 0]) for frame, _ in seg.stream(ArraySource(frames(10)), realtime=False, sinks=[sink])]
    assert done == list(range(10))
    assert backend.seen[:2] == [1, 0]  # frame 1 finished first; frame 0 was still handed on first
    assert backend.most_active == 2
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(10))
    assert [line["instances"][0]["bbox"][0] for line in lines] == list(range(10))  # each frame's own box


def test_realtime_keeps_one_infer_worker():
    backend = FakeBackend()
    backend.requests = 2
    seg = Segmenter(backend, ["bg", "thing"])
    with seg.stream(ArraySource(frames(3)), realtime=True) as stream:
        assert stream.pipeline.infer_workers == 1


class EveryThirdFrame(FrameStep):
    """The engine on frames 0, 3, 6, ... decided from the order of the questions (as a detector
    interval does: it counts from the last frame it sent). Frame 0's question waits up to a second
    for frame 1's to overtake it: a pipeline that asks outside its frame-order lock is caught."""

    def __init__(self):
        self.asked: list[int] = []
        self.one_asked = threading.Event()
        self._last = None

    def wants_inference(self, index, time):
        if index == 0:
            self.one_asked.wait(1.0)
        if index == 1:
            self.one_asked.set()
        self.asked.append(index)
        if self._last is not None and index - self._last < 3:
            return False
        self._last = index
        return True

    def process(self, work, dets):
        return dets if dets is not None else Detections.from_raw(
            RawDetections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                          torch.zeros(0, 28, 28), (H, W)))


def test_two_infer_workers_ask_the_steps_in_frame_order():
    backend = FakeBackend()
    backend.requests = 2
    step = EveryThirdFrame()
    seg = Segmenter(backend, ["bg", "thing"])
    done = [int(frame[0, 0, 0]) for frame, _ in seg.stream(ArraySource(frames(10)), realtime=False, steps=[step])]
    assert done == list(range(10))
    assert step.asked == list(range(10))
    assert sorted(backend.seen) == [0, 3, 6, 9]
