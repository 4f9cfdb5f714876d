"""Streaming: the bundled model's CPU engine through the threaded pipeline, on 2 cores.

Groups:
- "stream throughput 240x320": engine-only inference (the baseline: frames already decoded,
  no paste/render/encode) vs the whole pipeline (decode, infer, paste+render, H.264 encode,
  JSON lines). extra_info["fps"] per benchmark; the pipeline should reach >= 90% of the engine.
- "stream realtime": a live source paced faster than inference; extra_info holds the
  end-to-end latency p50/p99 (ms) and the dropped-frame count: latency must stay bounded.
- "stream soak": 10,000 frames; extra_info["rss_growth_mb"] is resident memory growth after
  warm-up (target <= 50 MB).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import maskrt
from benchmarks.tools.timing import median_seconds
from maskrt.engine.stream import JsonLinesSink, Pipeline, VideoSink
from maskrt.engine.stream.sources import ArraySource, Frame, FrameSource

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SIZE = (240, 320)
FRAMES = 120

pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason=f"bundled model {BUNDLED.name} not built yet")


@pytest.fixture(scope="module")
def segmenter():
    return maskrt.load(BUNDLED, score_threshold=0.5)


@pytest.fixture(scope="module")
def frames():
    from maskrt.data import iter_video_frames

    return [scene.image for _, scene in iter_video_frames(FRAMES, size=SIZE, seed=7)]


class PacedSource(FrameSource):
    """A live source emitting `frames` cyclically at `fps`, like a camera."""

    kind = "camera"
    live = True

    def __init__(self, frames: list[np.ndarray], fps: float, count: int):
        super().__init__("paced")
        self._images, self.fps, self._count = frames, fps, count

    def frames(self, stop: threading.Event):
        start = time.perf_counter()
        for i in range(self._count):
            delay = start + i / self.fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if stop.is_set():
                return
            yield Frame(i, i / self.fps, self._images[i % len(self._images)])


def run_pipeline(segmenter, source, sinks=(), realtime=False) -> Pipeline:
    pipeline = Pipeline(segmenter, source, realtime=realtime, sinks=list(sinks), score_threshold=0.5)
    for _ in pipeline.run():
        pass
    return pipeline


def test_engine_only(benchmark, segmenter, frames):
    def run():
        for frame in frames:
            segmenter.backend.infer([frame])

    benchmark.group = "stream throughput 240x320"
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["fps"] = round(len(frames) / median, 2)


def test_pipeline_mp4_and_jsonl(benchmark, segmenter, frames, tmp_path):
    def run():
        sinks = [VideoSink(tmp_path / "out.mp4"), JsonLinesSink(tmp_path / "out.jsonl")]
        run_pipeline(segmenter, ArraySource(frames, fps=30.0), sinks)

    benchmark.group = "stream throughput 240x320"
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["fps"] = round(len(frames) / median, 2)


def test_realtime_latency_bounded(benchmark, segmenter, frames, tmp_path):
    result = {}

    def run():
        pipeline = run_pipeline(segmenter, PacedSource(frames, fps=60.0, count=300),
                                [JsonLinesSink(tmp_path / "rt.jsonl")], realtime=True)
        result.update(pipeline.stats.summary())

    benchmark.group = "stream realtime"
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    latency = result["stages"]["latency"]
    benchmark.extra_info.update({"source_fps": 60, "frames_done": result["frames"], "dropped": result["dropped"],
                                 "latency_p50_ms": latency["p50_ms"], "latency_p99_ms": latency["p99_ms"]})


def test_soak_10000_frames_memory(benchmark, segmenter, frames, tmp_path):
    process = psutil.Process()
    info = {}

    def run():
        run_pipeline(segmenter, ArraySource(frames[:50] * 4), [JsonLinesSink(tmp_path / "warm.jsonl")])
        before = process.memory_info().rss
        images = [frames[i % len(frames)] for i in range(10_000)]
        run_pipeline(segmenter, ArraySource(images), [JsonLinesSink(tmp_path / "soak.jsonl")])
        info["rss_growth_mb"] = round((process.memory_info().rss - before) / 1e6, 1)

    benchmark.group = "stream soak"
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(info)
