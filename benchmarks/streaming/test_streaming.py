"""Streaming: the bundled model's CPU engine through the threaded pipeline, on 2 cores.

Groups:
- "stream throughput 240x320": engine-only inference (the baseline: frames already decoded,
  no paste/render/encode) vs the whole pipeline (decode, infer, paste+render, H.264 encode,
  JSON lines), for the fp32 engine and the int8 one (`*_int8`: built once with the bundled
  model's default calibration set and cached; not in the quick set, whose CI smoke run would
  spend minutes calibrating). extra_info["fps"] per benchmark; the pipeline
  should reach >= 90% of the engine.
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
from maskrt.engine.sources import ArraySource, Frame, FrameSource

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SIZE = (240, 320)
FRAMES = 120

pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason=f"bundled model {BUNDLED.name} not built yet")


@pytest.fixture(scope="module")
def segmenter():
    return maskrt.load(BUNDLED, score_threshold=0.5)


@pytest.fixture(scope="module")
def segmenter_int8():
    return maskrt.load(BUNDLED, score_threshold=0.5, precision="int8")


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
    pipeline = Pipeline(segmenter, source, realtime=realtime, sinks=list(sinks), min_score=0.5)
    for _ in pipeline.run():
        pass
    return pipeline


def engine_only(benchmark, segmenter, frames, baseline: bool) -> None:
    def run():
        for frame in frames:
            segmenter.backend.infer([frame])

    benchmark.group = "stream throughput 240x320"
    benchmark.extra_info["baseline"] = baseline
    benchmark.extra_info["precision"] = segmenter.backend.manifest.precision
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["fps"] = round(len(frames) / median, 2)


@pytest.mark.quick
def test_engine_only(benchmark, segmenter, frames):
    engine_only(benchmark, segmenter, frames, baseline=True)


@pytest.mark.quick
def test_pipeline_mp4_and_jsonl(benchmark, segmenter, frames, tmp_path):
    def run():
        sinks = [VideoSink(tmp_path / "out.mp4"), JsonLinesSink(tmp_path / "out.jsonl")]
        run_pipeline(segmenter, ArraySource(frames, fps=30.0), sinks)

    benchmark.group = "stream throughput 240x320"
    benchmark.extra_info["precision"] = segmenter.backend.manifest.precision
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["fps"] = round(len(frames) / median, 2)


def test_engine_only_int8(benchmark, segmenter_int8, frames):
    engine_only(benchmark, segmenter_int8, frames, baseline=False)


def test_pipeline_mp4_and_jsonl_int8(benchmark, segmenter_int8, frames, tmp_path):
    test_pipeline_mp4_and_jsonl(benchmark, segmenter_int8, frames, tmp_path)


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


def rss_trend(samples: list[tuple[int, float]]) -> float:
    """MB per 1,000 frames over the second half of (frames done, RSS bytes) samples (least
    squares): ~0 for memory that has settled, the leak rate otherwise."""
    half = [(f, r) for f, r in samples if f >= samples[-1][0] / 2]
    if len(half) < 3 or half[-1][0] == half[0][0]:
        return 0.0
    frames, rss = np.array(half, dtype=np.float64).T
    return float(np.polyfit(frames, rss, 1)[0] * 1000 / 1e6)


def test_soak_10000_frames_memory(benchmark, segmenter, frames, tmp_path):
    """RSS after warm-up (200 frames) vs after 10,000 more, sampled every second meanwhile:
    rss_growth_mb (end - start, the target <= 50 MB), rss_peak_growth_mb (largest sample - start)
    and rss_trend_mb_per_1k_frames over the second half (a leak shows as a steady slope)."""
    process = psutil.Process()
    info = {}

    def run():
        run_pipeline(segmenter, ArraySource(frames[:50] * 4), [JsonLinesSink(tmp_path / "warm.jsonl")])
        before = process.memory_info().rss
        images = [frames[i % len(frames)] for i in range(10_000)]
        pipeline = Pipeline(segmenter, ArraySource(images), sinks=[JsonLinesSink(tmp_path / "soak.jsonl")],
                            min_score=0.5)
        samples, stop = [], threading.Event()

        def sample():
            while not stop.wait(1.0):
                samples.append((pipeline.stats.done, process.memory_info().rss))

        monitor = threading.Thread(target=sample, daemon=True)
        monitor.start()
        for _ in pipeline.run():
            pass
        stop.set()
        monitor.join()
        after = process.memory_info().rss
        samples.append((pipeline.stats.done, after))
        info.update(frames=pipeline.stats.done, rss_growth_mb=round((after - before) / 1e6, 1),
                    rss_peak_growth_mb=round((max(r for _, r in samples) - before) / 1e6, 1),
                    rss_trend_mb_per_1k_frames=round(rss_trend(samples), 2))

    benchmark.group = "stream soak"
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(info)
